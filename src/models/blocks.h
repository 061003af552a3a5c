#pragma once

// Building blocks shared by the backbone architectures (private to the library).
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include "arcface/backbone.h"
#include "models/kernels.h"
#include "models/onednn_conv.h"

namespace arcface {

inline torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

inline torch::nn::Conv2d conv1x1(int64_t in, int64_t out, int64_t stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

/// The per-channel scale and shift an eval-mode BatchNorm applies: y = x * scale + shift.
template <class BatchNorm>
std::pair<at::Tensor, at::Tensor> batchnorm_affine(const BatchNorm& bn) {
  auto scale = bn->weight / torch::sqrt(bn->running_var + bn->options.eps());
  return {scale.detach(), (bn->bias - bn->running_mean * scale).detach()};
}

/// conv then y * scale + shift, as one convolution with a bias.
torch::nn::Conv2d folded_conv(const torch::nn::Conv2d& conv, const at::Tensor& scale,
                              const at::Tensor& shift);
/// Replaces `parent`'s child `name` (held in `conv`) by its folded_conv().
void fold_into_conv(torch::nn::Module& parent, const std::string& name, torch::nn::Conv2d& conv,
                    const at::Tensor& scale, const at::Tensor& shift);

/// A fully connected layer fed by a per-channel affine of its flattened [C, H, W] input and
/// followed by a per-feature affine, as one fully connected layer.
void fold_into_linear(torch::nn::Linear& fc, const std::pair<at::Tensor, at::Tensor>& input_affine,
                      const std::pair<at::Tensor, at::Tensor>& output_affine);

/// A Sequential(conv, BatchNorm2d) downsample path as Sequential(conv with bias).
torch::nn::Sequential fold_downsample(const torch::nn::Sequential& downsample);

/// Seed 000's initialisation: Xavier-normal convolutions and linear layers, BN at (1, 0).
void init_xavier(torch::nn::Module& module);

Backbone make_resnet_face(const BackboneOptions& options, int depth);
Backbone make_iresnet(const BackboneOptions& options, int depth);
Backbone make_mobilefacenet(const BackboneOptions& options);
Backbone make_inception_resnet_v1(const BackboneOptions& options);

}  // namespace arcface
