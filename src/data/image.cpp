#include "arcface/image.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include <turbojpeg.h>
#ifdef ARCFACE_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>

#include "arcface/image_cv.h"
#endif

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "arcface/recordio.h"

namespace arcface {

nlohmann::json Preprocess::to_json() const {
  return {{"input_size", input_size},
          {"color", to_string(color)},
          {"resize", resize},
          {"mean", mean},
          {"std", std}};
}

Preprocess Preprocess::from_json(const nlohmann::json& j) {
  Preprocess p;
  p.input_size = j.at("input_size").get<int64_t>();
  p.color = parse_color(j.at("color").get<std::string>());
  p.resize = j.at("resize").get<int64_t>();
  p.mean = j.at("mean").get<std::vector<double>>();
  p.std = j.at("std").get<std::vector<double>>();
  return p;
}

Image::Image(int rows, int cols, int channels, uint8_t fill)
    : rows(rows),
      cols(cols),
      channels(channels),
      pixels(static_cast<size_t>(rows) * cols * channels, fill) {}

namespace {

// Source pixels and weights that make one output pixel along an axis.
using Taps = std::vector<std::vector<std::pair<int, float>>>;

// OpenCV's INTER_AREA (computeResizeAreaTab): each output pixel averages the source pixels
// its footprint covers, partly covered ones by the part covered.
Taps area_taps(int from, int to, double scale) {
  Taps taps(to);
  for (int d = 0; d < to; ++d) {
    const double f1 = d * scale, f2 = f1 + scale;
    const double cell = std::min(scale, from - f1);
    const int s2 = std::min(static_cast<int>(std::floor(f2)), from - 1);
    const int s1 = std::min(static_cast<int>(std::ceil(f1)), s2);
    if (s1 - f1 > 1e-3) taps[d].emplace_back(s1 - 1, static_cast<float>((s1 - f1) / cell));
    for (int s = s1; s < s2; ++s) taps[d].emplace_back(s, static_cast<float>(1.0 / cell));
    if (f2 - s2 > 1e-3) {
      taps[d].emplace_back(s2, static_cast<float>(std::min(std::min(f2 - s2, 1.0), cell) / cell));
    }
  }
  return taps;
}

// Area resampling by a fractional factor, in float as OpenCV's: across each row, then the rows
// summed in order, rounded once to nearest even.
Image area_resize(const Image& image, int rows, int cols, double scale_y, double scale_x) {
  const Taps tx = area_taps(image.cols, cols, scale_x), ty = area_taps(image.rows, rows, scale_y);
  const int ch = image.channels;
  const size_t width = static_cast<size_t>(cols) * ch;
  Image out(rows, cols, ch);
  std::vector<float> across(width), sum(width);
  for (int y = 0; y < rows; ++y) {
    bool first = true;
    for (const auto& [sy, beta] : ty[y]) {
      std::fill(across.begin(), across.end(), 0.f);
      const uint8_t* src = image.row(sy);
      for (int x = 0; x < cols; ++x) {
        for (const auto& [sx, alpha] : tx[x]) {
          for (int c = 0; c < ch; ++c) across[x * ch + c] += src[sx * ch + c] * alpha;
        }
      }
      for (size_t i = 0; i < width; ++i)
        sum[i] = first ? beta * across[i] : sum[i] + beta * across[i];
      first = false;
    }
    uint8_t* dst = out.row(y);
    for (size_t i = 0; i < width; ++i) {
      dst[i] = static_cast<uint8_t>(std::clamp(std::lrint(sum[i]), 0L, 255L));
    }
  }
  return out;
}

// Area resampling by a whole factor (OpenCV's resizeAreaFast): block sums, 2x2 blocks rounded
// half up as its vector code does, larger ones scaled in float and rounded to nearest even.
Image block_resize(const Image& image, int rows, int cols, int fy, int fx) {
  const int ch = image.channels, area = fx * fy;
  const float inverse = 1.f / static_cast<float>(area);
  Image out(rows, cols, ch);
  for (int y = 0; y < rows; ++y) {
    uint8_t* dst = out.row(y);
    for (int x = 0; x < cols; ++x) {
      for (int c = 0; c < ch; ++c) {
        int sum = 0;
        for (int dy = 0; dy < fy; ++dy) {
          const uint8_t* src = image.row(y * fy + dy) + (x * fx) * ch + c;
          for (int dx = 0; dx < fx; ++dx) sum += src[dx * ch];
        }
        dst[x * ch + c] = static_cast<uint8_t>(
            area == 4 ? (sum + 2) >> 2 : std::clamp(std::lrint(sum * inverse), 0L, 255L));
      }
    }
  }
  return out;
}

// OpenCV's INTER_LINEAR on 8-bit pixels: centres aligned, 11-bit fixed-point weights, and its
// vector code's rounding between the rows. Past the edges, columns take the edge pixel whole;
// rows keep their weights on the edge row twice, which rounds differently.
struct LinearTap {
  int source;         // may be -1 for rows: the edge row stands in
  int16_t near, far;  // weights of source and source + 1, summing to 2048
};

std::vector<LinearTap> linear_taps(int from, int to, double scale, bool columns) {
  std::vector<LinearTap> taps(to);
  for (int d = 0; d < to; ++d) {
    float f = static_cast<float>((d + 0.5) * scale - 0.5);
    int s = static_cast<int>(std::floor(f));
    f -= static_cast<float>(s);
    if (columns && s < 0) s = 0, f = 0;
    if (columns && s >= from - 1) s = from - 1, f = 0;
    const auto near = static_cast<int16_t>(std::lrint((1.f - f) * 2048));
    const auto far = static_cast<int16_t>(std::lrint(f * 2048));
    taps[d] = {s, near, far};
  }
  return taps;
}

Image linear_resize(const Image& image, int rows, int cols, double scale_y, double scale_x) {
  const auto tx = linear_taps(image.cols, cols, scale_x, true);
  const auto ty = linear_taps(image.rows, rows, scale_y, false);
  const int ch = image.channels;
  const size_t width = static_cast<size_t>(cols) * ch;
  // Each source row resampled across once, at 2048 times its value.
  std::vector<std::vector<int32_t>> across(image.rows);
  auto row_across = [&](int sy) -> const std::vector<int32_t>& {
    auto& r = across[sy];
    if (!r.empty()) return r;
    r.resize(width);
    const uint8_t* src = image.row(sy);
    for (int x = 0; x < cols; ++x) {
      const LinearTap& t = tx[x];
      const int next = std::min(t.source + 1, image.cols - 1);
      for (int c = 0; c < ch; ++c) {
        r[x * ch + c] = src[t.source * ch + c] * t.near + src[next * ch + c] * t.far;
      }
    }
    return r;
  };
  Image out(rows, cols, ch);
  for (int y = 0; y < rows; ++y) {
    const LinearTap& t = ty[y];
    const auto& a = row_across(std::clamp(t.source, 0, image.rows - 1));
    const auto& b = row_across(std::clamp(t.source + 1, 0, image.rows - 1));
    uint8_t* dst = out.row(y);
    for (size_t i = 0; i < width; ++i) {
      const int v = (((t.near * (a[i] >> 4)) >> 16) + ((t.far * (b[i] >> 4)) >> 16) + 2) >> 2;
      dst[i] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
  return out;
}

// OpenCV's fixed-point luma (cvtColor BGR2GRAY on 8 bits, 15-bit weights): 0.299 R + 0.587 G +
// 0.114 B.
uint8_t luma(uint8_t b, uint8_t g, uint8_t r) {
  return static_cast<uint8_t>((b * 3735 + g * 19235 + r * 9798 + (1 << 14)) >> 15);
}

// `image` (BGR, RGB or BGRA; `rgb` says which end red is) as one gray channel.
Image to_gray(const Image& image, bool rgb) {
  Image out(image.rows, image.cols, 1);
  const int ch = image.channels;
  const uint8_t* src = image.pixels.data();
  for (size_t i = 0; i < out.pixels.size(); ++i, src += ch) {
    out.pixels[i] = rgb ? luma(src[2], src[1], src[0]) : luma(src[0], src[1], src[2]);
  }
  return out;
}

// Three channels from gray (replicated) or BGRA (alpha dropped).
Image to_three(const Image& image) {
  Image out(image.rows, image.cols, 3);
  const int ch = image.channels;
  const uint8_t* src = image.pixels.data();
  uint8_t* dst = out.pixels.data();
  for (size_t i = 0; i < static_cast<size_t>(image.rows) * image.cols; ++i, src += ch, dst += 3) {
    dst[0] = src[0];
    dst[1] = src[ch == 1 ? 0 : 1];
    dst[2] = src[ch == 1 ? 0 : 2];
  }
  return out;
}

}  // namespace

Image resize(const Image& image, int rows, int cols) {
  if (image.rows == rows && image.cols == cols) return image;
  // cv::resize's choice: INTER_AREA when shrinking, INTER_LINEAR otherwise; its scales are the
  // reciprocals of the size ratios, as here, for the same rounding.
  const double scale_x = 1.0 / (static_cast<double>(cols) / image.cols);
  const double scale_y = 1.0 / (static_cast<double>(rows) / image.rows);
  if (scale_x < 1 || scale_y < 1) return linear_resize(image, rows, cols, scale_y, scale_x);
  const int fx = static_cast<int>(std::lrint(scale_x)), fy = static_cast<int>(std::lrint(scale_y));
  if (std::abs(scale_x - fx) < DBL_EPSILON && std::abs(scale_y - fy) < DBL_EPSILON) {
    return block_resize(image, rows, cols, fy, fx);
  }
  return area_resize(image, rows, cols, scale_y, scale_x);
}

Image prepare_image(const Image& image, const Preprocess& pre, const std::string& name) {
  if (image.empty() || image.rows <= 0 || image.cols <= 0) {
    throw Error(fmt::format("image '{}' is empty", name));
  }
  const int ch = image.channels;
  if (ch != 1 && ch != 3 && ch != 4) {
    throw Error(fmt::format("image '{}': expected 1, 3 or 4 channels, got {}", name, ch));
  }
  if (image.pixels.size() != static_cast<size_t>(image.rows) * image.row_bytes()) {
    throw Error(fmt::format("image '{}': {} bytes of pixels for {}x{}x{}", name,
                            image.pixels.size(), image.rows, image.cols, ch));
  }
  Image out;
  if (pre.color == Color::Gray) {
    out = ch == 1 ? image : to_gray(image, false);
  } else {
    out = ch == 3 ? image : to_three(image);
    if (pre.color == Color::RGB) {
      for (size_t i = 0; i < out.pixels.size(); i += 3) std::swap(out.pixels[i], out.pixels[i + 2]);
    }
  }
  const int size = static_cast<int>(pre.load_size());
  return resize(out, size, size);
}

namespace {

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

// The orientation an APP1 "Exif" segment (after JFIF or not) gives the picture, 1 (as stored)
// when there is none: OpenCV's imread applies it, TurboJPEG does not. The segments before the
// first frame header are walked, then the TIFF header and the first IFD's entries.
int exif_orientation(const uint8_t* data, size_t size) {
  for (size_t at = 2; at + 4 <= size && data[at] == 0xFF;) {
    const uint8_t marker = data[at + 1];
    if (marker < 0xE0 || marker > 0xEF) return 1;  // past the APPn segments
    const size_t length = (static_cast<size_t>(data[at + 2]) << 8) | data[at + 3];
    const size_t end = std::min(size, at + 2 + length);
    if (marker == 0xE1 && at + 10 <= end && std::memcmp(data + at + 4, "Exif\0\0", 6) == 0) {
      const uint8_t* tiff = data + at + 10;
      const size_t n = end - (at + 10);
      if (n < 8) return 1;
      const bool little = tiff[0] == 'I';
      auto u16 = [&](size_t o) {
        return little ? tiff[o] | (tiff[o + 1] << 8) : (tiff[o] << 8) | tiff[o + 1];
      };
      auto u32 = [&](size_t o) {
        return little ? static_cast<uint32_t>(u16(o)) | (static_cast<uint32_t>(u16(o + 2)) << 16)
                      : (static_cast<uint32_t>(u16(o)) << 16) | u16(o + 2);
      };
      const size_t ifd = u32(4);
      if (ifd + 2 > n) return 1;
      const size_t entries = u16(ifd);
      for (size_t e = 0; e < entries && ifd + 2 + 12 * (e + 1) <= n; ++e) {
        const size_t entry = ifd + 2 + 12 * e;
        if (u16(entry) == 0x0112) {
          const int value = u16(entry + 8);
          return value >= 1 && value <= 8 ? value : 1;
        }
      }
      return 1;
    }
    at += 2 + length;
  }
  return 1;
}

// Turns a decoded picture upright as its Exif orientation says (as OpenCV's imread does):
// transposed for 5-8, then mirrored.
Image orient(const Image& image, int orientation) {
  if (orientation == 1) return image;
  const bool transpose = orientation >= 5;
  const bool mirror = orientation == 2 || orientation == 3 || orientation == 6 || orientation == 7;
  const bool upside_down =
      orientation == 3 || orientation == 4 || orientation == 7 || orientation == 8;
  const int rows = transpose ? image.cols : image.rows, cols = transpose ? image.rows : image.cols;
  const int ch = image.channels;
  Image out(rows, cols, ch);
  for (int y = 0; y < rows; ++y) {
    for (int x = 0; x < cols; ++x) {
      const int ty = upside_down ? rows - 1 - y : y, tx = mirror ? cols - 1 - x : x;
      const uint8_t* src = transpose ? image.row(tx) + ty * ch : image.row(ty) + tx * ch;
      std::memcpy(out.row(y) + x * ch, src, ch);
    }
  }
  return out;
}

struct TurboHandle {
  tjhandle handle = tjInitDecompress();
  ~TurboHandle() {
    if (handle) tjDestroy(handle);
  }
};

// libjpeg-turbo's own state says whether a JPEG was whole: a warning ("Premature end of JPEG
// file", "Corrupt JPEG data") means missing or damaged data that OpenCV would fill with grey.
Image decode_jpeg(const uint8_t* data, size_t size, Color color, const std::string& name) {
  thread_local TurboHandle tj;
  if (!tj.handle) throw Error("cannot start a TurboJPEG decoder");
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.handle, data, static_cast<unsigned long>(size), &width, &height,
                          &subsampling, &colorspace) != 0) {
    throw Error(fmt::format("image '{}' cannot be decoded: {}", name, tjGetErrorStr2(tj.handle)));
  }
  // TurboJPEG gives no BGR from CMYK: OpenCV converts those.
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) return {};
  const bool gray = color == Color::Gray;
  Image out(height, width, gray ? 1 : 3);
  auto decode = [&](int flags) {
    return tjDecompress2(tj.handle, data, static_cast<unsigned long>(size), out.pixels.data(),
                         width, 0, height, gray ? TJPF_GRAY : TJPF_BGR, flags) == 0;
  };
  if (decode(TJFLAG_STOPONWARNING)) return out;
  const bool warning = tjGetErrorCode(tj.handle) == TJERR_WARNING;
  const std::string message = tjGetErrorStr2(tj.handle);
  // Junk between two segments loses no pixel: such files (common from some cameras and web
  // tools) decode whole once the decoder is let past the warning.
  if (warning && message.find("extraneous bytes before marker") != std::string::npos && decode(0)) {
    return out;
  }
  throw Error(fmt::format("image '{}' {}: {}", name,
                          warning ? "is damaged (truncated or corrupt)" : "cannot be decoded",
                          message));
}

}  // namespace

