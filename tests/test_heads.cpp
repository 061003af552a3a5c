#include <torch/torch.h>

#include <cmath>

#include "arcface/error.h"
#include "arcface/head.h"
#include "arcface/loss.h"
#include "test_util.h"

namespace arcface {
namespace {

// Two unit class centres along the axes; an embedding at angle t from class 0.
MarginHead axis_head(MarginType type, double scale, double margin, bool easy = false) {
  MarginHead head(MarginHeadOptions(2, 2).type(type).scale(scale).margin(margin).easy_margin(easy));
  torch::NoGradGuard no_grad;
  head->weight.copy_(torch::tensor({{2.0, 0.0}, {0.0, 3.0}}));  // norms do not matter
  return head;
}

torch::Tensor at_angle(double t) { return torch::tensor({{std::cos(t), std::sin(t)}}) * 5.0; }

TEST(ArcFace, LogitsMatchHandComputedValues) {
  auto head = axis_head(MarginType::Arc, 30, 0.5);
  const double t = 0.3;
  auto logits = head->forward(at_angle(t), torch::tensor({0}, torch::kLong));
  EXPECT_NEAR(logits[0][0].item<double>(), 30 * std::cos(t + 0.5), 1e-5);
  EXPECT_NEAR(logits[0][1].item<double>(), 30 * std::sin(t), 1e-5);  // cos(pi/2 - t)
  // Without the label's margin: plain scaled cosines.
  auto plain = head->logits(at_angle(t));
  EXPECT_NEAR(plain[0][0].item<double>(), 30 * std::cos(t), 1e-5);
}

TEST(ArcFace, FallbackPastPiMinusMargin) {
  auto head = axis_head(MarginType::Arc, 10, 0.5);
  const double t = 3.0;  // theta + m > pi
  auto logits = head->forward(at_angle(t), torch::tensor({0}, torch::kLong));
  const double expected = std::cos(t) - std::sin(M_PI - 0.5) * 0.5;
  EXPECT_NEAR(logits[0][0].item<double>(), 10 * expected, 1e-5);
}

TEST(ArcFace, EasyMarginLeavesObtuseAnglesAlone) {
  auto head = axis_head(MarginType::Arc, 10, 0.5, true);
  auto obtuse = head->forward(at_angle(2.0), torch::tensor({0}, torch::kLong));
  EXPECT_NEAR(obtuse[0][0].item<double>(), 10 * std::cos(2.0), 1e-5);
  auto acute = head->forward(at_angle(0.4), torch::tensor({0}, torch::kLong));
  EXPECT_NEAR(acute[0][0].item<double>(), 10 * std::cos(0.9), 1e-5);
}

TEST(CosFace, SubtractsTheMarginFromTheTargetCosine) {
  auto head = axis_head(MarginType::Cos, 30, 0.4);
  auto logits = head->forward(at_angle(0.7), torch::tensor({1}, torch::kLong));
  EXPECT_NEAR(logits[0][0].item<double>(), 30 * std::cos(0.7), 1e-5);
  EXPECT_NEAR(logits[0][1].item<double>(), 30 * (std::sin(0.7) - 0.4), 1e-5);
}

TEST(Softmax, IsALinearLayerWithBias) {
  MarginHead head(MarginHeadOptions(3, 2).type(MarginType::Softmax));
  auto x = torch::randn({4, 3});
  auto expected = torch::matmul(x, head->weight.t()) + head->bias;
  EXPECT_TRUE(torch::allclose(head->forward(x, torch::zeros({4}, torch::kLong)), expected));
  EXPECT_EQ(head->named_parameters().size(), 2u);
}

TEST(MarginHead, DefaultMarginsAndBadNames) {
  EXPECT_DOUBLE_EQ(MarginHead(MarginHeadOptions(4, 3))->options().margin(), 0.5);
  EXPECT_DOUBLE_EQ(MarginHead(MarginHeadOptions(4, 3).type(MarginType::Cos))->options().margin(),
                   0.4);
  EXPECT_EQ(parse_margin_type("arcface"), MarginType::Arc);
  EXPECT_THROW(parse_margin_type("sphereface"), Error);
}

// Central finite differences of the summed loss, in double precision.
void check_gradients(MarginType type) {
  torch::manual_seed(3);
  MarginHead head(MarginHeadOptions(6, 5).type(type).scale(8).margin(0.4));
  head->to(torch::kDouble);
  auto x = torch::randn({4, 6}, torch::kDouble).requires_grad_(true);
  auto labels = torch::tensor({0, 3, 4, 3}, torch::kLong);
  auto loss_of = [&] {
    return classification_loss(head->forward(x, labels), labels,
                               LossOptions().type(LossType::Focal));
  };
  auto loss = loss_of();
  loss.backward();
  const auto analytic_x = x.grad().clone();
  const auto analytic_w = head->weight.grad().clone();
  const double h = 1e-6;
  torch::NoGradGuard no_grad;
  for (auto [param, analytic] : {std::pair{x, analytic_x}, std::pair{head->weight, analytic_w}}) {
    auto flat = param.view({-1});
    for (int64_t i = 0; i < flat.size(0); ++i) {
      const double v = flat[i].item<double>();
      flat[i] = v + h;
      const double up = loss_of().item<double>();
      flat[i] = v - h;
      const double down = loss_of().item<double>();
      flat[i] = v;
      EXPECT_NEAR(analytic.view({-1})[i].item<double>(), (up - down) / (2 * h), 1e-6)
          << "element " << i;
    }
  }
}

TEST(ArcFace, GradientsMatchFiniteDifferences) { check_gradients(MarginType::Arc); }
TEST(CosFace, GradientsMatchFiniteDifferences) { check_gradients(MarginType::Cos); }

TEST(Loss, FocalWeighsEachSampleByItsOwnProbability) {
  auto logits = torch::tensor({{2.0, 0.0, -1.0}, {0.0, 1.0, 0.0}}, torch::kDouble);
  auto labels = torch::tensor({0, 2}, torch::kLong);
  auto p = torch::softmax(logits, 1);
  const double p0 = p[0][0].item<double>(), p1 = p[1][2].item<double>();
  const double ce = -(std::log(p0) + std::log(p1)) / 2;
  const double focal =
      -(std::pow(1 - p0, 2) * std::log(p0) + std::pow(1 - p1, 2) * std::log(p1)) / 2;
  EXPECT_NEAR(classification_loss(logits, labels, LossOptions()).item<double>(), ce, 1e-12);
  EXPECT_NEAR(classification_loss(logits, labels, LossOptions().type(LossType::Focal).gamma(2))
                  .item<double>(),
              focal, 1e-12);
  EXPECT_NEAR(classification_loss(logits, labels, LossOptions().type(LossType::Focal).gamma(0))
                  .item<double>(),
              ce, 1e-12);
  EXPECT_THROW(parse_loss_type("hinge"), Error);
}

}  // namespace
}  // namespace arcface
