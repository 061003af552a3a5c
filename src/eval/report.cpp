#include "arcface/report.h"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <numeric>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "eval/plot.h"

namespace arcface {

namespace {

std::string folds_note(const PairList& pairs) {
  if (pairs.num_folds <= 1) return "no folds";
  if (!pairs.protocol.empty()) {
    return fmt::format("the {} folds of {}'s protocol", pairs.num_folds, pairs.protocol);
  }
  if (pairs.folds_from_file) return fmt::format("the {} folds of the pairs file", pairs.num_folds);
  return fmt::format(
      "{} consecutive parts after interleaving same and different pairs (the "
      "list has no folds of its own)",
      pairs.num_folds);
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw Error(fmt::format("cannot write '{}'", path.string()));
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

std::string pct(double v) { return fmt::format("{:.2f}%", 100 * v); }

nlohmann::json far_thresholds_json(const std::vector<FarThreshold>& at_far) {
  auto j = nlohmann::json::array();
  for (const auto& t : at_far) {
    j.push_back({{"far", t.far},
                 {"threshold", t.threshold},
                 {"tar", t.tar},
                 {"false_accepts", t.false_accepts},
                 {"negatives", t.negatives},
                 {"supported", t.supported}});
  }
  return j;
}

}  // namespace

nlohmann::json metrics_json(const VerificationMetrics& m, const PairList& pairs,
                            const EvalSummary& s) {
  return {
      {"pairs", m.pairs},
      {"positives", m.positives},
      {"negatives", m.negatives},
      {"accuracy_best", m.accuracy_best},
      {"threshold_best", m.threshold_best},
      {"accuracy_10fold_mean", m.accuracy_10fold_mean},
      {"accuracy_10fold_std", m.accuracy_10fold_std},
      {"fold_accuracies", m.fold_accuracies},
      {"fold_thresholds", m.fold_thresholds},
      {"folds", pairs.num_folds},
      {"folds_from_file", pairs.folds_from_file},
      {"roc_auc", m.roc_auc},
      {"tar_at_far_1e-3", m.tar_at_far_1e3},
      {"tar_at_far_1e-2", m.tar_at_far_1e2},
      {"eer", m.eer},
      {"pos_mean", m.pos.mean},
      {"pos_std", m.pos.std},
      {"pos_min", m.pos.min},
      {"pos_max", m.pos.max},
      {"neg_mean", m.neg.mean},
      {"neg_std", m.neg.std},
      {"neg_min", m.neg.min},
      {"neg_max", m.neg.max},
      {"margin", m.margin},
      {"false_accepts", m.false_accepts},
      {"false_rejects", m.false_rejects},
      {"thresholds_at_far", far_thresholds_json(m.at_far)},
      {"images", s.images},
      {"skipped_pairs", s.skipped_pairs},
      {"dropped_images", s.dropped_images},
      {"precision", s.precision},
      {"face_detection", s.face_detection.empty() ? "none (aligned crops)" : s.face_detection},
      {"no_face_images", s.no_face_images},
      {"seconds", s.seconds},
      {"network_seconds", s.network_seconds},
      {"decode_wait_seconds", s.wait_seconds},
      {"model", s.model},
      {"root", s.root},
      {"pairs_file", pairs.source.string()},
      {"pairs_format", to_string(pairs.format)},
      {"protocol", pairs.protocol},
      {"flip", s.flip},
      {"preprocess", s.preprocess},
  };
}

void write_eval_report(const fs::path& dir, const PairList& pairs,
                       const std::vector<double>& scores, const VerificationMetrics& m,
                       const EvalSummary& s) {
  if (scores.size() != pairs.pairs.size()) {
    throw Error(fmt::format("report: {} scores for {} pairs", scores.size(), pairs.pairs.size()));
  }
  fs::create_directories(dir);
  write_text(dir / "metrics.json", metrics_json(m, pairs, s).dump(2) + "\n");

  std::string csv = "index,image_a,image_b,same,fold,score,accepted\n";
  for (size_t i = 0; i < scores.size(); ++i) {
    const auto& p = pairs.pairs[i];
    csv += fmt::format("{},{},{},{},{},{:.6f},{}\n", i, pairs.images[p.a], pairs.images[p.b],
                       p.same ? 1 : 0, p.fold, scores[i], scores[i] >= m.threshold_best ? 1 : 0);
  }
  write_text(dir / "pair_scores.csv", csv);

  std::vector<double> pos, neg;
  std::vector<bool> same;
  for (size_t i = 0; i < scores.size(); ++i) {
    (pairs.pairs[i].same ? pos : neg).push_back(scores[i]);
    same.push_back(pairs.pairs[i].same);
  }
  if (can_plot()) {
    plot_roc(dir / "roc.png", roc_curve(scores, same), m.roc_auc, "ROC");
    plot_score_histogram(dir / "score_hist.png", pos, neg, m.threshold_best, "pair scores");
  }

  // The hardest errors: different people scored highest, same people scored lowest.
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::string false_accepts, false_rejects;
  int shown = 0;
  for (size_t i : order) {
    const auto& p = pairs.pairs[i];
    if (p.same || scores[i] < m.threshold_best || shown == 10) continue;
    false_accepts +=
        fmt::format("| {:.4f} | {} | {} |\n", scores[i], pairs.images[p.a], pairs.images[p.b]);
    ++shown;
  }
  shown = 0;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const auto& p = pairs.pairs[*it];
    if (!p.same || scores[*it] >= m.threshold_best || shown == 10) continue;
    false_rejects +=
        fmt::format("| {:.4f} | {} | {} |\n", scores[*it], pairs.images[p.a], pairs.images[p.b]);
    ++shown;
  }

