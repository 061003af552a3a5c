#include <cmath>
#include <fstream>
#include <sstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "arcface/aligner.h"
#include "arcface/error.h"
#include "test_util.h"

namespace arcface {
namespace {

namespace fs = std::filesystem;

fs::path fixtures() { return test::source_dir() / "tests" / "data"; }

struct Reference {
  std::string path;
  Face face;
};

// tests/data/raw/landmarks.txt: path conf box(4) then 5 points.
std::vector<Reference> references() {
  std::vector<Reference> out;
  std::ifstream in(fixtures() / "raw" / "landmarks.txt");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
    Reference r;
    float conf, x, y, w, h;
    f >> r.path >> conf >> x >> y >> w >> h;
    r.face.box = {x, y, w, h};
    r.face.score = conf / 100;
    for (auto& p : r.face.landmarks) f >> p.x >> p.y;
    out.push_back(r);
  }
  return out;
}

TEST(Align, RecoversAKnownSimilarity) {
  const double angle = 0.3, scale = 1.7, tx = 12.5, ty = -4.25;
  std::vector<cv::Point2f> from{{0, 0}, {10, 2}, {3, 7}, {-4, 5}, {6, -3}}, to;
  for (const auto& p : from) {
    to.emplace_back(scale * (std::cos(angle) * p.x - std::sin(angle) * p.y) + tx,
                    scale * (std::sin(angle) * p.x + std::cos(angle) * p.y) + ty);
  }
  const cv::Mat m = similarity_transform(from, to);
  EXPECT_NEAR(m.at<double>(0, 0), scale * std::cos(angle), 1e-5);
  EXPECT_NEAR(m.at<double>(0, 1), -scale * std::sin(angle), 1e-5);
  EXPECT_NEAR(m.at<double>(1, 0), scale * std::sin(angle), 1e-5);
  EXPECT_NEAR(m.at<double>(0, 2), tx, 1e-4);
  EXPECT_NEAR(m.at<double>(1, 2), ty, 1e-4);
  // A mirrored target is fitted by a proper rotation, never a reflection.
  std::vector<cv::Point2f> mirrored;
  for (const auto& p : from) mirrored.emplace_back(-p.x, p.y);
  const cv::Mat r = similarity_transform(from, mirrored);
  EXPECT_GT(r.at<double>(0, 0) * r.at<double>(1, 1) - r.at<double>(0, 1) * r.at<double>(1, 0), 0);
  EXPECT_THROW(similarity_transform({{1, 1}, {1, 1}}, {{0, 0}, {1, 1}}), Error);
}

TEST(Align, TemplatesForOtherSizes) {
  const auto t = arcface_template(96, 112);
  EXPECT_NEAR(t[0].x, 38.2946f - 8, 1e-4);
  EXPECT_NEAR(t[0].y, 51.6963f, 1e-4);
  const auto big = arcface_template(128, 128);
  EXPECT_NEAR(big[4].x, 70.7299f * 128 / 112, 1e-4);
}

TEST(Align, ReproducesTheLfwCropsFromTheirLandmarks) {
  for (const auto& r : references()) {
    const cv::Mat raw = cv::imread((fixtures() / "raw" / r.path).string());
    const cv::Mat golden = cv::imread((fixtures() / "aligned" / r.path).string());
    ASSERT_FALSE(raw.empty()) << r.path;
    const cv::Mat ours = align_face(raw, r.face);
    cv::Mat diff;
    cv::absdiff(ours, golden, diff);
    // The reference crops are JPEGs of the same warp: about one grey level apart.
    EXPECT_LT(cv::mean(diff)[0], 2.0) << r.path;
  }
}

TEST(Align, MainFaceIsLargeAndCentral) {
  Face small_centre, big_corner, big_centre;
  small_centre.box = {45, 45, 10, 10};
  big_corner.box = {0, 0, 40, 40};
  big_centre.box = {30, 30, 40, 40};
  EXPECT_EQ(main_face({small_centre, big_corner, big_centre}, {100, 100}), 2);
  EXPECT_EQ(main_face({small_centre, big_corner}, {100, 100}), 0);
  EXPECT_EQ(main_face({}, {100, 100}), -1);
}

// Each detector finds the face of the real images, with landmarks near the reference ones.
void check_detector(const DetectorOptions& options) {
  auto detector = make_detector(options);
  for (const auto& r : references()) {
    const cv::Mat raw = cv::imread((fixtures() / "raw" / r.path).string());
    const auto faces = detector->detect(raw);
    const int main = main_face(faces, raw.size());
    ASSERT_GE(main, 0) << options.type << " found no face in " << r.path;
    const auto& ref = r.face.landmarks;
    const double eyes = cv::norm(ref[0] - ref[1]);
    double error = 0;
    for (int k = 0; k < 5; ++k) error += cv::norm(faces[main].landmarks[k] - ref[k]) / eyes / 5;
    EXPECT_LT(error, 0.15) << options.type << " on " << r.path;
    EXPECT_GT(faces[main].score, 0.0f);
  }
}

// dlib is the default detector: a build without it skips what uses it.
#ifdef ARCFACE_WITH_DLIB
#define REQUIRE_DLIB()
#else
#define REQUIRE_DLIB() GTEST_SKIP() << "this build has no dlib"
#endif

TEST(Detector, Dlib) {
  REQUIRE_DLIB();
  check_detector({"dlib", "", 0.3f});
}

TEST(Detector, YuNet) {
  const auto model = test::shared_data() / "models" / "yunet" / "face_detection_yunet_2023mar.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << "YuNet model not found: " << model;
  check_detector({"yunet", model.string(), 0.5f});
}

TEST(Detector, Mtcnn) {
  const auto folder = test::shared_data() / "models" / "mtcnn";
  if (!fs::exists(folder)) GTEST_SKIP() << "MTCNN weights not found: " << folder;
  check_detector({"mtcnn", folder.string(), 0.5f});
}

TEST(Align, OtherSizesAndGrayscale) {
  REQUIRE_DLIB();
  AlignOptions o;
  o.width = 96;
  o.height = 112;
  o.grayscale = true;
  FaceAligner aligner(o);
  const auto r = aligner.align(cv::imread((fixtures() / "raw" / references()[0].path).string()));
  ASSERT_TRUE(r.face.has_value());
  EXPECT_EQ(r.crop.size(), cv::Size(96, 112));
  EXPECT_EQ(r.crop.channels(), 1);
  // Crop mode (seed 002): a square of the requested width around the box.
  o.margin = 16;
  o.grayscale = false;
  const auto c =
      FaceAligner(o).align(cv::imread((fixtures() / "raw" / references()[0].path).string()));
  EXPECT_EQ(c.crop.size(), cv::Size(96, 96));
  EXPECT_EQ(c.crop.channels(), 3);
}

TEST(Detector, BadOptionsAreClearErrors) {
  EXPECT_THROW(make_detector({"haar", "", 0.5f}), Error);
  EXPECT_THROW(make_detector({"yunet", "/nonexistent.onnx", 0.5f}), Error);
  EXPECT_THROW(make_detector({"mtcnn", "/nonexistent", 0.5f}), Error);
  EXPECT_THROW(make_detector({"dlib", "/nonexistent.dat", 0.5f}), Error);
}

TEST(Align, TreeWithFailuresAndResume) {
  REQUIRE_DLIB();
  const auto src = test::temp_dir("align_src"), dst = test::temp_dir("align_dst");
  for (const auto& r : references()) {
    fs::create_directories((src / r.path).parent_path());
    fs::copy_file(fixtures() / "raw" / r.path, src / r.path);
  }
  fs::create_directories(src / "Broken");
  std::ofstream(src / "Broken" / "Broken_0001.jpg") << "not a jpeg";
  cv::imwrite((src / "Broken" / "Blank_0001.jpg").string(),
              cv::Mat(200, 200, CV_8UC3, cv::Scalar(90, 90, 90)));
  AlignOptions o;
  const auto first = align_tree(src, dst, o, 2, false);
  EXPECT_EQ(first.images, 6);
  EXPECT_EQ(first.aligned, 4);
  EXPECT_EQ(first.fallbacks, 1);
  EXPECT_EQ(first.unreadable, 1);
  const cv::Mat crop = cv::imread((dst / references()[0].path).string());
  EXPECT_EQ(crop.size(), cv::Size(112, 112));
  EXPECT_TRUE(fs::exists(dst / "Broken" / "Blank_0001.jpg"));
  std::ifstream failures(dst / "failures.txt");
  std::string text((std::istreambuf_iterator<char>(failures)), {});
  EXPECT_NE(text.find("Broken/Broken_0001.jpg unreadable"), std::string::npos) << text;
  EXPECT_NE(text.find("Broken/Blank_0001.jpg no_face"), std::string::npos) << text;
  // Started again, it redoes only the unreadable image.
  const auto second = align_tree(src, dst, o, 1, false);
  EXPECT_EQ(second.skipped, 5);
  EXPECT_EQ(second.unreadable, 1);
}

}  // namespace
}  // namespace arcface
