#pragma once

// 1:N identification with a gallery: enrol a folder of people, and measure how well a model
// finds people among the enrolled (LFW's open-set protocol).
#include <cstdint>
#include <filesystem>
#include <string>

#include "arcface/face_encoder.h"
#include "arcface/gallery.h"
#include "arcface/identification.h"

namespace arcface {

struct EnrolResult {
  int64_t photos = 0, faces = 0, without_face = 0, subjects = 0;
  double seconds = 0;
};

/// Enrols an identity-per-folder tree: each folder's name is a subject (created when new),
/// its images are encoded and added in one transaction per folder. A photo without a face is
/// counted, not fatal; a damaged one is an Error naming it.
EnrolResult enrol_tree(Gallery& gallery, FaceEncoder& encoder, const fs::path& root,
                       bool progress = true);

struct IdentificationRun {
  Aggregation aggregation = Aggregation::BestFace;
  IdentificationMetrics metrics;
  std::string index;  // the gallery's index kind
  double embed_seconds = 0, search_seconds = 0;
};

/// LFW-style open-set identification of aligned crops under `root`: the split of
/// identification_split(root, per_person) enrolled in a temporary gallery, every probe
/// searched (top 5), once per aggregation (the images are embedded once).
std::vector<IdentificationRun> evaluate_identification(Embedder& embedder, const fs::path& root,
                                                       int64_t per_person, FlipMode flip,
                                                       const std::vector<Aggregation>& aggregations,
                                                       int64_t workers, bool progress = true);

}  // namespace arcface
