#pragma once

#include <cstdint>
#include <vector>

namespace arcface {

/// A threshold and the accuracy it gives. A pair is called "same" when score >= threshold.
struct ThresholdChoice {
  double threshold = 0;
  double accuracy = 0;
};

/// The threshold that maximises accuracy over the given pairs (seed 000's measure). Candidate
/// thresholds are the midpoints between consecutive distinct scores and one beyond each end;
/// the lowest of equally good thresholds is taken.
ThresholdChoice best_threshold(const std::vector<double>& scores, const std::vector<bool>& same);

/// Accuracy of a fixed threshold.
double accuracy_at(const std::vector<double>& scores, const std::vector<bool>& same,
                   double threshold);

/// One ROC point: at `threshold`, the rates of accepted different-person pairs (FAR) and
/// accepted same-person pairs (TAR).
struct RocPoint {
  double threshold, far, tar;
};
/// The ROC curve from (0,0) to (1,1), one point per distinct score.
std::vector<RocPoint> roc_curve(const std::vector<double>& scores, const std::vector<bool>& same);

/// Area under the ROC curve: the probability that a same-person pair scores above a
/// different-person pair, ties counting one half.
double roc_auc(const std::vector<RocPoint>& roc);

/// The highest TAR with FAR <= `far`.
double tar_at_far(const std::vector<RocPoint>& roc, double far);

/// Equal error rate: (FAR + FRR) / 2 where |FAR - FRR| is smallest.
double equal_error_rate(const std::vector<RocPoint>& roc);

/// A decision threshold for a false-accept rate, from the different-person pairs alone.
struct FarThreshold {
  double far = 0;        // the rate asked for
  double threshold = 0;  // the lowest threshold that accepts at most far x negatives
  double tar = 0;        // same-person pairs accepted at it
  int64_t false_accepts = 0, negatives = 0;
  /// Whether the negatives can show this rate: far x negatives >= 1. Otherwise the threshold
  /// only lies above every negative, and says FAR < 1 / negatives, not FAR <= far.
  bool supported = false;
};

/// The thresholds for the given false-accept rates (e.g. 1e-2, 1e-3, 1e-4).
std::vector<FarThreshold> thresholds_at_far(const std::vector<double>& scores,
                                            const std::vector<bool>& same,
                                            const std::vector<double>& fars);

/// The false-accept rates `arcface eval` reports thresholds for.
inline const std::vector<double>& reported_fars() {
  static const std::vector<double> fars{1e-2, 1e-3, 1e-4};
  return fars;
}

struct ScoreStats {
  int64_t count = 0;
  double mean = 0, std = 0, min = 0, max = 0;  // std is the population standard deviation
};
ScoreStats score_stats(const std::vector<double>& scores);

/// Everything `arcface eval` reports about one set of pair scores.
struct VerificationMetrics {
  int64_t pairs = 0, positives = 0, negatives = 0;
  double accuracy_best = 0, threshold_best = 0;  // tuned on all pairs: optimistic
  double accuracy_10fold_mean = 0, accuracy_10fold_std = 0;
  std::vector<double> fold_accuracies, fold_thresholds;
  double roc_auc = 0, tar_at_far_1e3 = 0, tar_at_far_1e2 = 0, eer = 0;
  ScoreStats pos, neg;
  double margin = 0;  // pos.mean - neg.mean, seed 000's "discriminative margin"
  int64_t false_accepts = 0, false_rejects = 0;  // at threshold_best
  std::vector<FarThreshold> at_far;              // for reported_fars()
};

/// Computes all metrics. `folds[i]` is the fold of pair i; each fold's threshold is chosen on
/// the other folds. With a single fold the k-fold figures are left at zero.
VerificationMetrics verification_metrics(const std::vector<double>& scores,
                                         const std::vector<bool>& same,
                                         const std::vector<int32_t>& folds, int32_t num_folds);

}  // namespace arcface
