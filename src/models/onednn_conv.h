#pragma once

// A training convolution on oneDNN directly (private to the library).
#include <torch/nn/modules/conv.h>

namespace arcface {

/// conv(x), with the forward and both gradients on oneDNN when training a plain CPU fp32
/// convolution (no groups, bias or dilation), or one under bf16 autocast on a CPU with native
/// bf16 (a bf16 output, the weight gradient in fp32): the input stays in oneDNN's blocked layout
/// for the weight gradient and the output gradient is converted once for both gradients, where
/// ATen converts every operand again for each of its three calls. Otherwise conv.forward(x).
at::Tensor conv2d(torch::nn::Conv2dImpl& conv, const at::Tensor& x);

}  // namespace arcface
