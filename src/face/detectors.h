#pragma once

// The detector implementations behind make_detector (private to the library).
#include <memory>
#include <string>

#include "arcface/detector.h"

namespace arcface {

std::unique_ptr<FaceDetector> make_dlib_detector(const std::string& shape_predictor,
                                                 float threshold);
std::unique_ptr<FaceDetector> make_yunet_detector(const std::string& onnx, float threshold);
std::unique_ptr<FaceDetector> make_mtcnn_detector(const std::string& folder, float threshold);

}  // namespace arcface
