#include <torch/torch.h>

#include "models/kernels.h"
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