  std::string folds_table;
  for (size_t k = 0; k < m.fold_accuracies.size(); ++k) {
    folds_table += fmt::format("| {} | {} | {:.4f} |\n", k + 1, pct(m.fold_accuracies[k]),
                               m.fold_thresholds[k]);
  }

  std::string md;
  md += "# Face verification report\n\n";
  md += fmt::format("Generated {} by `arcface eval`.\n\n", now_text());
  md += "## Configuration\n\n| | |\n|---|---|\n";
  md += fmt::format("| model | {} |\n", s.model);
  md += fmt::format("| image root | `{}` |\n", s.root);
  md += fmt::format("| pairs | `{}` ({} format{}) |\n", pairs.source.string(),
                    to_string(pairs.format), pairs.protocol.empty() ? "" : ", " + pairs.protocol);
  if (!s.face_detection.empty()) {
    md += fmt::format("| face detection and alignment | {} |\n", s.face_detection);
    md += fmt::format("| images without a face (centre crop) | {}{} |\n", s.no_face_images.size(),
                      s.no_face_images.empty()
                          ? ""
                          : ": " + fmt::format("{}", fmt::join(s.no_face_images, ", ")));
  }
  md += fmt::format("| preprocessing | {} |\n", s.preprocess);
  md += fmt::format("| flip test-time augmentation | {} |\n", s.flip);
  if (!s.precision.empty()) md += fmt::format("| precision | {} |\n", s.precision);
  md += fmt::format("| pairs evaluated | {} ({} same, {} different) |\n", m.pairs, m.positives,
                    m.negatives);
  if (s.skipped_pairs > 0) {
    md += fmt::format("| pairs skipped (missing or damaged images) | **{}** |\n", s.skipped_pairs);
    md += fmt::format("| images dropped | {} |\n", fmt::join(s.dropped_images, "; "));
  }
  md += fmt::format("| distinct images embedded | {} |\n", s.images);
  md +=
      fmt::format("| time | {:.1f} s ({:.1f} s in the network, {:.1f} s waiting for decoding) |\n",
                  s.seconds, s.network_seconds, s.wait_seconds);
  if (!s.system.empty()) md += fmt::format("| machine | {} |\n", s.system);

