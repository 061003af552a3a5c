#pragma once

// Mixed precision for one forward pass (private to the library): convolutions and matrix
// products in bf16 or fp16 while the guard lives, as torch.autocast(dtype=...) does.
#include <ATen/autocast_mode.h>
#include <c10/core/Device.h>

#include "arcface/system.h"
#include "util/torch_compat.h"

namespace arcface {

class AutocastGuard {
 public:
  /// `precision` is resolved (not Auto); Fp32 leaves everything as it is.
  AutocastGuard(Precision precision, c10::Device device)
      : on_(precision == Precision::Bf16 || precision == Precision::Fp16), type_(device.type()) {
    if (!on_) return;
    was_enabled_ = compat::autocast_enabled(type_);
    was_dtype_ = compat::autocast_dtype(type_);
    compat::set_autocast_dtype(type_, precision == Precision::Fp16 ? at::kHalf : at::kBFloat16);
    compat::set_autocast_enabled(type_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!on_) return;
    // Leaving the outermost region drops the cached bf16 copies of the weights.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    compat::set_autocast_enabled(type_, was_enabled_);
    compat::set_autocast_dtype(type_, was_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_;
  c10::DeviceType type_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

}  // namespace arcface
