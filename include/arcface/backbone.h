#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/module.h>

#include "arcface/names.h"

namespace arcface {

/// What the factory needs to build an embedding network. The same options are stored in a
/// checkpoint, so evaluation rebuilds exactly the trained network.
struct BackboneOptions {
  explicit BackboneOptions(std::string name) : name_(std::move(name)) {}
  /// resnet_face18/34/50 (seed 000; "resnet18" is accepted), iresnet18/34/50 (insightface;
  /// "ir_resnet18" is accepted), mobilefacenet, or inception_resnet_v1 (facenet-pytorch).
  TORCH_ARG(std::string, name);
  TORCH_ARG(int64_t, input_size) = 112;
  TORCH_ARG(int64_t, channels) = 3;
  TORCH_ARG(int64_t, embedding_dim) = 512;
  TORCH_ARG(bool, use_se) = false;
  /// < 0: the architecture's own default (resnet_face 0.5, others 0).
  TORCH_ARG(double, dropout) = -1;
};

/// An embedding network: images [N, C, H, W] in, embeddings [N, embedding_dim] out (not
/// normalised; the heads and the embedder normalise).
class BackboneImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  const BackboneOptions& options() const { return options_; }
  /// For inference only: merges each BatchNorm that follows a convolution or feeds a fully
  /// connected layer into that layer, using the running statistics. In eval mode the network
  /// computes the same function with fewer passes over memory; it can no longer be trained
  /// and its state dict no longer matches a checkpoint's.
  virtual void fold_batchnorm() {}

 protected:
  explicit BackboneImpl(BackboneOptions options) : options_(std::move(options)) {}
  BackboneOptions options_;
};

using Backbone = std::shared_ptr<BackboneImpl>;

/// The one factory: training, evaluation and export all build networks here. The options it
/// returns in `options()` are resolved (canonical name, concrete dropout).
Backbone make_backbone(const BackboneOptions& options);

/// Multiply-accumulates of one forward pass of one image, counted from the network's
/// convolution and linear layers (FLOPs = 2 x MACs).
double forward_macs(BackboneImpl& backbone);

}  // namespace arcface
