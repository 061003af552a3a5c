#include <torch/torch.h>

#include "models/kernels.h"
#include "models/onednn_conv.h"
#include "test_util.h"

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
  // In evaluation mode it is the module followed by PReLU.
  bn->eval();
  bn_ref->eval();
  auto x = torch::randn(shape);
  auto y_ref = bn_ref->forward(x);
  if (slopes) y_ref = at::prelu(y_ref, slope_ref);
  EXPECT_TRUE(torch::allclose(batch_norm_prelu(*bn, x, slopes ? slope : at::Tensor()), y_ref));
}

TEST(Kernels, BatchNormPReLUPerChannel) { check_batch_norm(6, 0.1); }
TEST(Kernels, BatchNormPReLUShared) { check_batch_norm(1, 0.1); }
TEST(Kernels, BatchNormAloneCumulativeAverage) { check_batch_norm(0, c10::nullopt); }

TEST(Kernels, BatchNormOfOtherChannelsIsTheModulesError) {
  torch::nn::BatchNorm2d bn(6);
  EXPECT_THROW(batch_norm_prelu(*bn, torch::randn({2, 4, 3, 3})), c10::Error);
}

// The direct oneDNN training convolution against ATen's: output and both gradients, for
// 3x3 and 1x1 convolutions at strides 1 and 2, and for an input that needs no gradient.
TEST(Kernels, OneDnnConvolutionMatchesATen) {
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
