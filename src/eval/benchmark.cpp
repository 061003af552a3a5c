#include "arcface/benchmark.h"

#include <set>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "arcface/checkpoint.h"
#include "arcface/error.h"
#include "arcface/report.h"

namespace arcface {

namespace {

std::string pct(double v) { return fmt::format("{:.2f}", 100 * v); }

const FarThreshold* at(const VerificationMetrics& m, double far) {
  for (const auto& t : m.at_far) {
    if (t.far == far) return &t;
  }
  return nullptr;
}

// A TAR at a rate the negatives cannot show is marked, not hidden.
std::string tar_cell(const VerificationMetrics& m, double far) {
  const FarThreshold* t = at(m, far);
  if (!t) return "n/a";
  return t->supported ? pct(t->tar) : pct(t->tar) + "*";
}

}  // namespace

std::vector<BenchmarkRow> run_benchmark(Embedder& embedder, const std::vector<PairTarget>& targets,
                                        const EvalOptions& options) {
  if (targets.empty()) throw Error("benchmark: no targets");
  // Read every list first, so a bad path fails before hours of embedding; each target's
  // report has a folder of its name, so a name given twice would overwrite one.
  std::vector<PairList> lists;
  std::set<std::string> names;
  for (const auto& t : targets) {
    if (!names.insert(t.name).second) {
      throw Error(fmt::format("benchmark: the target name '{}' is given twice", t.name));
    }
    lists.push_back(read_pair_target(t));
  }
  std::vector<BenchmarkRow> rows;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (options.progress) fmt::print("{}: {} pairs\n", targets[i].name, lists[i].pairs.size());
    rows.push_back({targets[i], verify_pair_list(embedder, std::move(lists[i]), targets[i].root,
                                                 options, false)});
  }
  return rows;
}

std::string benchmark_markdown(const std::string& model, const std::vector<BenchmarkRow>& rows) {
  std::string md = fmt::format("Model: {}\n\n", model);
  md +=
      "| target | pairs | k-fold accuracy (%) | AUC | TAR @ FAR 1e-3 (%) | TAR @ FAR 1e-4 (%) | "
      "EER (%) | threshold @ FAR 1e-3 | folds |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---|\n";
  bool unsupported = false;
  for (const auto& r : rows) {
    const auto& m = r.run.result.metrics;
    const auto& p = r.run.pairs;
    const FarThreshold* t3 = at(m, 1e-3);
    for (double far : {1e-3, 1e-4}) {
      if (const FarThreshold* t = at(m, far); t && !t->supported) unsupported = true;
    }
    md += fmt::format("| {} | {} | {} ± {} | {:.4f} | {} | {} | {} | {} | {} |\n", r.target.name,
                      m.pairs, pct(m.accuracy_10fold_mean), pct(m.accuracy_10fold_std), m.roc_auc,
                      tar_cell(m, 1e-3), tar_cell(m, 1e-4), pct(m.eer),
                      t3 ? fmt::format("{:.4f}", t3->threshold) : "n/a",
                      !p.protocol.empty() ? fmt::format("{}, its {}", p.protocol, p.num_folds)
                      : p.folds_from_file ? fmt::format("{} from the file", p.num_folds)
                                          : fmt::format("{} interleaved", p.num_folds));
  }
  if (unsupported) {
    md +=
        "\n\\* fewer than 1 / FAR different-person pairs: the rate cannot be shown, the "
        "threshold lies above every negative.\n";
  }
  return md;
}

void write_benchmark(const fs::path& dir, const Embedder& embedder, FlipMode flip,
                     const std::vector<BenchmarkRow>& rows) {
  fs::create_directories(dir);
  nlohmann::json table = nlohmann::json::array();
  for (const auto& r : rows) {
    const EvalSummary s = eval_summary(embedder, r.run, r.target.root.string(), flip);
    write_eval_report(dir / r.target.name, r.run.pairs, r.run.result.scores, r.run.result.metrics,
                      s);
    auto j = metrics_json(r.run.result.metrics, r.run.pairs, s);
    j["target"] = r.target.name;
    table.push_back(j);
  }
  const std::string md = "# Verification benchmark\n\n" +
                         benchmark_markdown(embedder.description(), rows) +
                         fmt::format(
                             "\nFlip: {}; precision: {}. Each target's report is in its "
                             "own folder.\n",
                             to_string(flip), to_string(embedder.precision()));
  write_file_atomic(dir / "table.md", md);
  write_file_atomic(dir / "table.json", table.dump(2) + "\n");
}

}  // namespace arcface
