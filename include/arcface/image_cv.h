#pragma once

#include <opencv2/core.hpp>

#include "arcface/image.h"

namespace arcface {

// Between the image pipeline and the OpenCV parts (detection, alignment, ONNX models, the
// service); only in builds with OpenCV.

/// The same pixels as an OpenCV matrix (a copy: CV_8UC1, CV_8UC3 or CV_8UC4).
cv::Mat to_mat(const Image& image);

/// An 8-bit OpenCV matrix of 1, 3 or 4 channels as an Image (a copy).
Image from_mat(const cv::Mat& mat);

/// Each matrix as an Image.
std::vector<Image> from_mats(const std::vector<cv::Mat>& mats);

}  // namespace arcface
