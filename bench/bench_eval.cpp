// Evaluation throughput: the distinct images of an LFW pairs list embedded with their mirror
// images exactly as `arcface eval` does (decoding in worker threads, batched network), with
// the time split between the network and waiting for decoded images, GFLOP/s and the fraction
// of the peak of its precision measured in the same run. One line of JSON.
#include <torch/torch.h>

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "arcface/checkpoint.h"
#include "arcface/evaluate.h"
#include "arcface/pairs.h"
#include "arcface/system.h"
#include "bench_util.h"

extern "C" {
const char* malloc_conf = "dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0";
}

int main(int argc, char** argv) {
  CLI::App app{"evaluation throughput"};
  std::string model, root = "../shared/data/lfw/lfw-align-112",
                     pairs_file = "../shared/data/lfw/pairs.txt";
  std::string flip = "concat", precision = "fp32";
  int64_t images = 0, batch = 64, workers = 1;
  int threads = 0;
  app.add_option("--model", model, "a checkpoint of ours")->required();
  app.add_option("--root", root)->capture_default_str();
  app.add_option("--pairs", pairs_file)->capture_default_str();
  app.add_option("--images", images, "only the first N distinct images (0: all)");
  app.add_option("--batch-size", batch)->capture_default_str();
  app.add_option("--workers", workers, "decoding threads")->capture_default_str();
  app.add_option("--flip", flip)->capture_default_str();
  app.add_option("--threads", threads);
  app.add_option("--precision", precision, "fp32, bf16 or auto")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  using namespace arcface;
  threads = configure_threads(threads);
  const Checkpoint ck = load_checkpoint(model);
  const double macs = forward_macs(*make_backbone(ck.backbone));
  Embedder embedder = Embedder::load(model);
  embedder.precision(parse_precision(precision));
  PairList pairs = read_pairs(pairs_file, PairsFormat::Auto);
  std::vector<std::string> names = pairs.images;
  if (images > 0 && images < static_cast<int64_t>(names.size())) names.resize(images);

  EvalOptions o;
  o.flip = parse_flip_mode(flip);
  o.batch_size = batch;
  o.workers = workers;
  o.progress = false;
  // Warm-up on one batch: oneDNN picks its kernels on first use.
  embed_images(embedder,
               ImageSource{root,
                           {names.begin(), names.begin() + std::min<size_t>(batch, names.size())},
                           {},
                           {},
                           {},
                           {}},
               o);
  EmbedTiming t;
  embed_images(embedder, ImageSource{root, names, {}, {}, {}, {}}, o, &t);

  const double forwards = o.flip == FlipMode::None ? 1 : 2;
  const double gflop_per_image = forwards * 2 * macs / 1e9;
  const double n = static_cast<double>(names.size());
  const bench::Peak peak = bench::measure_peak(embedder.precision());
  const auto sys = system_info();
  nlohmann::json out = {
      {"side", "C++ libtorch"},
      {"backbone", ck.backbone.name()},
      {"input", describe(ck.preprocess)},
      {"images", names.size()},
      {"flip", flip},
      {"precision", to_string(embedder.precision())},
      {"batch", batch},
      {"workers", workers},
      {"threads", threads},
      {"allocator", sys.allocator},
      {"seconds", t.seconds},
      {"images_per_s", n / t.seconds},
      {"network_seconds", t.network_seconds},
      {"decode_wait_seconds", t.wait_seconds},
      {"gflop_per_image", gflop_per_image},
      {"network_gflops", n * gflop_per_image / t.network_seconds},
      {"peak_gflops", peak.gflops},
      {"peak_source", peak.source},
      {"network_fraction_of_peak", n * gflop_per_image / t.network_seconds / peak.gflops},
      {"peak_rss_mib", peak_rss_mib()}};
  std::cout << out.dump() << std::endl;
}
