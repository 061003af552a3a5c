#pragma once

// Mixed precision for one forward pass (private to the library): convolutions and matrix
// products in bf16 while the guard lives, as torch.autocast(dtype=torch.bfloat16) does.
#include <ATen/autocast_mode.h>
#include <c10/core/Device.h>

#include "arcface/system.h"

namespace arcface {

class AutocastGuard {
 public:
  /// `precision` is resolved (Fp32 or Bf16); Fp32 leaves everything as it is.
  AutocastGuard(Precision precision, c10::Device device)
      : on_(precision == Precision::Bf16), cuda_(device.is_cuda()) {
    if (!on_) return;
    if (cuda_) {
      was_enabled_ = at::autocast::is_enabled();
      was_dtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      was_enabled_ = at::autocast::is_cpu_enabled();
      was_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!on_) return;
    // Leaving the outermost region drops the cached bf16 copies of the weights.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    if (cuda_) {
      at::autocast::set_enabled(was_enabled_);
      at::autocast::set_autocast_gpu_dtype(was_dtype_);
    } else {
      at::autocast::set_cpu_enabled(was_enabled_);
      at::autocast::set_autocast_cpu_dtype(was_dtype_);
    }
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_, cuda_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

}  // namespace arcface
