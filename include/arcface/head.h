#pragma once

#include <string>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "arcface/names.h"

namespace arcface {

struct MarginHeadOptions {
  MarginHeadOptions(int64_t embedding_dim, int64_t num_classes)
      : embedding_dim_(embedding_dim), num_classes_(num_classes) {}
  TORCH_ARG(int64_t, embedding_dim);
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(MarginType, type) = MarginType::Arc;
  TORCH_ARG(double, scale) = 30.0;
  /// < 0: the type's default (ArcFace 0.5, CosFace 0.4).
  TORCH_ARG(double, margin) = -1;
  /// ArcFace only: apply the margin only where cos(theta) > 0.
  TORCH_ARG(bool, easy_margin) = false;
};

/// The classification head used in training: class logits from embeddings, with the margin
/// applied to each sample's own class. Its weight rows are class centres; for Arc and Cos
/// both embeddings and centres are L2-normalised first.
class MarginHeadImpl : public torch::nn::Module {
 public:
  explicit MarginHeadImpl(MarginHeadOptions options);
  /// Logits [N, num_classes] for embeddings [N, D] and labels [N] (int64).
  torch::Tensor forward(const torch::Tensor& embeddings, const torch::Tensor& labels);
  /// Logits without the margin (what the network "predicts"), scaled like forward's.
  torch::Tensor logits(const torch::Tensor& embeddings);
  const MarginHeadOptions& options() const { return options_; }

  torch::Tensor weight, bias;

 private:
  MarginHeadOptions options_;
};
TORCH_MODULE(MarginHead);

}  // namespace arcface