  md += "\n## Metrics\n\n| metric | value | definition |\n|---|---:|---|\n";
  md += fmt::format(
      "| {}-fold accuracy | **{} ± {}** | threshold chosen on the other folds, "
      "tested on the held-out one; mean ± std over folds. Folds: {} |\n",
      pairs.num_folds, pairs.num_folds > 1 ? pct(m.accuracy_10fold_mean) : "n/a",
      pairs.num_folds > 1 ? pct(m.accuracy_10fold_std) : "n/a", folds_note(pairs));
  md += fmt::format(
      "| best-threshold accuracy | {} | the threshold that maximises accuracy on "
      "these same pairs (optimistic: tuned on the test set) |\n",
      pct(m.accuracy_best));
  md += fmt::format(
      "| best threshold | {:.4f} | cosine similarity; same person when score >= "
      "threshold |\n",
      m.threshold_best);
  md += fmt::format(
      "| ROC AUC | {:.4f} | probability that a same-person pair outscores a "
      "different-person pair |\n",
      m.roc_auc);
  md += fmt::format(
      "| TAR @ FAR = 1e-3 | {} | same-person pairs accepted when at most 0.1% of "
      "different-person pairs are |\n",
      pct(m.tar_at_far_1e3));
  md += fmt::format("| TAR @ FAR = 1e-2 | {} | the same at 1% |\n", pct(m.tar_at_far_1e2));
  md += fmt::format("| EER | {} | where false accepts and false rejects are equally frequent |\n",
                    pct(m.eer));

  md +=
      "\n## Decision thresholds at a false-accept rate\n\nFrom the different-person pairs "
      "alone: the lowest threshold at which at most that share of them is accepted. A rate "
      "below 1 / negatives cannot be shown by these pairs; its threshold only lies above "
      "every negative.\n\n| FAR | threshold | TAR | false accepts / negatives | shown by the "
      "pairs |\n|---:|---:|---:|---:|---|\n";
  for (const auto& t : m.at_far) {
    md += fmt::format("| {:g} | {:.4f} | {} | {} / {} | {} |\n", t.far, t.threshold, pct(t.tar),
                      t.false_accepts, t.negatives,
                      t.supported ? "yes" : fmt::format("no (needs {:.0f})", 1 / t.far));
  }
  md += "\n## Score distributions\n\n| pairs | mean ± std | range |\n|---|---|---|\n";
  md += fmt::format("| same person | {:.4f} ± {:.4f} | [{:.4f}, {:.4f}] |\n", m.pos.mean, m.pos.std,
                    m.pos.min, m.pos.max);
  md += fmt::format("| different people | {:.4f} ± {:.4f} | [{:.4f}, {:.4f}] |\n", m.neg.mean,
                    m.neg.std, m.neg.min, m.neg.max);
  md += fmt::format("\nDiscriminative margin (difference of the means): **{:.4f}**.\n\n", m.margin);
  md += can_plot() ? "![score histogram](score_hist.png)\n\n![ROC](roc.png)\n"
                   : "(No plots: this build has no PLplot.)\n";

  if (!folds_table.empty()) {
    md += "\n## Folds\n\n| fold | accuracy | threshold |\n|---:|---:|---:|\n" + folds_table;
  }

  md += "\n## Error analysis\n\n";
  md += fmt::format(
      "At the best threshold {:.4f}: {} false accepts (different people called the "
      "same) and {} false rejects (the same person called different), {} errors in "
      "{} pairs.\n",
      m.threshold_best, m.false_accepts, m.false_rejects, m.false_accepts + m.false_rejects,
      m.pairs);
  if (!false_accepts.empty()) {
    md += "\n### Hardest false accepts\n\n| score | image A | image B |\n|---:|---|---|\n" +
          false_accepts;
  }
  if (!false_rejects.empty()) {
    md += "\n### Hardest false rejects\n\n| score | image A | image B |\n|---:|---|---|\n" +
          false_rejects;
  }
  write_text(dir / "report.md", md);
}

}  // namespace arcface
