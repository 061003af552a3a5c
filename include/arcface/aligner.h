#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "arcface/detector.h"

namespace arcface {

namespace fs = std::filesystem;

struct AlignOptions {
  DetectorOptions detector;
  int width = 112, height = 112;
  /// >= 0: seed 002's crop mode (the detector's box plus this margin, resized to width x width)
  /// instead of the 5-point warp to the template.
  int margin = -1;
  /// Single-channel crops (seed 000 trains on grayscale).
  bool grayscale = false;
};

/// Detects the main face of an image and returns its aligned crop; when no face is found, a
/// centre crop, flagged as a fallback. One instance per thread.
class FaceAligner {
 public:
  explicit FaceAligner(const AlignOptions& options);
  struct Result {
    cv::Mat crop;
    std::optional<Face> face;  // empty: nothing found, `crop` is the centre crop
  };
  Result align(const cv::Mat& bgr);
  const AlignOptions& options() const { return options_; }

 private:
  AlignOptions options_;
  std::unique_ptr<FaceDetector> detector_;
};

/// Aligners shared by decoding threads (ImageSource::face_crop): `size` of them, each used by
/// one thread at a time. Records the images in which no face was found.
class AlignerPool {
 public:
  AlignerPool(const AlignOptions& options, int size);
  cv::Mat crop(const cv::Mat& bgr, const std::string& name);
  /// Images that fell back to a centre crop, sorted.
  std::vector<std::string> fallbacks() const;

 private:
  std::vector<std::unique_ptr<FaceAligner>> free_;
  std::vector<std::string> fallbacks_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
};

struct AlignTreeResult {
  int64_t images = 0, aligned = 0, fallbacks = 0, unreadable = 0, skipped = 0;
  double seconds = 0;
};

/// Aligns every image of an identity-per-folder tree (any depth) into the same relative paths
/// under `dst` (JPEG quality 95), with `landmarks.txt` (the detected box, score and 5 points
/// per image, in source pixels) and `failures.txt` (images without a face, aligned by centre
/// crop, and unreadable images, which are listed, not fatal). Images already aligned in `dst`
/// are skipped, so an interrupted run can be started again.
AlignTreeResult align_tree(const fs::path& src, const fs::path& dst, const AlignOptions& options,
                           int threads, bool progress = true);

}  // namespace arcface
