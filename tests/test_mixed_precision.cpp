// Loss scaling, fp16's companion, checked in fp32 on the CPU: with a power-of-two scale a
// scaled step is the unscaled step, and an overflowing one changes nothing but the scale. And
// channels-last, cuDNN's layout, which must not change what is learnt.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "arcface/error.h"
#include "arcface/learner.h"
#include "arcface/loss_scaler.h"

namespace arcface {
namespace {

Learner small_learner() {
  torch::manual_seed(11);
  auto net =
      make_backbone(BackboneOptions("mobilefacenet").input_size(32).channels(3).embedding_dim(64));
  Learner learner(net, MarginHead(MarginHeadOptions(64, 4).scale(16).margin(0.2)),
                  LossOptions().type(LossType::CrossEntropy), {"sgd", 0.1, 0.9, 5e-4}, torch::kCPU);
  learner.train();
  return learner;
}

struct Inputs {
  at::Tensor images = torch::randn({8, 3, 32, 32}, torch::TensorOptions().dtype(torch::kFloat));
  at::Tensor labels = torch::arange(8, torch::kLong) % 4;
};

std::vector<at::Tensor> weights(Learner& learner) {
  std::vector<at::Tensor> out;
  for (const auto& p : learner.backbone()->parameters()) out.push_back(p.detach().clone());
  for (const auto& p : learner.head()->parameters()) out.push_back(p.detach().clone());
  return out;
}

double largest_difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  }
  return worst;
}

TEST(LossScaling, ScaledStepsEqualUnscaledOnes) {
  torch::manual_seed(1);
  const Inputs batch;
  auto plain = small_learner();
  auto scaled = small_learner();
  scaled.loss_scaling(LossScalerOptions{});
  ASSERT_NE(scaled.loss_scaler(), nullptr);
  for (uint64_t s = 0; s < 5; ++s) {
    const auto a = plain.step(batch.images, batch.labels, 0.1, s);
    const auto b = scaled.step(batch.images, batch.labels, 0.1, s);
    EXPECT_FALSE(b.skipped) << "step " << s;
    EXPECT_DOUBLE_EQ(a.loss, b.loss) << "step " << s;
  }
  const auto wa = weights(plain), wb = weights(scaled);
  auto untrained = small_learner();
  EXPECT_GT(largest_difference(wa, weights(untrained)), 1e-3) << "no step was taken";
  EXPECT_LT(largest_difference(wa, wb), 1e-6);
  EXPECT_EQ(scaled.loss_scaler()->value(), 65536);
  EXPECT_EQ(scaled.loss_scaler()->clean_steps(), 5);
}

TEST(LossScaling, AnOverflowSkipsTheStepAndHalvesTheScale) {
  torch::manual_seed(2);
  const Inputs batch;
  auto learner = small_learner();
  // fp32's largest power of two: the scaled loss is inf, and so is every gradient.
  learner.loss_scaling(LossScalerOptions{std::ldexp(1.0, 127)});
  const auto before = weights(learner);
  const auto first = learner.step(batch.images, batch.labels, 0.1, 0);
  EXPECT_TRUE(first.skipped);
  EXPECT_TRUE(std::isfinite(first.loss)) << "the reported loss is the unscaled one";
  EXPECT_EQ(largest_difference(before, weights(learner)), 0) << "a skipped step moved weights";
  EXPECT_EQ(learner.loss_scaler()->value(), std::ldexp(1.0, 126));
  // The scale halves until the gradients fit, then training goes on.
  int skipped = 1;
  for (uint64_t s = 1; s < 60 && learner.step(batch.images, batch.labels, 0.1, s).skipped; ++s) {
    ++skipped;
  }
  EXPECT_LT(skipped, 60) << "never recovered";
  EXPECT_GT(largest_difference(before, weights(learner)), 0);
  EXPECT_EQ(learner.loss_scaler()->value(), std::ldexp(1.0, 127 - skipped));
}

// NHWC is a layout, not a model: the same step gives the same loss and the same gradient (up
// to the rounding of other kernels, which deep BatchNorm stacks amplify to a few 1e-3 in the
// first layers), and the convolution weights stay NHWC through the update.
TEST(ChannelsLast, AStepEqualsTheDefaultLayout) {
  torch::manual_seed(3);
  const Inputs batch;
  auto plain = small_learner();
  auto nhwc = small_learner();
  nhwc.channels_last(true);
  const auto a = plain.step(batch.images, batch.labels, 0.1, 0);
  const auto b = nhwc.step(batch.images, batch.labels, 0.1, 0);
  EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::abs(a.loss));
  std::vector<at::Tensor> ga, gb;
  const auto pa = plain.backbone()->parameters(), pb = nhwc.backbone()->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    ga.push_back(pa[i].grad().flatten());
    gb.push_back(pb[i].grad().flatten());
    if (pb[i].dim() == 4 && pb[i].size(2) > 1) {
      EXPECT_TRUE(pb[i].is_contiguous(at::MemoryFormat::ChannelsLast)) << pb[i].sizes();
    }
  }
  const auto x = torch::cat(ga), y = torch::cat(gb);
  EXPECT_GT(torch::cosine_similarity(x, y, 0).item<double>(), 0.9999);
  EXPECT_NEAR(y.norm().item<double>() / x.norm().item<double>(), 1.0, 1e-3);
}

TEST(LossScaling, GrowsAfterCleanStepsAndKeepsItsState) {
  LossScaler scaler(LossScalerOptions{1024, 2, 0.5, 3});
  scaler.update(true);
  scaler.update(true);
  EXPECT_EQ(scaler.value(), 1024);
  scaler.update(true);
  EXPECT_EQ(scaler.value(), 2048);
  EXPECT_EQ(scaler.clean_steps(), 0);
  scaler.update(true);
  scaler.update(false);
  EXPECT_EQ(scaler.value(), 1024);
  EXPECT_EQ(scaler.clean_steps(), 0);
  scaler.update(true);

  LossScaler resumed(LossScalerOptions{1024, 2, 0.5, 3});
  resumed.load_state(scaler.state());
  EXPECT_EQ(resumed.value(), 1024);
  EXPECT_EQ(resumed.clean_steps(), 1);
  EXPECT_THROW(resumed.load_state({{"scale", 0}, {"clean_steps", 0}}), Error);

  EXPECT_THROW(LossScaler(LossScalerOptions{0}), Error);
  EXPECT_THROW(LossScaler(LossScalerOptions{1024, 2, 1.5}), Error);
  EXPECT_THROW(LossScaler(LossScalerOptions{1024, 2, 0.5, 0}), Error);
}

}  // namespace
}  // namespace arcface
