#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <mutex>
#include <numeric>
#include <thread>

#include <opencv2/imgcodecs.hpp>

#include "arcface/error.h"
#include "arcface/face_encoder.h"
#include "arcface/gallery_model.h"
#include "arcface/image.h"
#include "arcface/image_cv.h"
#include "arcface/server.h"
#include "arcface/service.h"
#include "fixture_model.h"

namespace arcface {
namespace {

std::vector<cv::Mat> sample_crops(size_t n) {
  std::vector<cv::Mat> crops;
  for (const auto& person : fs::directory_iterator(test::sample_dir() / "lfw")) {
    for (const auto& file : fs::directory_iterator(person.path())) {
      crops.push_back(to_mat(read_image(file.path(), Color::BGR)));
      if (crops.size() == n) return crops;
    }
  }
  return crops;
}

TEST(Batcher, CallersShareBatchesAndGetTheirOwnFaces) {
  Embedder embedder = Embedder::load(test::fixture_model());
  FaceEncoder encoder(embedder, {});
  const auto crops = sample_crops(8);
  ASSERT_EQ(crops.size(), 8u);
  const auto alone = encoder.describe(crops);

  std::mutex mutex;
  std::vector<size_t> batches;
  BatcherOptions options;
  options.max_batch = 8;
  options.max_wait = std::chrono::milliseconds(500);
  std::vector<std::vector<NewFace>> got(crops.size());
  {
    Batcher batcher(encoder, options, [&](size_t n) {
      std::lock_guard<std::mutex> lock(mutex);
      batches.push_back(n);
    });
    std::vector<std::thread> callers;
    for (size_t i = 0; i < crops.size(); ++i) {
      callers.emplace_back(
          [&, i] { got[i] = batcher.encode(crops[i], "crop " + std::to_string(i)); });
    }
    for (auto& t : callers) t.join();
  }
  // All eight arrived well within the wait: fewer runs than callers.
  EXPECT_LT(batches.size(), crops.size());
  EXPECT_EQ(std::accumulate(batches.begin(), batches.end(), size_t{0}), crops.size());
  for (size_t i = 0; i < crops.size(); ++i) {
    ASSERT_EQ(got[i].size(), 1u);
    EXPECT_EQ(got[i][0].source, "crop " + std::to_string(i));
    ASSERT_EQ(got[i][0].embedding.size(), alone[i].size());
    for (size_t j = 0; j < alone[i].size(); ++j) {
      ASSERT_NEAR(got[i][0].embedding[j], alone[i][j], 1e-4) << "caller " << i;
    }
  }
}

TEST(Batcher, MaxBatchOneRunsEachPhotoAlone) {
  Embedder embedder = Embedder::load(test::fixture_model());
  FaceEncoder encoder(embedder, {});
  const auto crops = sample_crops(4);
  std::atomic<size_t> largest{0}, runs{0};
  BatcherOptions options;
  options.max_batch = 1;
  {
    Batcher batcher(encoder, options, [&](size_t n) {
      largest = std::max<size_t>(largest, n);
      ++runs;
    });
    std::vector<std::future<std::vector<NewFace>>> pending;
    for (const auto& c : crops) pending.push_back(batcher.submit(c, "c"));
    for (auto& p : pending) EXPECT_EQ(p.get().size(), 1u);
  }
  EXPECT_EQ(largest, 1u);
  EXPECT_EQ(runs, crops.size());
}

TEST(Server, KeysCompareWhole) {
  EXPECT_TRUE(same_key("abc123", "abc123"));
  EXPECT_FALSE(same_key("abc124", "abc123"));
  EXPECT_FALSE(same_key("abc", "abc123"));
  EXPECT_FALSE(same_key("abc1234", "abc123"));
  EXPECT_FALSE(same_key("", "abc123"));
}

TEST(Image, EncodedSizeReadsHeadersOnly) {
  const auto jpeg = read_file_bytes(test::sample_dir() / "lfw" / "AJ_Lamas" / "AJ_Lamas_0001.jpg");
  EXPECT_EQ(encoded_size(jpeg.data(), jpeg.size()), (ImageSize{112, 112}));
  // A PNG header alone declares its size.
  const uint8_t png[24] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13,
                           'I',  'H', 'D', 'R', 0,    1,    0,    0,    0, 0, 2, 0};
  EXPECT_EQ(encoded_size(png, sizeof png), (ImageSize{65536, 512}));
  const std::string text = "not an image";
  EXPECT_TRUE(encoded_size(reinterpret_cast<const uint8_t*>(text.data()), text.size()).empty());
}

TEST(Service, ServerPathsStayBelowTheRoot) {
  const auto dir = test::temp_dir("serve_paths");
  fs::create_directories(dir / "root" / "people");
  std::ofstream(dir / "root" / "people" / "a.jpg") << "x";
  std::ofstream(dir / "secret.jpg") << "x";
  fs::create_symlink(dir / "secret.jpg", dir / "root" / "people" / "out.jpg");
  Embedder embedder = Embedder::load(test::fixture_model());
  FaceEncoder encoder(embedder, {});
  Batcher batcher(encoder, {});
  Gallery gallery = Gallery::create(
      dir / "g.db", gallery_model(embedder, ModelSource{test::fixture_model()}, FlipMode::Sum));
  ServiceOptions options;
  options.images_root = dir / "root";
  Service service(gallery, batcher, options);
  EXPECT_EQ(service.server_file("people/a.jpg"), fs::canonical(dir / "root" / "people" / "a.jpg"));
  for (const std::string& bad :
       std::vector<std::string>{"../secret.jpg", "people/../../secret.jpg", "people/out.jpg",
                                (dir / "secret.jpg").string()}) {
    try {
      service.server_file(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 403) << bad;
    }
  }
  EXPECT_THROW(service.server_file("people/none.jpg"), ApiError);
}

Upload png_upload(const cv::Mat& image, const std::string& name) {
  std::vector<uchar> bytes;
  cv::imencode(".png", image, bytes);
  return {name, std::string(bytes.begin(), bytes.end())};
}

TEST(Service, WithoutDetectorOnlyFaceCropsAndNamesThatPrint) {
  const auto dir = test::temp_dir("serve_crops");
  Embedder embedder = Embedder::load(test::fixture_model());
  FaceEncoder encoder(embedder, {});
  Batcher batcher(encoder, {});
  Gallery gallery = Gallery::create(
      dir / "g.db", gallery_model(embedder, ModelSource{test::fixture_model()}, FlipMode::Sum));
  Service service(gallery, batcher, {});
  // A 1x1 photo is no aligned crop: refused with its size, never searched.
  for (const auto& [size, text] :
       {std::pair{cv::Size(1, 1), "1x1"}, {cv::Size(4000, 300), "4000x300"}}) {
    try {
      service.search(png_upload(cv::Mat(size, CV_8UC3, cv::Scalar(90, 90, 90)), "tiny.png"), 5,
                     std::nan(""));
      ADD_FAILURE() << text << " was searched";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 422);
      EXPECT_EQ(e.code, "not_a_face_crop");
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  }
  const auto found = service.search(png_upload(sample_crops(1)[0], "crop.png"), 5, std::nan(""));
  EXPECT_EQ(found["faces"].size(), 1u);
  EXPECT_THROW(encoder.encode(cv::Mat(1, 1, CV_8UC3), "tiny.png"), Error);

  for (const std::string& bad : {std::string("a\0b", 3), std::string(100000, 'x')}) {
    try {
      service.create_subject(bad, nullptr);
      ADD_FAILURE() << "a bad name was created";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
    }
  }
  EXPECT_TRUE(gallery.subjects().empty());
}

}  // namespace
}  // namespace arcface
