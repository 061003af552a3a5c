#pragma once

// One model over several verification targets (LFW, CFP-FF, CFP-FP, insightface .bin files),
// summed up in one table as the field's model zoos report them.
#include <filesystem>
#include <string>
#include <vector>

#include "arcface/evaluate.h"

namespace arcface {

namespace fs = std::filesystem;

struct BenchmarkRow {
  PairTarget target;
  Verification run;
};

/// Evaluates the model on every target in turn (each image checked and embedded once per
/// target). A missing or damaged image is an error naming it, as in `arcface eval`.
std::vector<BenchmarkRow> run_benchmark(Embedder& embedder, const std::vector<PairTarget>& targets,
                                        const EvalOptions& options);

/// The table as Markdown: a row per target with k-fold accuracy, AUC, TAR at FAR 1e-3 and
/// 1e-4, EER and the threshold at FAR 1e-3.
std::string benchmark_markdown(const std::string& model, const std::vector<BenchmarkRow>& rows);

/// Writes table.md and table.json into `dir`, and every target's full eval report into
/// `dir/NAME/` (metrics.json, report.md, ...).
void write_benchmark(const fs::path& dir, const Embedder& embedder, FlipMode flip,
                     const std::vector<BenchmarkRow>& rows);

}  // namespace arcface
