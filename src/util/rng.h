#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace arcface {

/// Combines seeds into a well-mixed 64-bit value (splitmix64), so per-epoch and per-sample
/// streams are independent and reproducible whatever the thread schedule.
uint64_t mix_seed(uint64_t a, uint64_t b);

/// A seeded generator whose draws are the same with any standard library: the distributions
/// of <random> are implementation-defined, so we reduce mt19937_64 output ourselves.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t next() { return engine_(); }
  /// Uniform in [0, n).
  size_t below(size_t n) { return static_cast<size_t>(engine_() % n); }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace arcface
