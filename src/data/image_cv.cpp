#include "arcface/image_cv.h"

#include <cstring>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

cv::Mat to_mat(const Image& image) {
  if (image.empty()) return {};
  cv::Mat out(image.rows, image.cols, CV_8UC(image.channels));
  std::memcpy(out.data, image.pixels.data(), image.pixels.size());
  return out;
}

Image from_mat(const cv::Mat& mat) {
  if (mat.empty()) return {};
  if (mat.depth() != CV_8U || (mat.channels() != 1 && mat.channels() != 3 && mat.channels() != 4)) {
    throw Error(fmt::format("expected an 8-bit image of 1, 3 or 4 channels, got OpenCV type {}",
                            mat.type()));
  }
  Image out(mat.rows, mat.cols, mat.channels());
  for (int y = 0; y < mat.rows; ++y) std::memcpy(out.row(y), mat.ptr(y), out.row_bytes());
  return out;
}

std::vector<Image> from_mats(const std::vector<cv::Mat>& mats) {
  std::vector<Image> out;
  out.reserve(mats.size());
  for (const auto& m : mats) out.push_back(from_mat(m));
  return out;
}

}  // namespace arcface
