#include "arcface/image.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

Color parse_color(const std::string& name) {
  if (name == "gray" || name == "grey") return Color::Gray;
  if (name == "rgb") return Color::RGB;
  if (name == "bgr") return Color::BGR;
  throw Error(fmt::format("unknown colour '{}' (expected rgb, bgr or gray)", name));
}

std::string to_string(Color color) {
  switch (color) {
    case Color::Gray:
      return "gray";
    case Color::RGB:
      return "rgb";
    case Color::BGR:
      return "bgr";
  }
  return "?";
}

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

cv::Mat read_image(const fs::path& path, Color color) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw Error(fmt::format("image '{}' not found", path.string()));
  }
  cv::Mat image =
      cv::imread(path.string(), color == Color::Gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  if (image.empty()) {
    throw Error(
        fmt::format("image '{}' cannot be decoded (corrupt or not an image)", path.string()));
  }
  return image;
}

cv::Mat load_image(const fs::path& path, const Preprocess& pre) {
  return prepare_image(read_image(path, pre.color), pre, path.string());
}

cv::Mat decode_image(const std::vector<uint8_t>& bytes, const Preprocess& pre,
                     const std::string& name) {
  cv::Mat image = bytes.empty() ? cv::Mat()
                                : cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U,
                                                       const_cast<uint8_t*>(bytes.data())),
                                               pre.color == Color::Gray ? cv::IMREAD_GRAYSCALE
                                                                        : cv::IMREAD_COLOR);
  if (image.empty()) {
    throw Error(fmt::format("image '{}' cannot be decoded (corrupt or not an image)", name));
  }
  return prepare_image(image, pre, name);
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

cv::Mat ImageSource::load(size_t i, const Preprocess& pre) const {
  if (!face_crop) {
    if (!encoded.empty()) return decode_image(encoded.at(i), pre, names.at(i));
    return load_image(root / names.at(i), pre);
  }
  // Detectors want colour whatever the network takes.
  cv::Mat image;
  if (!encoded.empty()) {
    image = cv::imdecode(encoded.at(i), cv::IMREAD_COLOR);
    if (image.empty()) throw Error(fmt::format("image '{}' cannot be decoded", names.at(i)));
  } else {
    image = read_image(root / names.at(i), Color::BGR);
  }
  return prepare_image(face_crop(image, names.at(i)), pre, names.at(i));
}

}  // namespace arcface
