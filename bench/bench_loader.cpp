// The training loader's rate: decoding, augmentation and batching in its worker threads, with
// nothing consuming the batches, so the figure is what the data side can feed a GPU.
//   bench_loader --rec train.rec --size 112 --batch-size 256 --workers 1,2
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <numeric>

#include "arcface/loader.h"
#include "arcface/recordio.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"training loader rate (images/s) from a packed .rec"};
  std::string rec;
  std::vector<int64_t> workers{1, 2};
  int64_t size = 112, resize = 0, batch_size = 256, batches = 20;
  bool random_crop = false, flip = true;
  app.add_option("--rec", rec, "insightface train.rec (with .idx)")->required();
  app.add_option("--size", size, "network input side")->capture_default_str();
  app.add_option("--resize", resize, "decoded side before the crop (0: --size)");
  app.add_option("--batch-size", batch_size)->capture_default_str();
  app.add_option("--batches", batches, "batches timed per worker count")->capture_default_str();
  app.add_option("--workers", workers, "decoding threads to try")->delimiter(',');
  app.add_flag("--random-crop", random_crop, "random crops of the resized face");
  app.add_flag("!--no-flip", flip, "no random mirror images");
  CLI11_PARSE(app, argc, argv);

  try {
    auto records = arcface::RecordFile::open(rec);
    const size_t n = records->images().size();
    arcface::ImageSource source{{}, {}, {}, {}, records, std::vector<size_t>(n)};
    std::iota(source.record_index.begin(), source.record_index.end(), size_t{0});
    std::vector<int64_t> labels;
    for (size_t i = 0; i < n; ++i) {
      source.names.push_back(records->name(i));
      labels.push_back(records->images()[i].label);
    }
    arcface::Preprocess pre;
    pre.input_size = size;
    pre.resize = resize;
    pre.mean = {0.5, 0.5, 0.5};
    pre.std = {0.5, 0.5, 0.5};
    std::printf("%zu images in %s; batches of %lld at %lldx%lld (resize %lld)\n", n, rec.c_str(),
                static_cast<long long>(batch_size), static_cast<long long>(size),
                static_cast<long long>(size), static_cast<long long>(pre.load_size()));
    for (const int64_t w : workers) {
      arcface::LoaderOptions o;
      o.batch_size = batch_size;
      o.workers = w;
      o.random_crop = random_crop;
      o.random_flip = flip;
      o.progress = false;
      arcface::Loader loader(source, labels, pre, o);
      if (loader.batches_per_epoch() == 0) {
        throw std::runtime_error("fewer images than one batch: lower --batch-size");
      }
      loader.start_epoch(0);
      loader.next();  // the workers are running
      int64_t images = 0;
      const auto t0 = Clock::now();
      // A small file is read again, epoch after epoch, until enough batches are timed.
      for (int64_t b = 0, epoch = 0; b < batches;) {
        auto batch = loader.next();
        if (!batch) {
          loader.start_epoch(++epoch);
          continue;
        }
        images += batch->images.size(0);
        ++b;
      }
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      std::printf("workers %lld: %.0f images/s (%.0f per worker), %lld images in %.2f s\n",
                  static_cast<long long>(w), images / s, images / s / w,
                  static_cast<long long>(images), s);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
