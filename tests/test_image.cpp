#include <fstream>

#include "arcface/error.h"
#include "arcface/image.h"
#include "arcface/loader.h"
#include "test_util.h"

namespace arcface {
namespace {

const fs::path kWhole = "Abel_Pacheco/Abel_Pacheco_0001.jpg";

// A real crop cut to its first `bytes`: what a failed copy or download leaves.
fs::path truncated_copy(const fs::path& dir, size_t bytes) {
  const auto whole = read_file_bytes(test::sample_dir() / "lfw" / kWhole);
  fs::create_directories(dir / kWhole.parent_path());
  std::ofstream(dir / kWhole, std::ios::binary)
      .write(reinterpret_cast<const char*>(whole.data()), static_cast<std::streamsize>(bytes));
  return dir / kWhole;
}

TEST(Image, TruncatedJpegIsAnErrorNamingTheFile) {
  const auto dir = test::temp_dir("image_truncated");
  const auto path = truncated_copy(dir, 700);
  // OpenCV decodes it, the missing part grey: the silent wrong input this guards against.
  for (Color color : {Color::BGR, Color::RGB, Color::Gray}) {
    try {
      read_image(path, color);
      FAIL() << "a truncated JPEG was decoded as whole";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path.string()), std::string::npos) << message;
      EXPECT_NE(message.find("Premature end of JPEG file"), std::string::npos) << message;
    }
  }
}

TEST(Image, CorruptDataAndNonImagesAreErrors) {
  const auto dir = test::temp_dir("image_corrupt");
  auto bytes = read_file_bytes(test::sample_dir() / "lfw" / kWhole);
  // Entropy-coded data overwritten in the middle: libjpeg-turbo reports corrupt data.
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 64; ++i) bytes[i] = 0xFF;
  EXPECT_THROW(decode_bytes(bytes.data(), bytes.size(), Color::BGR, "corrupt.jpg"), Error);
  const std::string text = "not an image";
  EXPECT_THROW(decode_bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size(), Color::BGR,
                            "text.jpg"),
               Error);
  EXPECT_THROW(read_image(dir / "absent.jpg", Color::BGR), Error);
}

// Junk between two segments loses no pixel: decoded, and equal to the clean file.
TEST(Image, ExtraneousBytesBeforeAMarkerAreNotDamage) {
  auto bytes = read_file_bytes(test::sample_dir() / "lfw" / kWhole);
  const Image clean = decode_bytes(bytes.data(), bytes.size(), Color::BGR, "clean.jpg");
  ASSERT_EQ(bytes[bytes.size() - 2], 0xFF);
  bytes.insert(bytes.end() - 2, {0x00, 0x00});  // before the end-of-image marker
  const Image junk = decode_bytes(bytes.data(), bytes.size(), Color::BGR, "junk.jpg");
  EXPECT_EQ(junk.pixels, clean.pixels);
}

// An Exif orientation after the JFIF segment turns the picture upright (6: a quarter turn
// clockwise), as OpenCV's imread does.
TEST(Image, ExifOrientationAfterJfifIsApplied) {
  auto bytes = read_file_bytes(test::sample_dir() / "lfw" / kWhole);
  const Image unturned = decode_bytes(bytes.data(), bytes.size(), Color::BGR, "plain.jpg");
  ASSERT_EQ(bytes[3], 0xE0);  // APP0 (JFIF) first
  const size_t app0_end = 4 + ((static_cast<size_t>(bytes[4]) << 8) | bytes[5]);
  // APP1: "Exif\0\0", a little-endian TIFF header, one IFD entry: orientation (0x0112) = 6.
  const std::vector<uint8_t> app1 = {
      0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 0x2A, 0, 8, 0, 0, 0,
      1,    0,    0x12, 0x01, 3,   0,   1,   0,   0, 0, 6,   0,   0,    0, 0, 0, 0, 0};
  bytes.insert(bytes.begin() + static_cast<long>(app0_end), app1.begin(), app1.end());
  const Image turned = decode_bytes(bytes.data(), bytes.size(), Color::BGR, "exif.jpg");
  ASSERT_EQ(turned.rows, unturned.cols);
  ASSERT_EQ(turned.cols, unturned.rows);
  for (int y = 0; y < turned.rows; ++y) {
    for (int x = 0; x < turned.cols; ++x) {
      for (int c = 0; c < 3; ++c) {
        ASSERT_EQ(turned.row(y)[3 * x + c], unturned.row(unturned.rows - 1 - x)[3 * y + c]);
      }
    }
  }
}

// Halving averages each 2x2 block; a flat picture stays flat at any size.
TEST(Image, ResizeAveragesWhenShrinkingAndKeepsFlatImagesFlat) {
  Image small(2, 4, 1);
  small.pixels = {0, 10, 20, 30, 2, 12, 22, 32};
  const Image half = resize(small, 1, 2);
  EXPECT_EQ(half.pixels, (std::vector<uint8_t>{6, 26}));
  const Image flat(112, 112, 3, 77);
  for (int size : {72, 64, 37, 128, 150}) {
    const Image r = resize(flat, size, size);
    EXPECT_EQ(r.pixels, std::vector<uint8_t>(static_cast<size_t>(size) * size * 3, 77)) << size;
  }
}

TEST(Image, FindBadImagesListsThemInOrder) {
  const auto dir = test::temp_dir("image_find_bad");
  truncated_copy(dir, 700);
  fs::create_directories(dir / "b");
  fs::copy_file(test::sample_dir() / "lfw" / kWhole, dir / "b" / "whole.jpg");
  std::ofstream(dir / "b" / "text.jpg") << "garbage";
  const ImageSource source{dir, {"b/whole.jpg", kWhole.string(), "b/text.jpg", "b/absent.jpg"}};
  const auto bad = find_bad_images(source, 2);
  ASSERT_EQ(bad.size(), 3u);
  EXPECT_EQ(bad[0].name, kWhole.string());
  EXPECT_NE(bad[0].reason.find("damaged"), std::string::npos) << bad[0].reason;
  EXPECT_EQ(bad[1].name, "b/text.jpg");
  EXPECT_EQ(bad[2].name, "b/absent.jpg");
  EXPECT_NE(bad[2].reason.find("not found"), std::string::npos) << bad[2].reason;
}

TEST(Image, LoaderRefusesATruncatedImage) {
  const auto dir = test::temp_dir("image_loader");
  truncated_copy(dir, 700);
  Preprocess pre;
  pre.input_size = 32;
  LoaderOptions o;
  o.batch_size = 1;
  o.progress = false;
  Loader loader(ImageSource{dir, {kWhole.string()}}, {}, pre, o);
  loader.start_epoch(0);
  try {
    loader.next();
    FAIL() << "the loader gave a truncated image";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Abel_Pacheco_0001.jpg' is damaged"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace arcface
