#include <torch/torch.h>

#include "models/kernels.h"
#include "models/onednn_conv.h"
#include "test_util.h"
#include "util/autocast.h"

namespace arcface {
namespace {

// The fused kernels against ATen's reference operators, values and gradients.
void check_prelu(std::vector<int64_t> shape, int64_t weights) {
  torch::manual_seed(7);
  auto x = torch::randn(shape).requires_grad_(true);
  auto w = (torch::rand({weights}) * 0.5).requires_grad_(true);
  auto x_ref = x.detach().clone().requires_grad_(true);
  auto w_ref = w.detach().clone().requires_grad_(true);
  auto g = torch::randn(shape);
  auto y = fused_prelu(x, w);
  auto y_ref = at::prelu(x_ref, w_ref);
  EXPECT_TRUE(torch::equal(y, y_ref));
  y.backward(g);
  y_ref.backward(g);
  EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad()));
  EXPECT_TRUE(torch::allclose(w.grad(), w_ref.grad(), 1e-4, 1e-4)) << w.grad() << "\n"
                                                                   << w_ref.grad();
}

TEST(Kernels, PReLUSharedWeight) { check_prelu({3, 8, 10, 12}, 1); }
TEST(Kernels, PReLUPerChannel) { check_prelu({3, 8, 10, 12}, 8); }
TEST(Kernels, PReLUOnFeatures) { check_prelu({5, 16}, 16); }

// Two bf16 tensors hold the same values bit for bit, NaNs in the same
// places (their bit patterns vary by conversion path).
bool same_bf16(const at::Tensor& a, const at::Tensor& b) {
  const auto nan_a = at::isnan(a), nan_b = at::isnan(b);
  return torch::equal(nan_a, nan_b) && torch::equal(a.masked_fill(nan_a, 0).view(torch::kInt16),
                                                    b.masked_fill(nan_b, 0).view(torch::kInt16));
}

