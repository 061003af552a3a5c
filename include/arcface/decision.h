#pragma once

// A decision threshold taken from an evaluation report, with what it stands for: a stated
// false-accept rate, or the best-accuracy threshold of the evaluated pairs.
#include <filesystem>
#include <string>

namespace arcface {

namespace fs = std::filesystem;

struct Decision {
  double threshold = 0;
  double far = 0;          // the false-accept rate asked for; 0 for the best-accuracy threshold
  std::string flip;        // the flip mode the report was measured with
  std::string meaning;     // e.g. "FAR 1e-3: at most 3 of 3000 different-person pairs pass"
  bool one_to_one = true;  // from `eval` (pairs); false from `identify-eval` (a gallery search)
};

/// Reads `arcface eval`'s metrics.json or `identify-eval`'s JSON. With `far` > 0 the threshold
/// for that rate (one the report holds, e.g. 1e-3), otherwise eval's best-accuracy threshold;
/// identify-eval reports only thresholds at a FAR, for the run with `aggregation` (mean or
/// best). Errors name the file and what it holds.
Decision read_decision(const fs::path& report, double far = 0,
                       const std::string& aggregation = "mean");

}  // namespace arcface
