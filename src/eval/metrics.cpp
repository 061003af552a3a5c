#include "arcface/metrics.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

namespace {

void check_sizes(const std::vector<double>& scores, const std::vector<bool>& same) {
  if (scores.size() != same.size()) {
    throw Error(fmt::format("metrics: {} scores but {} labels", scores.size(), same.size()));
  }
  if (scores.empty()) throw Error("metrics: no pairs to score");
  for (double s : scores) {
    if (!std::isfinite(s)) throw Error(fmt::format("metrics: non-finite score {}", s));
  }
}

std::vector<size_t> order_by_score(const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  return order;
}

constexpr double kBeyond = 1e-6;  // how far past the extreme scores the end thresholds lie

}  // namespace

ThresholdChoice best_threshold(const std::vector<double>& scores, const std::vector<bool>& same) {
  check_sizes(scores, same);
  const auto order = order_by_score(scores);
  const int64_t n = static_cast<int64_t>(scores.size());
  int64_t correct = std::count(same.begin(), same.end(), true);  // threshold below every score
  ThresholdChoice best{scores[order.front()] - kBeyond, static_cast<double>(correct) / n};
  for (size_t i = 0; i < order.size();) {
    // Move the threshold past every pair with this score.
    const double value = scores[order[i]];
    for (; i < order.size() && scores[order[i]] == value; ++i) correct += same[order[i]] ? -1 : 1;
    const double threshold = i < order.size() ? 0.5 * (value + scores[order[i]]) : value + kBeyond;
    const double accuracy = static_cast<double>(correct) / n;
    if (accuracy > best.accuracy) best = {threshold, accuracy};
  }
  return best;
}

double accuracy_at(const std::vector<double>& scores, const std::vector<bool>& same,
                   double threshold) {
  check_sizes(scores, same);
  int64_t correct = 0;
  for (size_t i = 0; i < scores.size(); ++i) correct += (scores[i] >= threshold) == same[i];
  return static_cast<double>(correct) / scores.size();
}

std::vector<RocPoint> roc_curve(const std::vector<double>& scores, const std::vector<bool>& same) {
  check_sizes(scores, same);
  auto order = order_by_score(scores);
  std::reverse(order.begin(), order.end());
  const double positives = std::count(same.begin(), same.end(), true);
  const double negatives = static_cast<double>(same.size()) - positives;
  std::vector<RocPoint> roc{{scores[order.front()] + kBeyond, 0.0, 0.0}};
  double accepted_pos = 0, accepted_neg = 0;
  for (size_t i = 0; i < order.size();) {
    const double value = scores[order[i]];
    for (; i < order.size() && scores[order[i]] == value; ++i) {
      (same[order[i]] ? accepted_pos : accepted_neg) += 1;
    }
    roc.push_back({value, negatives > 0 ? accepted_neg / negatives : 0.0,
                   positives > 0 ? accepted_pos / positives : 0.0});
  }
  return roc;
}

double roc_auc(const std::vector<RocPoint>& roc) {
  double area = 0;
  for (size_t i = 1; i < roc.size(); ++i) {
    area += (roc[i].far - roc[i - 1].far) * 0.5 * (roc[i].tar + roc[i - 1].tar);
  }
  return area;
}

double tar_at_far(const std::vector<RocPoint>& roc, double far) {
  double tar = 0;
  for (const auto& p : roc) {
    if (p.far <= far) tar = std::max(tar, p.tar);
  }
  return tar;
}

double equal_error_rate(const std::vector<RocPoint>& roc) {
  double best_gap = 2, eer = 1;
  for (const auto& p : roc) {
    const double frr = 1.0 - p.tar;
    const double gap = std::abs(p.far - frr);
    if (gap < best_gap) {
      best_gap = gap;
      eer = 0.5 * (p.far + frr);
    }
  }
  return eer;
}

