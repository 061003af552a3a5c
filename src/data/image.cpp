#include "arcface/image.h"

#include <atomic>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include <turbojpeg.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

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

cv::Mat prepare_image(const cv::Mat& image, const Preprocess& pre, const std::string& name) {
  if (image.empty()) throw Error(fmt::format("image '{}' is empty", name));
  if (image.depth() != CV_8U) {
    throw Error(fmt::format("image '{}': expected 8-bit pixels", name));
  }
  cv::Mat out;
  const int ch = image.channels();
  if (pre.color == Color::Gray) {
    if (ch == 1) {
      out = image;
    } else {
      cv::cvtColor(image, out, ch == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
    }
  } else if (ch == 1) {
    cv::cvtColor(image, out, cv::COLOR_GRAY2BGR);
  } else if (ch == 4) {
    cv::cvtColor(image, out, cv::COLOR_BGRA2BGR);
  } else {
    out = image;
  }
  if (pre.color == Color::RGB) cv::cvtColor(out, out, cv::COLOR_BGR2RGB);
  const int size = static_cast<int>(pre.load_size());
  if (out.rows != size || out.cols != size) {
    const bool shrink = out.rows > size || out.cols > size;
    cv::resize(out, out, {size, size}, 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  return out.isContinuous() ? out : out.clone();
}

namespace {

bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

// An APP1 "Exif" segment (after JFIF or not) may rotate the picture; OpenCV applies it,
// TurboJPEG does not. The segments before the first frame header are walked.
bool has_exif(const uint8_t* data, size_t size) {
  for (size_t at = 2; at + 4 <= size && data[at] == 0xFF;) {
    const uint8_t marker = data[at + 1];
    if (marker < 0xE0 || marker > 0xEF) return false;  // past the APPn segments
    const size_t length = (static_cast<size_t>(data[at + 2]) << 8) | data[at + 3];
    if (marker == 0xE1 && at + 10 <= size && std::memcmp(data + at + 4, "Exif", 4) == 0) {
      return true;
    }
    at += 2 + length;
  }
  return false;
}

struct TurboHandle {
  tjhandle handle = tjInitDecompress();
  ~TurboHandle() {
    if (handle) tjDestroy(handle);
  }
};

// libjpeg-turbo's own state says whether a JPEG was whole: a warning ("Premature end of JPEG
// file", "Corrupt JPEG data") means missing or damaged data that OpenCV would fill with grey.
cv::Mat decode_jpeg(const uint8_t* data, size_t size, Color color, const std::string& name) {
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
  cv::Mat out(height, width, gray ? CV_8UC1 : CV_8UC3);
  auto decode = [&](int flags) {
    return tjDecompress2(tj.handle, data, static_cast<unsigned long>(size), out.data, width, 0,
                         height, gray ? TJPF_GRAY : TJPF_BGR, flags) == 0;
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

cv::Size encoded_size(const uint8_t* data, size_t size) {
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

cv::Mat decode_bytes(const uint8_t* data, size_t size, Color color, const std::string& name) {
  if (is_jpeg(data, size)) {
    cv::Mat image = decode_jpeg(data, size, color, name);
    if (!image.empty() && !has_exif(data, size)) return image;
  }
  // Other formats, CMYK JPEGs, and JPEGs whose Exif orientation OpenCV applies.
  cv::Mat image =
      size == 0
          ? cv::Mat()
          : cv::imdecode(cv::Mat(1, static_cast<int>(size), CV_8U, const_cast<uint8_t*>(data)),
                         color == Color::Gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  if (image.empty()) {
    throw Error(fmt::format("image '{}' cannot be decoded (corrupt or not an image)", name));
  }
  return image;
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

cv::Mat read_image(const fs::path& path, Color color) {
  const auto bytes = read_file_bytes(path);
  return decode_bytes(bytes.data(), bytes.size(), color, path.string());
}

cv::Mat load_image(const fs::path& path, const Preprocess& pre) {
  return prepare_image(read_image(path, pre.color), pre, path.string());
}

cv::Mat decode_image(const std::vector<uint8_t>& bytes, const Preprocess& pre,
                     const std::string& name) {
  return prepare_image(decode_bytes(bytes.data(), bytes.size(), pre.color, name), pre, name);
}

void write_tensor(const cv::Mat& image, const Preprocess& pre, int x, int y, bool flip,
                  float* out) {
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
      const uint8_t* src = image.ptr<uint8_t>(y + row) + static_cast<size_t>(x) * channels + c;
      float* dst = plane + static_cast<size_t>(row) * size;
      if (flip) {
        for (int col = 0; col < size; ++col) dst[size - 1 - col] = src[col * channels] * a + b;
      } else {
        for (int col = 0; col < size; ++col) dst[col] = src[col * channels] * a + b;
      }
    }
  }
}

cv::Mat desaturate(const cv::Mat& image, Color color) {
  if (color == Color::Gray) throw Error("desaturate: the image is grayscale already");
  cv::Mat luma, out;
  cv::cvtColor(image, luma, color == Color::RGB ? cv::COLOR_RGB2GRAY : cv::COLOR_BGR2GRAY);
  cv::cvtColor(luma, out, cv::COLOR_GRAY2BGR);
  return out;
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

cv::Mat ImageSource::load(size_t i, const Preprocess& pre) const {
  const bool in_memory = records || !encoded.empty();
  if (!face_crop) {
    if (in_memory) return decode_image(bytes(i), pre, names.at(i));
    return load_image(root / names.at(i), pre);
  }
  // Detectors want colour whatever the network takes.
  cv::Mat image;
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
