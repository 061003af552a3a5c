#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "arcface/checkpoint.h"

namespace arcface {

struct OptimizerOptions {
  std::string type = "sgd";  // sgd (momentum) or adam
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<at::Tensor> parameters,
                                                        const OptimizerOptions& options);

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

OptimizerState export_optimizer_state(const torch::optim::Optimizer& optimizer);
/// Restores exported state; throws when it does not fit the optimizer's parameters.
void import_optimizer_state(torch::optim::Optimizer& optimizer, const OptimizerState& state);

/// The learning rate as a function of training progress, so resuming needs only the position.
struct LrSchedule {
  std::string type = "step";  // step, multistep or cosine
  double base_lr = 0.1;
  int64_t step = 10;                // step: decay every `step` epochs
  std::vector<int64_t> milestones;  // multistep: decay at these (0-based) epochs
  double decay = 0.1;
  double min_lr = 0;         // cosine floor
  double warmup_epochs = 0;  // linear ramp from zero over this many epochs
  int64_t total_epochs = 1;

  /// The learning rate for batch `batch` of `batches` in (0-based) `epoch`.
  double at(int64_t epoch, int64_t batch, int64_t batches) const;
  /// Throws for an unknown type or bad values.
  void check() const;
};

}  // namespace arcface
