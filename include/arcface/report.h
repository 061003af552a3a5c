#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arcface/metrics.h"
#include "arcface/pairs.h"

namespace arcface {

namespace fs = std::filesystem;

/// What was evaluated and how, for the report's configuration section.
struct EvalSummary {
  std::string model;  // description of the model
  std::string root;
  std::string flip;
  std::string preprocess;  // e.g. "112x112 rgb, (x/255 - 0.5) / 0.5"
  int64_t images = 0;
  int64_t skipped_pairs = 0;  // pairs dropped for missing or damaged images (--skip-missing)
  std::vector<std::string> dropped_images;  // why each image was dropped, naming it
  /// Raw photos: how faces were found and aligned ("" for aligned crops), and the images in
  /// which none was found (centre-cropped instead).
  std::string face_detection;
  std::vector<std::string> no_face_images;
  double seconds = 0, network_seconds = 0, wait_seconds = 0;
  std::string system;     // the machine line
  std::string precision;  // fp32 or bf16: scores move by about 0.02 between them
};

/// metrics.json: every metric plus the run's facts.
nlohmann::json metrics_json(const VerificationMetrics& m, const PairList& pairs,
                            const EvalSummary& summary);

/// Writes metrics.json, pair_scores.csv, report.md, roc.png and score_hist.png into `dir`.
void write_eval_report(const fs::path& dir, const PairList& pairs,
                       const std::vector<double>& scores, const VerificationMetrics& m,
                       const EvalSummary& summary);

}  // namespace arcface