ImageSize encoded_size(const uint8_t* data, size_t size) {
  if (is_jpeg(data, size)) {
    thread_local TurboHandle tj;
    int width = 0, height = 0, subsampling = 0, colorspace = 0;
    if (tj.handle && tjDecompressHeader3(tj.handle, data, static_cast<unsigned long>(size), &width,
                                         &height, &subsampling, &colorspace) == 0) {
      return {width, height};
    }
    return {};
  }
  // PNG: the signature, then the IHDR chunk with big-endian width and height.
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 24 && std::memcmp(data, png, 8) == 0 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    auto word = [&](size_t at) {
      return (static_cast<uint32_t>(data[at]) << 24) | (data[at + 1] << 16) | (data[at + 2] << 8) |
             data[at + 3];
    };
    const uint32_t width = word(16), height = word(20);
    if (width > 0 && height > 0 && width < (1u << 31) && height < (1u << 31)) {
      return {static_cast<int>(width), static_cast<int>(height)};
    }
  }
  return {};
}

Image decode_bytes(const uint8_t* data, size_t size, Color color, const std::string& name) {
  if (is_jpeg(data, size)) {
    const Image image = decode_jpeg(data, size, color, name);
    if (!image.empty()) return orient(image, exif_orientation(data, size));
  }
#ifdef ARCFACE_WITH_OPENCV
  // Other formats and CMYK JPEGs.
  const cv::Mat image =
      size == 0
          ? cv::Mat()
          : cv::imdecode(cv::Mat(1, static_cast<int>(size), CV_8U, const_cast<uint8_t*>(data)),
                         color == Color::Gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  if (image.empty()) {
    throw Error(fmt::format("image '{}' cannot be decoded (corrupt or not an image)", name));
  }
  return from_mat(image);
#else
  throw Error(fmt::format(
      "image '{}' cannot be decoded: this build, without OpenCV, reads JPEG (not CMYK) only",
      name));
#endif
}

std::vector<uint8_t> read_file_bytes(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw Error(fmt::format("image '{}' not found", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (!in && !in.eof()) throw Error(fmt::format("cannot read image '{}'", path.string()));
  return bytes;
}

Image read_image(const fs::path& path, Color color) {
  const auto bytes = read_file_bytes(path);
  return decode_bytes(bytes.data(), bytes.size(), color, path.string());
}

Image load_image(const fs::path& path, const Preprocess& pre) {
  return prepare_image(read_image(path, pre.color), pre, path.string());
}

Image decode_image(const std::vector<uint8_t>& bytes, const Preprocess& pre,
                   const std::string& name) {
  return prepare_image(decode_bytes(bytes.data(), bytes.size(), pre.color, name), pre, name);
}

void write_tensor(const Image& image, const Preprocess& pre, int x, int y, bool flip, float* out) {
  const int size = static_cast<int>(pre.input_size);
  const int channels = static_cast<int>(pre.channels());
  for (int c = 0; c < channels; ++c) {
    const double mean = pre.mean.size() == 1 ? pre.mean[0] : pre.mean[c];
    const double std = pre.std.size() == 1 ? pre.std[0] : pre.std[c];
    // out = (v / 255 - mean) / std = v * a + b
    const float a = static_cast<float>(1.0 / (255.0 * std));
    const float b = static_cast<float>(-mean / std);
    float* plane = out + static_cast<size_t>(c) * size * size;
    for (int row = 0; row < size; ++row) {
      const uint8_t* src = image.row(y + row) + static_cast<size_t>(x) * channels + c;
      float* dst = plane + static_cast<size_t>(row) * size;
      if (flip) {
        for (int col = 0; col < size; ++col) dst[size - 1 - col] = src[col * channels] * a + b;
      } else {
        for (int col = 0; col < size; ++col) dst[col] = src[col * channels] * a + b;
      }
    }
  }
}

Image desaturate(const Image& image, Color color) {
  if (color == Color::Gray || image.channels < 3) {
    throw Error("desaturate: the image is grayscale already");
  }
  return to_three(to_gray(image, color == Color::RGB));
}

std::string describe(const Preprocess& p) {
  return fmt::format("{0}x{0} {1}, resize {2}, (x/255 - mean {3}) / std {4}", p.input_size,
                     to_string(p.color), p.load_size(), fmt::join(p.mean, "/"),
                     fmt::join(p.std, "/"));
}

std::vector<uint8_t> ImageSource::bytes(size_t i) const {
  if (records) return records->read(record_index.at(i));
  return encoded.at(i);
}

Image ImageSource::load(size_t i, const Preprocess& pre) const {
  const bool in_memory = records || !encoded.empty();
  if (!face_crop) {
    if (in_memory) return decode_image(bytes(i), pre, names.at(i));
    return load_image(root / names.at(i), pre);
  }
  // Detectors want colour whatever the network takes.
  Image image;
  if (in_memory) {
    const auto data = bytes(i);
    image = decode_bytes(data.data(), data.size(), Color::BGR, names.at(i));
  } else {
    image = read_image(root / names.at(i), Color::BGR);
  }
  return prepare_image(face_crop(image, names.at(i)), pre, names.at(i));
}

std::vector<BadImage> find_bad_images(const ImageSource& source, int threads) {
  std::vector<std::string> reasons(source.size());
  std::atomic<size_t> next{0};
  auto check = [&] {
    for (size_t i; (i = next++) < source.size();) {
      try {
        // Grayscale decodes every coefficient at a third of the colour work.
        if (source.encoded.empty() && !source.records) {
          read_image(source.root / source.names[i], Color::Gray);
        } else {
          const auto bytes = source.bytes(i);
          decode_bytes(bytes.data(), bytes.size(), Color::Gray, source.names[i]);
        }
      } catch (const std::exception& e) {
        reasons[i] = e.what();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, threads); ++t) pool.emplace_back(check);
  check();
  for (auto& t : pool) t.join();
  std::vector<BadImage> bad;
  for (size_t i = 0; i < reasons.size(); ++i) {
    if (!reasons[i].empty()) bad.push_back({source.names[i], reasons[i]});
  }
  return bad;
}

}  // namespace arcface
