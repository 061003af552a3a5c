// dlib's HOG frontal-face detector and 68-point shape predictor, reduced to the 5 template
// points: the eye centres (mean of each eye's six points), the nose tip and the mouth corners.
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/opencv/cv_image.h>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "face/detectors.h"

namespace arcface {

namespace {

class DlibDetector : public FaceDetector {
 public:
  DlibDetector(const std::string& shape_predictor, float threshold) : threshold_(threshold) {
    detector_ = dlib::get_frontal_face_detector();
    try {
      dlib::deserialize(shape_predictor) >> predictor_;
    } catch (const std::exception& e) {
      throw Error(
          fmt::format("cannot read dlib shape predictor '{}': {}", shape_predictor, e.what()));
    }
  }

  std::vector<Face> detect(const cv::Mat& bgr) override {
    dlib::cv_image<dlib::bgr_pixel> image(cvIplImage(bgr));
    std::vector<dlib::rect_detection> found;
    // A negative adjustment finds the harder faces; the score threshold filters afterwards.
    detector_(image, found, -0.5);
    std::vector<Face> faces;
    for (const auto& d : found) {
      // HOG confidences are margins around 0; squash them into 0..1 (0.5 at the default 0).
      const float score = static_cast<float>(1.0 / (1.0 + std::exp(-2.0 * d.detection_confidence)));
      if (score < threshold_) continue;
      const auto shape = predictor_(image, d.rect);
      auto mean = [&](unsigned from, unsigned to) {
        cv::Point2f p(0, 0);
        for (unsigned i = from; i <= to; ++i)
          p += cv::Point2f(shape.part(i).x(), shape.part(i).y());
        return p / static_cast<float>(to - from + 1);
      };
      auto at = [&](unsigned i) { return cv::Point2f(shape.part(i).x(), shape.part(i).y()); };
      Face f;
      f.box = cv::Rect2f(d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height());
      // 36-41: the eye on the image's left (the subject's right), 42-47 the other one.
      f.landmarks = {mean(36, 41), mean(42, 47), at(30), at(48), at(54)};
      f.score = score;
      faces.push_back(f);
    }
    return faces;
  }

  std::string name() const override { return "dlib"; }

 private:
  dlib::frontal_face_detector detector_;
  dlib::shape_predictor predictor_;
  float threshold_;
};

}  // namespace

std::unique_ptr<FaceDetector> make_dlib_detector(const std::string& shape_predictor,
                                                 float threshold) {
  return std::make_unique<DlibDetector>(shape_predictor, threshold);
}

}  // namespace arcface
