#include "arcface/optim.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "arcface/names.h"
#include "util/torch_compat.h"

namespace arcface {

namespace {
compat::OptimizerStateKey key_of(const at::Tensor& p) { return compat::optimizer_state_key(p); }
}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<at::Tensor> parameters,
                                                        const OptimizerOptions& o) {
  if (parse_name<OptimizerType>(o.type) == OptimizerType::Adam) {
    return std::make_unique<torch::optim::Adam>(
        parameters, torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(
      parameters, torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

OptimizerState export_optimizer_state(const torch::optim::Optimizer& optimizer) {
  OptimizerState out;
  int64_t index = 0;
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& p : group.params()) {
      auto it = optimizer.state().find(key_of(p));
      if (it != optimizer.state().end()) {
        auto& entry = out[index];
        if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(it->second.get())) {
          entry["momentum_buffer"] = sgd->momentum_buffer().detach().clone();
        } else if (auto* adam = dynamic_cast<torch::optim::AdamParamState*>(it->second.get())) {
          entry["step"] = torch::tensor(static_cast<double>(adam->step()));
          entry["exp_avg"] = adam->exp_avg().detach().clone();
          entry["exp_avg_sq"] = adam->exp_avg_sq().detach().clone();
        }
      }
      ++index;
    }
  }
  return out;
}

void import_optimizer_state(torch::optim::Optimizer& optimizer, const OptimizerState& state) {
  std::vector<at::Tensor> params;
  for (const auto& group : optimizer.param_groups()) {
    params.insert(params.end(), group.params().begin(), group.params().end());
  }
  const bool is_sgd = dynamic_cast<torch::optim::SGD*>(&optimizer) != nullptr;
  auto tensor = [&](const std::map<std::string, at::Tensor>& entry, const std::string& name,
                    int64_t index, const at::Tensor& like) {
    auto it = entry.find(name);
    if (it == entry.end()) {
      throw Error(fmt::format("optimizer state of parameter {} has no '{}'", index, name));
    }
    if (like.defined() && it->second.sizes() != like.sizes()) {
      throw Error(fmt::format("optimizer state '{}' of parameter {} has shape {}, parameter has {}",
                              name, index, c10::str(it->second.sizes()), c10::str(like.sizes())));
    }
    return it->second.to(like.defined() ? like.device() : it->second.device()).clone();
  };
  optimizer.state().clear();
  for (const auto& [index, entry] : state) {
    if (index < 0 || index >= static_cast<int64_t>(params.size())) {
      throw Error(fmt::format("optimizer state names parameter {}, the model has {}", index,
                              params.size()));
    }
    const auto& p = params[index];
    if (is_sgd) {
      auto s = std::make_unique<torch::optim::SGDParamState>();
      s->momentum_buffer(tensor(entry, "momentum_buffer", index, p));
      optimizer.state()[key_of(p)] = std::move(s);
    } else {
      auto s = std::make_unique<torch::optim::AdamParamState>();
      s->step(static_cast<int64_t>(tensor(entry, "step", index, at::Tensor()).item<double>()));
      s->exp_avg(tensor(entry, "exp_avg", index, p));
      s->exp_avg_sq(tensor(entry, "exp_avg_sq", index, p));
      optimizer.state()[key_of(p)] = std::move(s);
    }
  }
}

void LrSchedule::check() const {
  const auto kind = parse_name<LrScheduleType>(type);
  if (kind == LrScheduleType::MultiStep && milestones.empty()) {
    throw Error("training.lr_schedule multistep needs training.lr_milestones");
  }
  if (warmup_epochs >= total_epochs) {
    throw Error(fmt::format("training.warmup_epochs {} must be below training.max_epoch {}",
                            warmup_epochs, total_epochs));
  }
}

double LrSchedule::at(int64_t epoch, int64_t batch, int64_t batches) const {
  const double progress = epoch + static_cast<double>(batch + 1) / std::max<int64_t>(1, batches);
  double lr = base_lr;
  const auto kind = parse_name<LrScheduleType>(type);
  if (kind == LrScheduleType::Step) {
    lr = base_lr * std::pow(decay, static_cast<double>(epoch / step));
  } else if (kind == LrScheduleType::MultiStep) {
    int64_t passed = 0;
    for (auto m : milestones) passed += epoch >= m;
    lr = base_lr * std::pow(decay, static_cast<double>(passed));
  } else {
    const double t = std::max(0.0, progress - warmup_epochs);
    const double span = std::max(1e-9, total_epochs - warmup_epochs);
    lr = min_lr + (base_lr - min_lr) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, t / span)));
  }
  if (warmup_epochs > 0 && progress < warmup_epochs) lr *= progress / warmup_epochs;
  return lr;
}

}  // namespace arcface
