#include "arcface/loss.h"

#include <torch/torch.h>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

at::Tensor example_losses(const at::Tensor& logits, const at::Tensor& labels,
                          const LossOptions& options) {
  auto log_p = torch::log_softmax(logits, 1).gather(1, labels.view({-1, 1})).squeeze(1);
  if (options.type() == LossType::CrossEntropy || options.gamma() == 0) return -log_p;
  auto weight = (1.0 - log_p.exp()).pow(options.gamma());
  return -(weight * log_p);
}

at::Tensor classification_loss(const at::Tensor& logits, const at::Tensor& labels,
                               const LossOptions& options) {
  return example_losses(logits, labels, options).mean();
}

}  // namespace arcface
