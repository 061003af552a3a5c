// YuNet (libfacedetection; opencv_zoo face_detection_yunet_2023mar.onnx) through OpenCV's dnn
// module. OpenCV 4.6's FaceDetectorYN cannot run this model, so the anchor-free outputs are
// decoded here as OpenCV >= 4.8 does: per stride s in {8, 16, 32} and grid cell (row, col),
// score = sqrt(cls * obj), centre = (col + dx, row + dy) * s, size = exp(dw, dh) * s,
// landmark k = (col + kx, row + ky) * s; then non-maximum suppression.
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "face/detectors.h"

namespace arcface {

namespace {

class YuNetDetector : public FaceDetector {
 public:
  YuNetDetector(const std::string& onnx, float threshold) : threshold_(threshold) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(onnx, ec)) {
      throw Error(fmt::format("YuNet model '{}' not found (--detector-model)", onnx));
    }
    try {
      net_ = cv::dnn::readNetFromONNX(onnx);
    } catch (const cv::Exception& e) {
      throw Error(fmt::format("cannot read YuNet model '{}': {}", onnx, e.what()));
    }
  }

  std::vector<Face> detect(const cv::Mat& bgr) override {
    // The network takes sides that are multiples of 32: pad (no resize) small images, shrink
    // large ones to fit 640 first.
    const double shrink = std::min(1.0, 640.0 / std::max(bgr.cols, bgr.rows));
    cv::Mat image = bgr;
    if (shrink < 1.0) cv::resize(bgr, image, {}, shrink, shrink, cv::INTER_AREA);
    const int w = (image.cols + 31) / 32 * 32, h = (image.rows + 31) / 32 * 32;
    cv::Mat padded;
    cv::copyMakeBorder(image, padded, 0, h - image.rows, 0, w - image.cols, cv::BORDER_CONSTANT,
                       cv::Scalar::all(0));
    net_.setInput(cv::dnn::blobFromImage(padded));
    std::vector<cv::Mat> out;
    net_.forward(out, names_);

    std::vector<Face> candidates;
    std::vector<cv::Rect2d> boxes;
    std::vector<float> scores;
    for (int k = 0; k < 3; ++k) {
      const int stride = 8 << k, cols = w / stride, rows = h / stride;
      const float* cls = out[k].ptr<float>();
      const float* obj = out[3 + k].ptr<float>();
      const float* box = out[6 + k].ptr<float>();
      const float* kps = out[9 + k].ptr<float>();
      for (int i = 0; i < rows * cols; ++i) {
        const float score =
            std::sqrt(std::clamp(cls[i], 0.0f, 1.0f) * std::clamp(obj[i], 0.0f, 1.0f));
        if (score < threshold_) continue;
        const float c = static_cast<float>(i % cols), r = static_cast<float>(i / cols);
        const float cx = (c + box[4 * i]) * stride, cy = (r + box[4 * i + 1]) * stride;
        const float bw = std::exp(box[4 * i + 2]) * stride, bh = std::exp(box[4 * i + 3]) * stride;
        Face f;
        f.box =
            cv::Rect2f((cx - bw / 2) / shrink, (cy - bh / 2) / shrink, bw / shrink, bh / shrink);
        for (int p = 0; p < 5; ++p) {
          f.landmarks[p] = {(kps[10 * i + 2 * p] + c) * stride / static_cast<float>(shrink),
                            (kps[10 * i + 2 * p + 1] + r) * stride / static_cast<float>(shrink)};
        }
        f.score = score;
        candidates.push_back(f);
        boxes.emplace_back(f.box.x, f.box.y, f.box.width, f.box.height);
        scores.push_back(score);
      }
    }
    std::vector<int> keep;
    cv::dnn::NMSBoxes(boxes, scores, threshold_, 0.3f, keep);
    std::vector<Face> faces;
    for (int i : keep) faces.push_back(candidates[i]);
    return faces;
  }

  std::string name() const override { return "yunet"; }

 private:
  cv::dnn::Net net_;
  float threshold_;
  const std::vector<std::string> names_{"cls_8",   "cls_16", "cls_32", "obj_8",
                                        "obj_16",  "obj_32", "bbox_8", "bbox_16",
                                        "bbox_32", "kps_8",  "kps_16", "kps_32"};
};

}  // namespace

std::unique_ptr<FaceDetector> make_yunet_detector(const std::string& onnx, float threshold) {
  return std::make_unique<YuNetDetector>(onnx, threshold);
}

}  // namespace arcface
