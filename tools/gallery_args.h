#pragma once

// The options of the commands that use a gallery (gallery, identify, serve), and opening one
// with the model that reads it.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "arcface/face_encoder.h"
#include "arcface/gallery.h"
#include "arcface/gallery_model.h"
#include "model_args.h"

namespace arcface::cli {

struct GalleryArgs {
  ModelArgs model;
  std::string gallery, flip = "sum", detector, detector_model;
  bool all_faces = false;
  int64_t batch_size = 32;
  GalleryOptions options;
};

inline void add_gallery_options(CLI::App* cmd, GalleryArgs& a, bool model_required = false) {
  cmd->add_option("--gallery", a.gallery, "the gallery file (SQLite)")->required();
  a.model.add_to(cmd, model_required);
}

inline void add_face_options(CLI::App* cmd, GalleryArgs& a) {
  cmd->add_option("--detector", a.detector,
                  "raw photos: find faces with dlib, yunet or mtcnn (default: images are aligned "
                  "crops)");
  cmd->add_option("--detector-model", a.detector_model, "the yunet .onnx or mtcnn folder");
  cmd->add_flag("--all-faces", a.all_faces, "every face of a photo, not only the main one");
  cmd->add_option("--batch-size", a.batch_size, "faces per network batch")->capture_default_str();
}

inline FaceEncoderOptions encoder_options(const GalleryArgs& a, FlipMode flip) {
  FaceEncoderOptions o;
  o.flip = flip;
  o.all_faces = a.all_faces;
  o.batch_size = a.batch_size;
  if (!a.detector.empty()) {
    DetectorOptions d;
    d.type = a.detector;
    d.model = a.detector_model;
    o.detector = d;
  }
  return o;
}

/// The gallery with the model that reads it: --model (checked against the gallery's
/// fingerprint) or the one the gallery was made with.
inline OpenedGallery open_gallery(const GalleryArgs& a) {
  return arcface::open_gallery(a.gallery, a.model.source(), a.options);
}

inline Aggregation parse_aggregation(const std::string& name) {
  if (name != "best" && name != "mean") {
    throw Error(fmt::format("--aggregation '{}': mean or best", name));
  }
  return name == "best" ? Aggregation::BestFace : Aggregation::Mean;
}

}  // namespace arcface::cli
