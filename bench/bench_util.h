#pragma once

// Shared by the benchmarks: the machine's practical fp32 peak, measured in the same run.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>

namespace arcface::bench {

/// GFLOP/s of a large fp32 matrix product (2048 x 2048), best of five.
inline double gemm_peak_gflops() {
  const int64_t n = 2048;
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::mm(a, b);
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto c = torch::mm(a, b);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

}  // namespace arcface::bench
