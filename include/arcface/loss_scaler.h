#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

namespace arcface {

/// Dynamic loss scaling for fp16 training, the rule of torch.cuda.amp.GradScaler: fp16's
/// smallest normal number is 6e-5, so small gradients vanish unless the loss is multiplied
/// before backward and the gradients divided after. A scale that overflows a gradient skips
/// that step and halves; `growth_interval` clean steps in a row double it. Powers of two keep
/// the scaling exact: in fp32 a scaled step equals an unscaled one.
struct LossScalerOptions {
  double initial_scale = 65536;  // 2^16
  double growth_factor = 2;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerOptions options = {});

  /// The loss to call backward on.
  at::Tensor scale(const at::Tensor& loss) const { return loss * scale_; }
  /// Divides the gradients of `parameters` by the scale in place. False when any of them is
  /// inf or NaN: the step must then be skipped.
  bool unscale(const std::vector<at::Tensor>& parameters) const;
  /// Called once a step, taken (`finite`) or skipped.
  void update(bool finite);

  double value() const { return scale_; }
  int64_t clean_steps() const { return clean_steps_; }

  /// The state a resumed run continues from (scale and clean steps).
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  LossScalerOptions options_;
  double scale_;
  int64_t clean_steps_ = 0;
};

}  // namespace arcface