std::vector<FarThreshold> thresholds_at_far(const std::vector<double>& scores,
                                            const std::vector<bool>& same,
                                            const std::vector<double>& fars) {
  check_sizes(scores, same);
  std::vector<double> neg, pos;
  for (size_t i = 0; i < scores.size(); ++i) (same[i] ? pos : neg).push_back(scores[i]);
  std::sort(neg.begin(), neg.end(), std::greater<>());
  std::vector<FarThreshold> out;
  for (double far : fars) {
    if (!(far > 0 && far < 1))
      throw Error(fmt::format("false-accept rate {} is not in (0, 1)", far));
    FarThreshold t;
    t.far = far;
    t.negatives = static_cast<int64_t>(neg.size());
    t.supported = far * t.negatives >= 1;
    // At most k negatives may pass: the threshold lies just above the (k+1)-th highest.
    const auto k = static_cast<size_t>(std::floor(far * t.negatives + 1e-9));
    if (neg.empty()) {
      t.threshold = -1;
    } else if (k >= neg.size()) {
      t.threshold = neg.back();
    } else {
      t.threshold = neg[k] + kBeyond;
    }
    for (double v : neg) t.false_accepts += v >= t.threshold;
    int64_t accepted = 0;
    for (double v : pos) accepted += v >= t.threshold;
    t.tar = pos.empty() ? 0 : static_cast<double>(accepted) / pos.size();
    out.push_back(t);
  }
  return out;
}

ScoreStats score_stats(const std::vector<double>& scores) {
  ScoreStats s;
  s.count = static_cast<int64_t>(scores.size());
  if (scores.empty()) return s;
  s.mean = std::accumulate(scores.begin(), scores.end(), 0.0) / s.count;
  double sq = 0;
  for (double v : scores) sq += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(sq / s.count);
  auto [lo, hi] = std::minmax_element(scores.begin(), scores.end());
  s.min = *lo;
  s.max = *hi;
  return s;
}

VerificationMetrics verification_metrics(const std::vector<double>& scores,
                                         const std::vector<bool>& same,
                                         const std::vector<int32_t>& folds, int32_t num_folds) {
  check_sizes(scores, same);
  if (folds.size() != scores.size()) {
    throw Error(fmt::format("metrics: {} scores but {} fold labels", scores.size(), folds.size()));
  }
  VerificationMetrics m;
  m.pairs = static_cast<int64_t>(scores.size());
  std::vector<double> pos, neg;
  for (size_t i = 0; i < scores.size(); ++i) (same[i] ? pos : neg).push_back(scores[i]);
  m.positives = static_cast<int64_t>(pos.size());
  m.negatives = static_cast<int64_t>(neg.size());

  const auto best = best_threshold(scores, same);
  m.accuracy_best = best.accuracy;
  m.threshold_best = best.threshold;
  for (size_t i = 0; i < scores.size(); ++i) {
    const bool accepted = scores[i] >= best.threshold;
    m.false_accepts += accepted && !same[i];
    m.false_rejects += !accepted && same[i];
  }

  if (num_folds > 1) {
    for (int32_t k = 0; k < num_folds; ++k) {
      std::vector<double> train_scores, test_scores;
      std::vector<bool> train_same, test_same;
      for (size_t i = 0; i < scores.size(); ++i) {
        if (folds[i] == k) {
          test_scores.push_back(scores[i]);
          test_same.push_back(same[i]);
        } else {
          train_scores.push_back(scores[i]);
          train_same.push_back(same[i]);
        }
      }
      if (test_scores.empty() || train_scores.empty()) continue;
      const double threshold = best_threshold(train_scores, train_same).threshold;
      m.fold_thresholds.push_back(threshold);
      m.fold_accuracies.push_back(accuracy_at(test_scores, test_same, threshold));
    }
    const auto fold_stats = score_stats(m.fold_accuracies);
    m.accuracy_10fold_mean = fold_stats.mean;
    m.accuracy_10fold_std = fold_stats.std;
  }

  const auto roc = roc_curve(scores, same);
  m.roc_auc = roc_auc(roc);
  m.tar_at_far_1e3 = tar_at_far(roc, 1e-3);
  m.tar_at_far_1e2 = tar_at_far(roc, 1e-2);
  m.eer = equal_error_rate(roc);
  m.at_far = thresholds_at_far(scores, same, reported_fars());
  m.pos = score_stats(pos);
  m.neg = score_stats(neg);
  m.margin = m.pos.mean - m.neg.mean;
  return m;
}

}  // namespace arcface
