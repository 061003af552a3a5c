#pragma once

// From photos to gallery entries: find the faces (or take aligned crops as they are), align,
// and describe each with a model.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "arcface/aligner.h"
#include "arcface/embedder.h"
#include "arcface/gallery.h"

namespace arcface {

struct FaceEncoderOptions {
  FlipMode flip = FlipMode::Sum;
  /// Raw photos: the detector that finds the faces, which are warped to the 112x112 template.
  /// Without it every image is taken to be an aligned crop.
  std::optional<DetectorOptions> detector;
  bool all_faces = false;  // every face of a photo, or only the main one (largest, central)
  int64_t batch_size = 32;
  /// Photos searched for faces at once, each thread with a detector of its own (detectors are
  /// single-threaded); 0: one per core.
  int detect_threads = 0;
};

class FaceEncoder {
 public:
  FaceEncoder(Embedder& embedder, FaceEncoderOptions options);
  ~FaceEncoder();

  /// The faces of one decoded photo (BGR), each with its unit descriptor, box, score and
  /// aligned crop; none when a detector finds no face.
  std::vector<NewFace> encode(const cv::Mat& bgr, const std::string& source);
  /// The same for many photos, the network run in batches; `faces[i]` belong to photo i.
  std::vector<std::vector<NewFace>> encode(const std::vector<cv::Mat>& photos,
                                           const std::vector<std::string>& sources);
  /// Without a detector every photo must be an aligned crop: why this one cannot be (its size
  /// far from the model's input, too small to hold a face, not square enough), or "".
  std::string crop_problem(const cv::Mat& photo) const;
  /// Unit descriptors of aligned crops (any size), in batches.
  std::vector<std::vector<float>> describe(const std::vector<cv::Mat>& crops);

 private:
  Embedder& embedder_;
  FaceEncoderOptions options_;
  std::vector<std::unique_ptr<FaceDetector>> detectors_;  // one per detecting thread
};

}  // namespace arcface
