#include <cmath>

#include "arcface/error.h"
#include "arcface/metrics.h"
#include "test_util.h"

namespace arcface {
namespace {

TEST(Metrics, PerfectSeparation) {
  const std::vector<double> scores{0.9, 0.8, 0.7, 0.1, 0.0, -0.2};
  const std::vector<bool> same{true, true, true, false, false, false};
  const auto best = best_threshold(scores, same);
  EXPECT_DOUBLE_EQ(best.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(best.threshold, 0.4);  // midway between 0.1 and 0.7
  const auto roc = roc_curve(scores, same);
  EXPECT_DOUBLE_EQ(roc_auc(roc), 1.0);
  EXPECT_DOUBLE_EQ(tar_at_far(roc, 1e-3), 1.0);
  EXPECT_DOUBLE_EQ(equal_error_rate(roc), 0.0);
}

TEST(Metrics, TiesAreCountedByHand) {
  // Positives 0.9, 0.8; negatives 0.8, 0.3.
  const std::vector<double> scores{0.9, 0.8, 0.8, 0.3};
  const std::vector<bool> same{true, true, false, false};
  const auto best = best_threshold(scores, same);
  // Thresholds 0.55 and 0.85 both get 3 of 4 right; the lower is taken.
  EXPECT_DOUBLE_EQ(best.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(best.threshold, 0.55);
  // AUC: of the 4 (pos, neg) pairs, 3 are ordered and 1 is tied: 3.5 / 4.
  EXPECT_DOUBLE_EQ(roc_auc(roc_curve(scores, same)), 0.875);
  EXPECT_DOUBLE_EQ(accuracy_at(scores, same, 0.8), 0.75);  // >= counts as same
}

TEST(Metrics, AllScoresEqual) {
  const std::vector<double> scores(5, 0.5);
  const std::vector<bool> same{true, true, true, false, false};
  const auto best = best_threshold(scores, same);
  EXPECT_DOUBLE_EQ(best.accuracy, 0.6);  // call everything "same"
  EXPECT_LT(best.threshold, 0.5);
  const auto roc = roc_curve(scores, same);
  EXPECT_DOUBLE_EQ(roc_auc(roc), 0.5);
  EXPECT_DOUBLE_EQ(tar_at_far(roc, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(equal_error_rate(roc), 0.5);
}

TEST(Metrics, TarAtFarAndEer) {
  // 4 positives, 4 negatives, one negative scoring above two positives.
  const std::vector<double> scores{0.9, 0.8, 0.5, 0.4, 0.6, 0.3, 0.2, 0.1};
  const std::vector<bool> same{true, true, true, true, false, false, false, false};
  const auto roc = roc_curve(scores, same);
  EXPECT_DOUBLE_EQ(tar_at_far(roc, 0.0), 0.5);   // only 0.9 and 0.8 pass before 0.6
  EXPECT_DOUBLE_EQ(tar_at_far(roc, 0.25), 1.0);  // accepting the 0.6 negative
  EXPECT_DOUBLE_EQ(equal_error_rate(roc), 0.25);
  EXPECT_DOUBLE_EQ(roc_auc(roc), 14.0 / 16.0);
}

TEST(Metrics, ThresholdsAtFarCountedByHand) {
  // 200 negatives scoring 0.000, 0.005, ..., 0.995 and four positives.
  std::vector<double> scores{0.999, 0.9, 0.993, 0.5};
  std::vector<bool> same(4, true);
  for (int i = 0; i < 200; ++i) {
    scores.push_back(i * 0.005);
    same.push_back(false);
  }
  const auto t = thresholds_at_far(scores, same, {1e-2, 1e-3});
  ASSERT_EQ(t.size(), 2u);
  // FAR 1e-2 of 200: two negatives (0.995, 0.990) may pass; the threshold lies just above 0.985.
  EXPECT_NEAR(t[0].threshold, 0.985, 1e-5);
  EXPECT_GT(t[0].threshold, 0.985);
  EXPECT_EQ(t[0].false_accepts, 2);
  EXPECT_EQ(t[0].negatives, 200);
  EXPECT_TRUE(t[0].supported);
  EXPECT_DOUBLE_EQ(t[0].tar, 0.5);  // 0.999 and 0.993 pass
  // FAR 1e-3 of 200 negatives cannot be shown: the threshold only lies above all of them.
  EXPECT_FALSE(t[1].supported);
  EXPECT_EQ(t[1].false_accepts, 0);
  EXPECT_GT(t[1].threshold, 0.995);
  EXPECT_DOUBLE_EQ(t[1].tar, 0.25);
  EXPECT_THROW(thresholds_at_far(scores, same, {0.0}), Error);
  // verification_metrics reports 1e-2, 1e-3 and 1e-4.
  const auto m = verification_metrics(scores, same, std::vector<int32_t>(scores.size(), 0), 1);
  ASSERT_EQ(m.at_far.size(), 3u);
  EXPECT_DOUBLE_EQ(m.at_far[0].threshold, t[0].threshold);
}

TEST(Metrics, KFoldChoosesThresholdsOnTheOtherFolds) {
  // Two folds. Fold 0 is separable at 0.5, fold 1 at 0.0; each fold's threshold comes from the
  // other fold, so each scores below 100%.
  const std::vector<double> scores{0.6, 0.4, 0.1, -0.1};
  const std::vector<bool> same{true, false, true, false};
  const std::vector<int32_t> folds{0, 0, 1, 1};
  const auto m = verification_metrics(scores, same, folds, 2);
  ASSERT_EQ(m.fold_accuracies.size(), 2u);
  EXPECT_DOUBLE_EQ(m.fold_thresholds[0], 0.0);  // from fold 1: midway between -0.1 and 0.1
  EXPECT_DOUBLE_EQ(m.fold_accuracies[0], 0.5);  // 0.4 wrongly accepted
  EXPECT_DOUBLE_EQ(m.fold_thresholds[1], 0.5);
  EXPECT_DOUBLE_EQ(m.fold_accuracies[1], 0.5);  // 0.1 wrongly rejected
  EXPECT_DOUBLE_EQ(m.accuracy_10fold_mean, 0.5);
  EXPECT_DOUBLE_EQ(m.accuracy_10fold_std, 0.0);
  EXPECT_DOUBLE_EQ(m.accuracy_best, 0.75);
  EXPECT_EQ(m.false_accepts + m.false_rejects, 1);
  EXPECT_DOUBLE_EQ(m.pos.mean, 0.35);
  EXPECT_DOUBLE_EQ(m.neg.mean, 0.15);
  EXPECT_NEAR(m.margin, 0.2, 1e-12);
  EXPECT_DOUBLE_EQ(m.pos.std, 0.25);
  EXPECT_DOUBLE_EQ(m.pos.min, 0.1);
  EXPECT_DOUBLE_EQ(m.neg.max, 0.4);
}

TEST(Metrics, BadInputIsAnError) {
  EXPECT_THROW(best_threshold({0.1, 0.2}, {true}), Error);
  EXPECT_THROW(best_threshold({}, {}), Error);
  EXPECT_THROW(best_threshold({std::nan("")}, {true}), Error);
}

}  // namespace
}  // namespace arcface
