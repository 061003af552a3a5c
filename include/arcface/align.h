#pragma once

#include <array>
#include <vector>

#include <opencv2/core.hpp>

namespace arcface {

/// A detected face: its box, five landmarks in the template's order (image-left eye,
/// image-right eye, nose tip, image-left mouth corner, image-right mouth corner) and a
/// detector score in 0..1.
struct Face {
  cv::Rect2f box;
  std::array<cv::Point2f, 5> landmarks;
  float score = 0;
};

/// The ArcFace 5-point template for a 112x112 crop, in the order of Face::landmarks. The one
/// definition that training data, evaluation and inference all align to.
inline const std::array<cv::Point2f, 5> kArcFaceTemplate112 = {
    cv::Point2f(38.2946f, 51.6963f), cv::Point2f(73.5318f, 51.5014f),
    cv::Point2f(56.0252f, 71.7366f), cv::Point2f(41.5493f, 92.3655f),
    cv::Point2f(70.7299f, 92.2041f)};

/// The template for a `width` x `height` crop: scaled by height / 112 and centred
/// horizontally (112x96 gives the classic 96x112 template shifted by 8 pixels).
std::array<cv::Point2f, 5> arcface_template(int width, int height);

/// The least-squares similarity (rotation, uniform scale, translation: 4 degrees of freedom)
/// that maps `from` onto `to` (Umeyama 1991), as a 2x3 matrix for cv::warpAffine.
cv::Mat similarity_transform(const std::vector<cv::Point2f>& from,
                             const std::vector<cv::Point2f>& to);

/// Warps `image` so the face's landmarks land on the template of a width x height crop
/// (bilinear, black border).
cv::Mat align_face(const cv::Mat& image, const Face& face, int width = 112, int height = 112);

/// Seed 002's crop mode (facenet-pytorch MTCNN): the box grown by `margin` pixels of the output
/// scale on every side, clipped to the image, resized to size x size.
cv::Mat crop_face(const cv::Mat& image, const Face& face, int margin, int size);

/// The face a user means when an image holds several: the largest and most central one
/// (largest area minus twice the squared distance of its centre from the image centre).
/// Returns -1 for an empty list.
int main_face(const std::vector<Face>& faces, const cv::Size& image);

/// What is used when no face is found: the central square of the image, resized, with the
/// face assumed to fill its middle as in an LFW-style crop.
cv::Mat centre_crop(const cv::Mat& image, int width, int height);

}  // namespace arcface
