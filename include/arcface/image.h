#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arcface/names.h"

namespace arcface {

namespace fs = std::filesystem;

/// An 8-bit image: `rows` rows of `cols` pixels of `channels` bytes each (gray, BGR or RGB as
/// its producer says), packed without padding. The image pipeline's own type, so that decoding
/// and preprocessing need no OpenCV (which the core build does without).
struct Image {
  int rows = 0, cols = 0, channels = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int rows, int cols, int channels, uint8_t fill = 0);
  bool empty() const { return pixels.empty(); }
  size_t row_bytes() const { return static_cast<size_t>(cols) * channels; }
  uint8_t* row(int y) { return pixels.data() + y * row_bytes(); }
  const uint8_t* row(int y) const { return pixels.data() + y * row_bytes(); }
};

struct ImageSize {
  int width = 0, height = 0;
  bool empty() const { return width <= 0 || height <= 0; }
  bool operator==(const ImageSize& o) const { return width == o.width && height == o.height; }
};

/// `image` at `rows` x `cols`, resampled as OpenCV's cv::resize does, to the same pixels: by
/// pixel areas when shrinking (INTER_AREA), bilinearly otherwise (INTER_LINEAR; also when one
/// side shrinks and the other grows, where OpenCV's area mode has a variant of its own).
Image resize(const Image& image, int rows, int cols);

/// How an aligned face becomes network input; stored in checkpoints so that evaluation
/// prepares images exactly as training did.
struct Preprocess {
  int64_t input_size = 112;  // square network input
  Color color = Color::RGB;
  int64_t resize = 0;  // decoded images are resized to this, then cropped; 0 = input_size
  std::vector<double> mean{0.5};  // per channel (or one for all), on 0..1 pixel values
  std::vector<double> std{0.5};

  int64_t channels() const { return color == Color::Gray ? 1 : 3; }
  int64_t load_size() const { return resize > 0 ? resize : input_size; }
  nlohmann::json to_json() const;
  static Preprocess from_json(const nlohmann::json& j);
};

/// "128x128 gray, resize 128, (x/255 - mean 0.5) / std 0.5", for reports and logs.
std::string describe(const Preprocess& p);

/// A colour image (`color` RGB or BGR) as a grayscale photo decoded in colour looks: its luma
/// in all three channels.
Image desaturate(const Image& image, Color color);

/// Decodes an encoded image (JPEG through TurboJPEG, other formats through OpenCV where the
/// build has it) as OpenCV's imread would (BGR, or gray for Color::Gray). A truncated or corrupt
/// JPEG, which OpenCV decodes with a grey remainder, is an Error naming `name`.
Image decode_bytes(const uint8_t* data, size_t size, Color color, const std::string& name);

/// The width and height a JPEG or PNG declares in its header, read without decoding it (to
/// refuse a picture too large before its pixels are allocated); empty for anything else.
ImageSize encoded_size(const uint8_t* data, size_t size);

/// The bytes of a file; an Error naming it when it is missing or unreadable.
std::vector<uint8_t> read_file_bytes(const fs::path& path);

/// Reads an image file as OpenCV does (BGR, or gray for Color::Gray), unresized. Throws an
/// Error naming the file when it is missing, unreadable or not an image.
Image read_image(const fs::path& path, Color color);

/// Decodes an image file in the preprocessing's colour and resizes it to load_size().
/// Throws an Error naming the file when it is missing, unreadable or not an image.
Image load_image(const fs::path& path, const Preprocess& pre);

/// The same for encoded bytes held in memory; `name` identifies them in errors.
Image decode_image(const std::vector<uint8_t>& bytes, const Preprocess& pre,
                   const std::string& name);

/// Brings an already decoded image (BGR, BGRA or gray, any size) to the preprocessing's colour
/// and load_size().
Image prepare_image(const Image& image, const Preprocess& pre, const std::string& name);

/// Normalises the input_size crop at (x, y) of a load_size() image, mirrored if `flip`, into
/// `out`, a [C, input_size, input_size] float buffer.
void write_tensor(const Image& image, const Preprocess& pre, int x, int y, bool flip, float* out);

/// Turns a decoded BGR photo (named for records) into an aligned face crop.
using FaceCrop = std::function<Image(const Image& bgr, const std::string& name)>;

class RecordFile;

/// Images to decode: files under `root`, encoded bytes in memory (`encoded` non-empty), or
/// images of a RecordIO file (`records`, image i being its images()[record_index[i]]).
struct ImageSource {
  fs::path root;
  std::vector<std::string> names;  // paths relative to root, or labels for `encoded`
  std::vector<std::vector<uint8_t>> encoded;
  /// Raw photos: finds and aligns the face of each decoded (BGR) image before `pre` applies.
  FaceCrop face_crop;
  std::shared_ptr<const RecordFile> records;
  std::vector<size_t> record_index;
  /// The encoded bytes of image i, from memory or the record file (not for plain files).
  std::vector<uint8_t> bytes(size_t i) const;
  size_t size() const { return names.size(); }
  Image load(size_t i, const Preprocess& pre) const;
};

/// An image that cannot be used, and why.
struct BadImage {
  std::string name, reason;
};

/// Decodes every image of `source` once, in `threads` threads, and lists, in source order, those
/// that are missing, unreadable, truncated or corrupt.
std::vector<BadImage> find_bad_images(const ImageSource& source, int threads);

}  // namespace arcface
