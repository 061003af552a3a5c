// The image pipeline against OpenCV, which it replaced: the same pixels from decoding, colour
// conversion, resizing and Exif orientation (builds with OpenCV only).
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "arcface/error.h"
#include "arcface/image.h"
#include "arcface/image_cv.h"
#include "test_util.h"

namespace arcface {
namespace {

const fs::path kWhole = "Abel_Pacheco/Abel_Pacheco_0001.jpg";

double largest_difference(const Image& ours, const cv::Mat& theirs) {
  const cv::Mat mine = to_mat(ours);
  if (mine.size() != theirs.size() || mine.type() != theirs.type()) return 256;
  return cv::norm(mine, theirs, cv::NORM_INF);
}

// `bytes` (a JFIF JPEG) with an APP1 Exif segment giving `orientation` after the APP0.
std::vector<uint8_t> with_exif(std::vector<uint8_t> bytes, uint8_t orientation) {
  const size_t app0_end = 4 + ((static_cast<size_t>(bytes[4]) << 8) | bytes[5]);
  // "Exif\0\0", a little-endian TIFF header, one IFD entry: orientation (0x0112).
  const std::vector<uint8_t> app1 = {
      0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0, 'I',         'I', 0x2A, 0, 8, 0, 0, 0,
      1,    0,    0x12, 0x01, 3,   0,   1,   0,   0, 0, orientation, 0,   0,    0, 0, 0, 0, 0};
  bytes.insert(bytes.begin() + static_cast<long>(app0_end), app1.begin(), app1.end());
  return bytes;
}

TEST(ImageCv, ExifOrientationIsAppliedAsOpenCvDoes) {
  const auto plain = read_file_bytes(test::sample_dir() / "lfw" / kWhole);
  ASSERT_EQ(plain[3], 0xE0);  // APP0 (JFIF) first
  // A picture that is not symmetric, so that every orientation differs.
  const Image unturned = read_image(test::sample_dir() / "lfw" / kWhole, Color::BGR);
  for (uint8_t o = 1; o <= 8; ++o) {
    const auto bytes = with_exif(plain, o);
    const Image ours = decode_bytes(bytes.data(), bytes.size(), Color::BGR, "exif.jpg");
    const cv::Mat theirs = cv::imdecode(
        cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data())),
        cv::IMREAD_COLOR);
    EXPECT_EQ(largest_difference(ours, theirs), 0) << "orientation " << int(o);
    if (o > 1) EXPECT_NE(ours.pixels, unturned.pixels) << "orientation " << int(o);
  }
}

TEST(ImageCv, PngStillDecodes) {
  const Image bgr = read_image(test::sample_dir() / "lfw" / kWhole, Color::BGR);
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", to_mat(bgr), png));
  const Image back = decode_bytes(png.data(), png.size(), Color::BGR, "x.png");
  EXPECT_EQ(back.pixels, bgr.pixels);
}

TEST(ImageCv, MatRoundTrip) {
  const Image bgr = read_image(test::sample_dir() / "lfw" / kWhole, Color::BGR);
  EXPECT_EQ(from_mat(to_mat(bgr)).pixels, bgr.pixels);
  EXPECT_THROW(from_mat(cv::Mat(4, 4, CV_32FC1)), Error);
}

// TurboJPEG replaced cv::imread, our conversions and resampling cv::cvtColor and cv::resize:
// every LFW crop must come out the same, decoded in colour and in grayscale, as RGB, and at
// the sizes training and evaluation use and odd ones (shrunk by areas, enlarged bilinearly).
TEST(ImageCv, PipelineMatchesOpenCvOnEveryLfwCrop) {
  REQUIRE_SHARED_DATA();
  int64_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(test::lfw_root())) {
    if (entry.path().extension() != ".jpg") continue;
    const std::string path = entry.path().string();
    const Image bgr = read_image(entry.path(), Color::BGR);
    const cv::Mat cv_bgr = cv::imread(path, cv::IMREAD_COLOR);
    ASSERT_EQ(largest_difference(bgr, cv_bgr), 0) << path;
    ASSERT_EQ(largest_difference(read_image(entry.path(), Color::Gray),
                                 cv::imread(path, cv::IMREAD_GRAYSCALE)),
              0)
        << path;
    for (Color color : {Color::RGB, Color::Gray}) {
      for (int size : {72, 64, 56, 37, 128, 127}) {
        Preprocess pre;
        pre.color = color;
        pre.input_size = size;
        cv::Mat want;
        cv::cvtColor(cv_bgr, want, color == Color::RGB ? cv::COLOR_BGR2RGB : cv::COLOR_BGR2GRAY);
        cv::resize(want, want, {size, size}, 0, 0,
                   size < cv_bgr.rows ? cv::INTER_AREA : cv::INTER_LINEAR);
        const Image got = prepare_image(bgr, pre, path);
        ASSERT_EQ(largest_difference(got, want), 0) << path << " at " << size;
      }
    }
    ++files;
  }
  EXPECT_EQ(files, 13233);
}

TEST(ImageCv, DesaturateIsOpenCvLuma) {
  const Image rgb = prepare_image(read_image(test::sample_dir() / "lfw" / kWhole, Color::BGR),
                                  {112, Color::RGB}, "face");
  cv::Mat luma, want;
  cv::cvtColor(to_mat(rgb), luma, cv::COLOR_RGB2GRAY);
  cv::cvtColor(luma, want, cv::COLOR_GRAY2BGR);
  EXPECT_EQ(largest_difference(desaturate(rgb, Color::RGB), want), 0);
}

}  // namespace
}  // namespace arcface
