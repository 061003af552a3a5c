#pragma once

// Fused CPU kernels for the element-wise layers of face backbones (private to the library), on
// fp32 or bf16 activations with fp32 parameters. Each falls back to ATen for inputs it does not
// handle (other devices, dtypes or shapes).
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/pimpl.h>

namespace arcface {

/// PReLU with one weight or one per channel (dim 1): one pass forward, one pass backward.
at::Tensor fused_prelu(const at::Tensor& x, const at::Tensor& weight);

/// 2x2 max-pooling with stride 2 on [N, C, H, W], H and W even. NaNs are not propagated.
at::Tensor fused_max_pool_2x2(const at::Tensor& x);

/// prelu(bn(x)) (bn(x) without a slope) for a BatchNorm2d: in training mode one fused pass
/// forward and two backward that never store the normalised tensor; running statistics are
/// updated as the module's forward does. Otherwise the module and fused_prelu().
at::Tensor batch_norm_prelu(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
                            const at::Tensor& slope = {});

/// A drop-in for torch::nn::PReLU (same parameter name and initial value) using fused_prelu().
class PReLUImpl : public torch::nn::Module {
 public:
  explicit PReLUImpl(int64_t num_parameters = 1);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
};
TORCH_MODULE(PReLU);

}  // namespace arcface
