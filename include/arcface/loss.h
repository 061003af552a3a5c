#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <torch/arg.h>

#include "arcface/names.h"

namespace arcface {

struct LossOptions {
  TORCH_ARG(LossType, type) = LossType::CrossEntropy;
  TORCH_ARG(double, gamma) = 2.0;
};

/// The classification loss of logits [N, C] against labels [N], averaged over the batch.
/// Seed 000's FocalLoss applies (1 - p)^gamma to the batch-mean cross-entropy; we weigh each
/// sample by its own p, as the focal loss paper defines it.
at::Tensor classification_loss(const at::Tensor& logits, const at::Tensor& labels,
                               const LossOptions& options);

/// The same loss per example [N], before the batch mean.
at::Tensor example_losses(const at::Tensor& logits, const at::Tensor& labels,
                          const LossOptions& options);

}  // namespace arcface
