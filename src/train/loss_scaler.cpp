#include "arcface/loss_scaler.h"

#include <torch/torch.h>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

LossScaler::LossScaler(LossScalerOptions options)
    : options_(options), scale_(options.initial_scale) {
  if (!(options.initial_scale > 0) || !(options.growth_factor >= 1) ||
      !(options.backoff_factor > 0 && options.backoff_factor < 1) || options.growth_interval < 1) {
    throw Error(fmt::format(
        "loss scaling: initial scale {} (> 0), growth {} (>= 1), backoff {} (in (0, 1)) and "
        "growth interval {} (>= 1) out of range",
        options.initial_scale, options.growth_factor, options.backoff_factor,
        options.growth_interval));
  }
}

bool LossScaler::unscale(const std::vector<at::Tensor>& parameters) const {
  torch::NoGradGuard no_grad;
  at::Tensor finite;
  for (const auto& p : parameters) {
    auto g = p.grad();
    if (!g.defined()) continue;
    g.mul_(1.0 / scale_);
    // One flag on the device, read once: no synchronisation per tensor.
    const auto f = torch::isfinite(g).all();
    finite = finite.defined() ? finite.logical_and(f) : f;
  }
  return !finite.defined() || finite.item<bool>();
}

void LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= options_.backoff_factor;
    clean_steps_ = 0;
    return;
  }
  if (++clean_steps_ >= options_.growth_interval) {
    scale_ *= options_.growth_factor;
    clean_steps_ = 0;
  }
}

nlohmann::json LossScaler::state() const {
  return {{"scale", scale_}, {"clean_steps", clean_steps_}};
}

void LossScaler::load_state(const nlohmann::json& state) {
  const double scale = state.value("scale", 0.0);
  const int64_t clean = state.value("clean_steps", int64_t{-1});
  if (!(scale > 0) || clean < 0) {
    throw Error(
        fmt::format("loss scale state {} in a checkpoint: needs scale > 0 and "
                    "clean_steps >= 0",
                    state.dump()));
  }
  scale_ = scale;
  clean_steps_ = clean;
}

}  // namespace arcface
