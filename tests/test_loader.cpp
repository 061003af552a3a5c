#include <torch/torch.h>

#include <fstream>

#include "arcface/dataset.h"
#include "arcface/error.h"
#include "arcface/loader.h"
#include "test_util.h"

namespace arcface {
namespace {

struct SampleSet {
  ImageSource source;
  std::vector<int64_t> labels;
};

SampleSet sample_set() {
  const auto data = dataset_from_folders(test::sample_dir() / "train");
  SampleSet s;
  s.source.root = data.root;
  for (const auto& x : data.samples) {
    s.source.names.push_back(x.path);
    s.labels.push_back(x.label);
  }
  return s;
}

Preprocess gray(int64_t size, int64_t resize) {
  Preprocess p;
  p.input_size = size;
  p.resize = resize;
  p.color = Color::Gray;
  return p;
}

LoaderOptions training_options(bool cache) {
  LoaderOptions o;
  o.batch_size = 16;
  o.drop_last = true;
  o.random_flip = true;
  o.random_crop = true;
  o.workers = 2;
  o.cache = cache;
  o.seed = 5;
  return o;
}

std::vector<Batch> epoch(Loader& loader, int64_t e, int64_t first = 0) {
  loader.start_epoch(e, first);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

TEST(Loader, SameSeedSameBatchesWithOrWithoutCache) {
  auto s = sample_set();
  Loader cached(s.source, s.labels, gray(64, 72), training_options(true));
  Loader streamed(s.source, s.labels, gray(64, 72), training_options(false));
  EXPECT_EQ(cached.size(), 283);
  EXPECT_EQ(cached.batches_per_epoch(), 283 / 16);
  const auto a = epoch(cached, 1), b = epoch(streamed, 1);
  ASSERT_EQ(a.size(), 17u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].indices, b[i].indices);
    EXPECT_TRUE(torch::equal(a[i].images, b[i].images));
    EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels));
  }
  EXPECT_EQ(a[0].images.sizes(), (std::vector<int64_t>{16, 1, 64, 64}));
  // Another epoch is another order; a resumed epoch continues the same one.
  const auto other = epoch(cached, 2);
  EXPECT_NE(a[0].indices, other[0].indices);
  const auto resumed = epoch(cached, 1, 5);
  ASSERT_EQ(resumed.size(), a.size() - 5);
  EXPECT_TRUE(torch::equal(resumed[0].images, a[5].images));
}

TEST(Loader, NormalisesAsTheConfigSays) {
  // One pixel value checked by hand: (v / 255 - 0.5) / 0.5 at the centre crop, no flip.
  auto s = sample_set();
  auto pre = gray(64, 0);
  LoaderOptions o;
  o.batch_size = 1;
  o.shuffle = false;
  Loader loader(s.source, s.labels, pre, o);
  loader.start_epoch(0);
  auto batch = *loader.next();
  const Image image = load_image(s.source.root / s.source.names[0], pre);
  const double expected = (image.row(10)[20] / 255.0 - 0.5) / 0.5;
  EXPECT_NEAR(batch.images[0][0][10][20].item<double>(), expected, 1e-6);
  EXPECT_EQ(batch.labels[0].item<int64_t>(), s.labels[0]);
}

TEST(Loader, RandomGrayShowsSomeColourImagesAsTheirLuma) {
  auto s = sample_set();
  Preprocess rgb;
  rgb.input_size = 64;
  rgb.color = Color::RGB;
  auto o = training_options(/*cache=*/true);
  o.random_flip = false;
  o.random_gray = 0.5;
  o.progress = false;
  Loader loader(s.source, s.labels, rgb, o);
  const auto batches = epoch(loader, 0);
  int64_t gray = 0, colour = 0;
  for (const auto& b : batches) {
    for (int64_t k = 0; k < b.images.size(0); ++k) {
      const auto image = b.images[k];
      const size_t i = static_cast<size_t>(b.indices[k]);
      const Image decoded = load_image(s.source.root / s.source.names[i], rgb);
      const Image expected = torch::equal(image[0], image[1]) && torch::equal(image[1], image[2])
                                 ? (++gray, desaturate(decoded, Color::RGB))
                                 : (++colour, decoded);
      std::vector<float> want(3 * 64 * 64);
      write_tensor(expected, rgb, 0, 0, false, want.data());
      EXPECT_TRUE(torch::equal(image, torch::from_blob(want.data(), {3, 64, 64})))
          << s.source.names[i];
    }
  }
  // 272 draws at one half: far outside 100..172 only with probability < 1e-5.
  EXPECT_GT(gray, 100);
  EXPECT_GT(colour, 100);
}

TEST(Loader, CorruptImageNamesTheFile) {
  const auto dir = test::temp_dir("loader_bad");
  std::filesystem::create_directories(dir / "p");
  std::ofstream(dir / "p" / "bad.jpg") << "this is not a jpeg";
  std::filesystem::copy_file(test::sample_dir() / "lfw" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg",
                             dir / "p" / "good.jpg");
  ImageSource source{dir, {"p/good.jpg", "p/bad.jpg"}, {}};
  for (bool cache : {true, false}) {
    auto options = training_options(cache);
    options.batch_size = 2;
    try {
      Loader loader(source, {0, 0}, gray(64, 0), options);
      loader.start_epoch(0);
      while (loader.next()) {
      }
      FAIL() << "no error, cache " << cache;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.jpg"), std::string::npos) << e.what();
    }
  }
  ImageSource missing{dir, {"p/none.jpg"}, {}};
  EXPECT_THROW(Loader(missing, {0}, gray(64, 0), training_options(true)), Error);
}

TEST(Loader, ShardsTogetherGiveTheUnshardedBatch) {
  // Two ranks of 8 images see, batch by batch, exactly one process's batch of 16: the same
  // images with the same random crops and flips.
  const auto set = sample_set();
  auto o = training_options(/*cache=*/true);
  o.progress = false;
  Loader whole(set.source, set.labels, gray(48, 52), o);
  o.batch_size = 8;
  o.shards = 2;
  o.shard = 0;
  Loader first(set.source, set.labels, gray(48, 52), o);
  o.shard = 1;
  Loader second(set.source, set.labels, gray(48, 52), o);
  ASSERT_EQ(first.batches_per_epoch(), whole.batches_per_epoch());
  for (auto* l : {&whole, &first, &second}) l->start_epoch(3, 2);
  int64_t batches = 0;
  while (auto w = whole.next()) {
    auto a = first.next(), b = second.next();
    ASSERT_TRUE(a && b);
    EXPECT_TRUE(torch::equal(torch::cat({a->images, b->images}), w->images));
    EXPECT_TRUE(torch::equal(torch::cat({a->labels, b->labels}), w->labels));
    ++batches;
  }
  EXPECT_EQ(batches, whole.batches_per_epoch() - 2);
  EXPECT_FALSE(first.next());
  o.shard = 2;
  EXPECT_THROW(Loader(set.source, set.labels, gray(48, 52), o), Error);
}

}  // namespace
}  // namespace arcface
