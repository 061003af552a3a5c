#pragma once

#include <cstdint>
#include <memory>

#include <torch/optim/optimizer.h>

#include "arcface/backbone.h"
#include "arcface/head.h"
#include "arcface/loss.h"
#include "arcface/optim.h"

namespace arcface {

/// A backbone, its margin head, the loss and the optimizer: one optimisation step of
/// margin-loss training. The trainer drives it over epochs; the benchmarks time it alone.
class Learner {
 public:
  Learner(Backbone backbone, MarginHead head, LossOptions loss, const OptimizerOptions& optimizer,
          c10::Device device);

  struct Step {
    double loss = 0;      // batch mean
    int64_t correct = 0;  // arg-max of the margin logits equal to the label (seed 000's accuracy)
  };
  /// Forward, loss, backward and update on one batch at learning rate `lr`. `seed` seeds the
  /// random draws of the step (dropout), so a step can be replayed exactly.
  Step step(const at::Tensor& images, const at::Tensor& labels, double lr, uint64_t seed);

  Backbone& backbone() { return backbone_; }
  MarginHead& head() { return head_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const std::string& optimizer_type() const { return optimizer_type_; }
  c10::Device device() const { return device_; }
  void train(bool on = true);

 private:
  Backbone backbone_;
  MarginHead head_;
  LossOptions loss_;
  std::string optimizer_type_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  c10::Device device_;
};

}  // namespace arcface
