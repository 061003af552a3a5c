#pragma once

#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "arcface/align.h"

namespace arcface {

struct DetectorOptions {
  /// dlib (HOG + 68-point shape predictor, from Debian's packages; no download), yunet
  /// (OpenCV dnn, `model` = the .onnx file) or mtcnn (libtorch, `model` = the folder with
  /// facenet-pytorch's pnet.pt, rnet.pt and onet.pt).
  std::string type = "dlib";
  std::string model;
  /// Faces scoring below this (0..1) are dropped.
  float score_threshold = 0.5f;
};

/// Finds faces with their five landmarks, like OpenCV's FaceDetectorYN::detect. One instance
/// per thread: detectors keep scratch state.
class FaceDetector {
 public:
  virtual ~FaceDetector() = default;
  /// Faces in an 8-bit BGR image, in no particular order.
  virtual std::vector<Face> detect(const cv::Mat& bgr) = 0;
  virtual std::string name() const = 0;
};

/// The one factory for detectors; throws when a model file is missing or unreadable.
std::unique_ptr<FaceDetector> make_detector(const DetectorOptions& options);

/// Default model locations: dlib's shape predictor from libdlib-data.
std::string default_dlib_shape_predictor();

}  // namespace arcface