// bf16 activations with fp32 slopes: outputs and input gradients are the fp32 results rounded
// as c10::BFloat16 rounds (to nearest even, NaN and infinities kept); slope gradients are fp32.
TEST(Kernels, PReLUOnBf16RoundsAsATen) {
  torch::manual_seed(7);
  const auto w = torch::full({8}, 1.0f + 1.0f / 256);  // every negative product needs rounding
  // A tie (-1), a NaN, infinities and the largest bf16, in the vector path.
  auto special =
      torch::tensor({-1.0f, -3.0f, NAN, -INFINITY, -3.3895e38f, INFINITY, -0.0f, 2.0f, -5.5f})
          .view({1, 1, 1, 9})
          .expand({1, 8, 1, 9})
          .to(torch::kBFloat16);
  auto y_special = fused_prelu(special, w);
  ASSERT_EQ(y_special.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(same_bf16(y_special, at::prelu(special.to(torch::kFloat32), w).to(torch::kBFloat16)));

  auto x = torch::randn({3, 8, 10, 12}).to(torch::kBFloat16).requires_grad_(true);
  auto slope = w.clone().requires_grad_(true);
  auto x_ref = x.detach().to(torch::kFloat32).requires_grad_(true);
  auto slope_ref = w.clone().requires_grad_(true);
  auto g = torch::randn({3, 8, 10, 12}).to(torch::kBFloat16);
  auto y = fused_prelu(x, slope);
  auto y_ref = at::prelu(x_ref, slope_ref);
  EXPECT_TRUE(same_bf16(y, y_ref.to(torch::kBFloat16)));
  y.backward(g);
  y_ref.backward(g.to(torch::kFloat32));
  ASSERT_EQ(x.grad().scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(same_bf16(x.grad(), x_ref.grad().to(torch::kBFloat16)));
  ASSERT_EQ(slope.grad().scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::allclose(slope.grad(), slope_ref.grad(), 1e-4, 1e-4));
}

TEST(Kernels, PReLUWeightGradientIsDeterministic) {
  torch::manual_seed(1);
  auto x = torch::randn({16, 32, 20, 20});
  auto g = torch::randn({16, 32, 20, 20});
  auto grad_of = [&] {
    auto w = torch::full({32}, 0.25).requires_grad_(true);
    fused_prelu(x, w).backward(g);
    return w.grad();
  };
  EXPECT_TRUE(torch::equal(grad_of(), grad_of()));
}

// The fused training BatchNorm (+ PReLU) against torch::nn::BatchNorm2d and ATen's PReLU:
// output, running statistics and every gradient. 5x7 planes exercise the vector tails.
void check_batch_norm(int64_t slopes, c10::optional<double> momentum) {
  torch::manual_seed(11);
  const std::vector<int64_t> shape = {4, 6, 5, 7};
  auto options = torch::nn::BatchNorm2dOptions(6).momentum(momentum);
  torch::nn::BatchNorm2d bn(options), bn_ref(options);
  {
    torch::NoGradGuard no_grad;
    bn->weight.uniform_(0.5, 1.5);
    bn->bias.uniform_(-0.5, 0.5);
    bn_ref->weight.copy_(bn->weight);
    bn_ref->bias.copy_(bn->bias);
  }
  auto slope = (torch::rand({std::max<int64_t>(slopes, 1)}) * 0.5).requires_grad_(slopes > 0);
  auto slope_ref = slope.detach().clone().requires_grad_(slopes > 0);
  for (int step = 0; step < 2; ++step) {
    auto x = (torch::randn(shape) * 3 + 1).requires_grad_(true);
    auto x_ref = x.detach().clone().requires_grad_(true);
    auto y = batch_norm_prelu(*bn, x, slopes ? slope : at::Tensor());
    auto y_ref = bn_ref->forward(x_ref);
    if (slopes) y_ref = at::prelu(y_ref, slope_ref);
    EXPECT_TRUE(torch::allclose(y, y_ref, 1e-5, 1e-5)) << (y - y_ref).abs().max();
    auto g = torch::randn(shape);
    y.backward(g);
    y_ref.backward(g);
    EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 1e-4, 1e-5))
        << (x.grad() - x_ref.grad()).abs().max();
  }
  EXPECT_TRUE(torch::allclose(bn->weight.grad(), bn_ref->weight.grad(), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(bn->bias.grad(), bn_ref->bias.grad(), 1e-4, 1e-4));
  if (slopes) EXPECT_TRUE(torch::allclose(slope.grad(), slope_ref.grad(), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(bn->running_mean, bn_ref->running_mean, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(bn->running_var, bn_ref->running_var, 1e-5, 1e-6));
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 2);
  // In evaluation mode it is the module followed by PReLU (on running statistics that agree to
  // the tolerance above).
  bn->eval();
  bn_ref->eval();
  auto x = torch::randn(shape);
  auto y_ref = bn_ref->forward(x);
  if (slopes) y_ref = at::prelu(y_ref, slope_ref);
  EXPECT_TRUE(
      torch::allclose(batch_norm_prelu(*bn, x, slopes ? slope : at::Tensor()), y_ref, 1e-5, 1e-6));
}

TEST(Kernels, BatchNormPReLUPerChannel) { check_batch_norm(6, 0.1); }
TEST(Kernels, BatchNormPReLUShared) { check_batch_norm(1, 0.1); }
TEST(Kernels, BatchNormAloneCumulativeAverage) { check_batch_norm(0, c10::nullopt); }

// bf16 activations: statistics, parameters and arithmetic stay fp32, so the output and the input
// gradient are fp32's results on the same bf16 values within bf16's rounding, and the parameter
// gradients and running statistics within fp32's.
TEST(Kernels, BatchNormPReLUOnBf16FollowsFp32) {
  torch::manual_seed(13);
  const std::vector<int64_t> shape = {4, 6, 5, 7};
  torch::nn::BatchNorm2d bn(6), bn_ref(6);
  {
    torch::NoGradGuard no_grad;
    bn->weight.uniform_(0.5, 1.5);
    bn->bias.uniform_(-0.5, 0.5);
    bn_ref->weight.copy_(bn->weight);
    bn_ref->bias.copy_(bn->bias);
  }
  auto slope = (torch::rand({6}) * 0.5).requires_grad_(true);
  auto slope_ref = slope.detach().clone().requires_grad_(true);
  auto x = (torch::randn(shape) * 3 + 1).to(torch::kBFloat16).requires_grad_(true);
  auto x_ref = x.detach().to(torch::kFloat32).requires_grad_(true);
  auto y = batch_norm_prelu(*bn, x, slope);
  auto y_ref = at::prelu(bn_ref->forward(x_ref), slope_ref);
  ASSERT_EQ(y.scalar_type(), torch::kBFloat16);
  const double bf16_step = 1.0 / 128;  // relative spacing of bf16 values
  EXPECT_TRUE(torch::allclose(y.to(torch::kFloat32), y_ref, bf16_step, 1e-4))
      << (y.to(torch::kFloat32) - y_ref).abs().max();
  auto g = torch::randn(shape).to(torch::kBFloat16);
  y.backward(g);
  y_ref.backward(g.to(torch::kFloat32));
  ASSERT_EQ(x.grad().scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::allclose(x.grad().to(torch::kFloat32), x_ref.grad(), bf16_step, 1e-4))
      << (x.grad().to(torch::kFloat32) - x_ref.grad()).abs().max();
  EXPECT_TRUE(torch::allclose(bn->weight.grad(), bn_ref->weight.grad(), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(bn->bias.grad(), bn_ref->bias.grad(), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(slope.grad(), slope_ref.grad(), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(bn->running_mean, bn_ref->running_mean, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(bn->running_var, bn_ref->running_var, 1e-5, 1e-6));
}

TEST(Kernels, BatchNormOfOtherChannelsIsTheModulesError) {
  torch::nn::BatchNorm2d bn(6);
  EXPECT_THROW(batch_norm_prelu(*bn, torch::randn({2, 4, 3, 3})), c10::Error);
}

// The direct oneDNN training convolution against ATen's: output and both gradients, for
// 3x3 and 1x1 convolutions at strides 1 and 2, and for an input that needs no gradient.
TEST(Kernels, OneDnnConvolutionMatchesATen) {
#ifndef ARCFACE_WITH_ONEDNN
  GTEST_SKIP() << "built without oneDNN: convolutions are ATen's";
#endif
  torch::manual_seed(5);
  struct Case {
    int64_t in, out, kernel, stride, padding, side;
    bool input_grad;
  };
  for (const Case& c : {Case{3, 8, 3, 1, 1, 12, false}, Case{8, 16, 3, 2, 1, 9, true},
                        Case{16, 16, 3, 1, 1, 7, true}, Case{8, 24, 1, 2, 0, 10, true}}) {
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(c.in, c.out, c.kernel)
                               .stride(c.stride)
                               .padding(c.padding)
                               .bias(false));
    auto x = torch::randn({2, c.in, c.side, c.side + 1}).requires_grad_(c.input_grad);
    auto x_ref = x.detach().clone().requires_grad_(c.input_grad);
    auto w_ref = conv->weight.detach().clone().requires_grad_(true);
    auto y = conv2d(*conv, x);
    auto y_ref = at::conv2d(x_ref, w_ref, {}, c.stride, c.padding);
    ASSERT_EQ(y.sizes(), y_ref.sizes());
    EXPECT_TRUE(torch::allclose(y, y_ref, 1e-4, 1e-5)) << (y - y_ref).abs().max();
    auto g = torch::randn(y.sizes());
    y.backward(g);
    y_ref.backward(g);
    EXPECT_TRUE(torch::allclose(conv->weight.grad(), w_ref.grad(), 1e-4, 1e-4))
        << (conv->weight.grad() - w_ref.grad()).abs().max();
    if (c.input_grad) {
      EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 1e-4, 1e-5))
          << (x.grad() - x_ref.grad()).abs().max();
    }
  }
  // A mismatched input gets ATen's error, which names the channels.
  torch::nn::Conv2d three(torch::nn::Conv2dOptions(3, 4, 3).padding(1).bias(false));
  EXPECT_THROW(
      {
        try {
          conv2d(*three, torch::randn({1, 1, 8, 8}));
        } catch (const c10::Error& e) {
          EXPECT_NE(std::string(e.what()).find("channels"), std::string::npos) << e.what();
          throw;
        }
      },
      c10::Error);
  // Without gradients it is the module's own forward.
  torch::NoGradGuard no_grad;
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(4, 4, 3).padding(1).bias(false));
  auto x = torch::randn({1, 4, 5, 5});
  EXPECT_TRUE(torch::equal(conv2d(*conv, x), conv->forward(x)));
}

// Under bf16 autocast, from a bf16 or an fp32 input: a bf16 output, an input gradient of the
// input's type and an fp32 weight gradient, all close to fp32's results on the same bf16-rounded
// operands. On CPUs with native bf16 this is the direct oneDNN path, elsewhere ATen's.
TEST(Kernels, OneDnnConvolutionInBf16FollowsFp32) {
#ifndef ARCFACE_WITH_ONEDNN
  GTEST_SKIP() << "built without oneDNN: convolutions are ATen's";
#endif
  torch::manual_seed(6);
  // Largest difference as a fraction of the largest value: bf16 outputs are rounded once (a
  // step is 1/128); the direct path sums the fp32 weight gradient from the same bf16 operands,
  // ATen rounds it to bf16.
  auto error = [](const at::Tensor& a, const at::Tensor& ref) {
    return ((a.to(torch::kFloat32) - ref).abs().max() / ref.abs().max()).item<double>();
  };
  const double weight_tolerance = cpu_has_native_bf16() ? 1e-5 : 1.0 / 128;
  for (auto type : {torch::kBFloat16, torch::kFloat32}) {
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(16, 32, 3).stride(2).padding(1).bias(false));
    auto x = torch::randn({2, 16, 9, 10}).to(torch::kBFloat16).to(type).requires_grad_(true);
    at::Tensor y;
    {
      AutocastGuard autocast(Precision::Bf16, torch::kCPU);
      y = conv2d(*conv, x);
    }
    ASSERT_EQ(y.scalar_type(), torch::kBFloat16);
    const std::string node = y.grad_fn()->name();
    EXPECT_EQ(node.find("ConvFunction") != std::string::npos, cpu_has_native_bf16()) << node;
    auto x_ref = x.detach().to(torch::kFloat32).requires_grad_(true);
    auto w_ref =
        conv->weight.detach().to(torch::kBFloat16).to(torch::kFloat32).requires_grad_(true);
    auto y_ref = at::conv2d(x_ref, w_ref, {}, 2, 1);
    EXPECT_LT(error(y, y_ref), 1.0 / 128);
    auto g = torch::randn(y.sizes()).to(torch::kBFloat16);
    y.backward(g);
    y_ref.backward(g.to(torch::kFloat32));
    ASSERT_EQ(conv->weight.grad().scalar_type(), torch::kFloat32);
    ASSERT_EQ(x.grad().scalar_type(), type);
    EXPECT_LT(error(conv->weight.grad(), w_ref.grad()), weight_tolerance);
    EXPECT_LT(error(x.grad(), x_ref.grad()), 1.0 / 128);
  }
}

TEST(Kernels, MaxPool2x2MatchesATen) {
  torch::manual_seed(3);
  for (std::vector<int64_t> shape : {std::vector<int64_t>{2, 4, 8, 18}, {1, 3, 6, 6}}) {
    auto x = torch::randn(shape).requires_grad_(true);
    auto x_ref = x.detach().clone().requires_grad_(true);
    auto y = fused_max_pool_2x2(x);
    auto y_ref = at::max_pool2d(x_ref, {2, 2}, {2, 2});
    EXPECT_TRUE(torch::equal(y, y_ref));
    auto g = torch::randn(y.sizes());
    y.backward(g);
    y_ref.backward(g);
    EXPECT_TRUE(torch::equal(x.grad(), x_ref.grad()));
  }
  // bf16: the same maxima and the same gradient, in bf16.
  auto x = torch::randn({2, 4, 8, 18}).to(torch::kBFloat16).requires_grad_(true);
  auto x_ref = x.detach().clone().requires_grad_(true);
  auto y = fused_max_pool_2x2(x);
  auto y_ref = at::max_pool2d(x_ref, {2, 2}, {2, 2});
  ASSERT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(y, y_ref));
  auto g = torch::randn(y.sizes()).to(torch::kBFloat16);
  y.backward(g);
  y_ref.backward(g);
  EXPECT_TRUE(torch::equal(x.grad(), x_ref.grad()));
  // Ties: the gradient goes to one input per window, as in ATen.
  auto ties = torch::ones({1, 1, 2, 2}).requires_grad_(true);
  fused_max_pool_2x2(ties).sum().backward();
  EXPECT_EQ(ties.grad().sum().item<float>(), 1.0f);
  EXPECT_EQ(ties.grad()[0][0][0][0].item<float>(), 1.0f);
  // Odd sizes take ATen's path.
  EXPECT_EQ(fused_max_pool_2x2(torch::randn({1, 1, 5, 4})).sizes(),
            (std::vector<int64_t>{1, 1, 2, 2}));
}

}  // namespace
}  // namespace arcface
