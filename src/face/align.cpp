#include "arcface/align.h"

#include <algorithm>

#include <opencv2/imgproc.hpp>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

std::array<cv::Point2f, 5> arcface_template(int width, int height) {
  const float scale = height / 112.0f;
  const float shift = (width - 112.0f * scale) / 2;
  std::array<cv::Point2f, 5> points = kArcFaceTemplate112;
  for (auto& p : points) p = {p.x * scale + shift, p.y * scale};
  return points;
}

cv::Mat similarity_transform(const std::vector<cv::Point2f>& from,
                             const std::vector<cv::Point2f>& to) {
  if (from.size() != to.size() || from.size() < 2) {
    throw Error(fmt::format("similarity_transform: need two or more point pairs, got {} and {}",
                            from.size(), to.size()));
  }
  const double n = static_cast<double>(from.size());
  cv::Point2d mean_from(0, 0), mean_to(0, 0);
  for (size_t i = 0; i < from.size(); ++i) {
    mean_from += cv::Point2d(from[i]);
    mean_to += cv::Point2d(to[i]);
  }
  mean_from /= n;
  mean_to /= n;
  cv::Matx22d cov = cv::Matx22d::zeros();
  double var_from = 0;
  for (size_t i = 0; i < from.size(); ++i) {
    const cv::Point2d a = cv::Point2d(from[i]) - mean_from;
    const cv::Point2d b = cv::Point2d(to[i]) - mean_to;
    cov += cv::Matx22d(b.x * a.x, b.x * a.y, b.y * a.x, b.y * a.y) * (1.0 / n);
    var_from += a.dot(a) / n;
  }
  if (var_from <= 0) throw Error("similarity_transform: the source points coincide");
  cv::Mat w, u, vt;
  cv::SVD::compute(cv::Mat(cov), w, u, vt);
  // A reflection is not a similarity: flip the weakest axis if the best fit would mirror.
  cv::Matx22d d = cv::Matx22d::eye();
  if (cv::determinant(u) * cv::determinant(vt) < 0) d(1, 1) = -1;
  const cv::Matx22d rotation = cv::Matx22d(u) * d * cv::Matx22d(vt);
  const double scale = (w.at<double>(0) * d(0, 0) + w.at<double>(1) * d(1, 1)) / var_from;
  const cv::Matx22d a = rotation * scale;
  const cv::Vec2d t = cv::Vec2d(mean_to.x, mean_to.y) - a * cv::Vec2d(mean_from.x, mean_from.y);
  return (cv::Mat_<double>(2, 3) << a(0, 0), a(0, 1), t[0], a(1, 0), a(1, 1), t[1]);
}

cv::Mat align_face(const cv::Mat& image, const Face& face, int width, int height) {
  const auto target = arcface_template(width, height);
  const cv::Mat m = similarity_transform({face.landmarks.begin(), face.landmarks.end()},
                                         {target.begin(), target.end()});
  cv::Mat out;
  cv::warpAffine(image, out, m, {width, height}, cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                 cv::Scalar::all(0));
  return out;
}

cv::Mat crop_face(const cv::Mat& image, const Face& face, int margin, int size) {
  // facenet-pytorch: the margin is given in pixels of the output and scaled to the box.
  const float mx = margin * face.box.width / (size - margin);
  const float my = margin * face.box.height / (size - margin);
  cv::Rect r(cv::Point(static_cast<int>(std::max(face.box.x - mx / 2, 0.0f)),
                       static_cast<int>(std::max(face.box.y - my / 2, 0.0f))),
             cv::Point(static_cast<int>(std::min(face.box.br().x + mx / 2, float(image.cols))),
                       static_cast<int>(std::min(face.box.br().y + my / 2, float(image.rows)))));
  if (r.width <= 0 || r.height <= 0) return centre_crop(image, size, size);
  cv::Mat out;
  cv::resize(image(r), out, {size, size}, 0, 0, cv::INTER_AREA);
  return out;
}

int main_face(const std::vector<Face>& faces, const cv::Size& image) {
  int best = -1;
  double best_value = 0;
  const cv::Point2f centre(image.width / 2.0f, image.height / 2.0f);
  for (size_t i = 0; i < faces.size(); ++i) {
    const auto& b = faces[i].box;
    const cv::Point2f c(b.x + b.width / 2, b.y + b.height / 2);
    const double value = b.area() - 2.0 * (c - centre).dot(c - centre);
    if (best < 0 || value > best_value) {
      best = static_cast<int>(i);
      best_value = value;
    }
  }
  return best;
}

cv::Mat centre_crop(const cv::Mat& image, int width, int height) {
  // An LFW-style guess: the face fills the middle half of the image.
  const int side = std::max(1, std::min(image.cols, image.rows) / 2);
  const cv::Rect r((image.cols - side) / 2, (image.rows - side) / 2, side, side);
  cv::Mat out;
  cv::resize(image(r), out, {width, height}, 0, 0, cv::INTER_AREA);
  return out;
}

}  // namespace arcface
