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

namespace arcface {

inline torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}

inline torch::nn::Conv2d conv1x1(int64_t in, int64_t out, int64_t stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

/// Seed 000's initialisation: Xavier-normal convolutions and linear layers, BN at (1, 0).
void init_xavier(torch::nn::Module& module);

Backbone make_resnet_face(const BackboneOptions& options, int depth);
Backbone make_iresnet(const BackboneOptions& options, int depth);
Backbone make_mobilefacenet(const BackboneOptions& options);

}  // namespace arcface
