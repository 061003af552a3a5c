#pragma once

// Shared by the benchmarks: the machine's peak in a precision, measured in the same run.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "arcface/names.h"

#ifdef ARCFACE_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace arcface::bench {

/// The best large matrix product the CPU does in one precision, and which library did it. A
/// fraction of peak above 1 would mean the yardstick is wrong: OpenBLAS (kept on AVX2 kernels
/// by OPENBLAS_CORETYPE on some machines) falls short of oneDNN's AVX-512 GEMM, and only a
/// bf16 GEMM measures what bf16 training can reach.
struct Peak {
  double gflops = 0;
  std::string source;
};

template <class F>
double best_gflops(int64_t n, F&& run) {
  run();
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

#ifdef ARCFACE_WITH_ONEDNN
/// oneDNN's matmul primitive, [n, n] x [n, n] -> fp32, inputs in `type`, weights in the
/// layout oneDNN prefers (as a convolution's would be).
inline double onednn_gflops(int64_t n, dnnl::memory::data_type type) {
  using namespace dnnl;
  engine cpu(engine::kind::cpu, 0);
  stream s(cpu);
  const memory::dims dims{n, n};
  const memory::desc a_md(dims, type, memory::format_tag::ab);
  const memory::desc b_md(dims, type, memory::format_tag::any);
  const memory::desc c_md(dims, memory::data_type::f32, memory::format_tag::ab);
  const matmul::primitive_desc pd(matmul::desc(a_md, b_md, c_md), cpu);
  memory a(pd.src_desc(), cpu), b(pd.weights_desc(), cpu), c(pd.dst_desc(), cpu);
  // Any finite values: bf16 0x3C00 and fp32 0x3C003C00 are small normal numbers.
  std::fill_n(static_cast<uint16_t*>(a.get_data_handle()), a.get_desc().get_size() / 2, 0x3C00);
  std::fill_n(static_cast<uint16_t*>(b.get_data_handle()), b.get_desc().get_size() / 2, 0x3C00);
  matmul product(pd);
  return best_gflops(n, [&] {
    product.execute(s, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    s.wait();
  });
}

#endif

/// GFLOP/s of torch::mm on [n, n] tensors of `type` on `device` (CPU fp32: the system BLAS). On
/// a GPU each product is waited for (reading one value back), so the time is the work's.
inline double torch_mm_gflops(int64_t n, at::ScalarType type, c10::Device device = c10::kCPU) {
  auto a = torch::randn({n, n}).to(device, type), b = torch::randn({n, n}).to(device, type);
  return best_gflops(n, [&] {
    auto c = torch::mm(a, b);
    if (device.is_cuda()) c[0][0].item<double>();
  });
}

/// The peak for work in `precision` (resolved): on the CPU the best of OpenBLAS and oneDNN at
/// 2048 and 4096, on a GPU cuBLAS at 4096 and 8192.
inline Peak measure_peak(Precision precision, c10::Device device = c10::kCPU) {
  Peak peak;
  auto consider = [&](double gflops, const std::string& source) {
    if (gflops > peak.gflops) peak = {gflops, source};
  };
  const bool bf16 = precision == Precision::Bf16;
  if (device.is_cuda()) {
    const auto type = bf16                           ? torch::kBFloat16
                      : precision == Precision::Fp16 ? torch::kHalf
                                                     : torch::kFloat32;
    for (int64_t n : {4096, 8192}) {
      consider(torch_mm_gflops(n, type, device),
               "cuBLAS " + to_string(precision) + " " + std::to_string(n));
    }
    return peak;
  }
  for (int64_t n : {2048, 4096}) {
    const std::string size = std::to_string(n);
    if (bf16) {
      consider(torch_mm_gflops(n, torch::kBFloat16), "torch::mm bf16 " + size);
#ifdef ARCFACE_WITH_ONEDNN
      consider(onednn_gflops(n, dnnl::memory::data_type::bf16), "oneDNN bf16 matmul " + size);
#endif
    } else {
      consider(torch_mm_gflops(n, torch::kFloat32), "OpenBLAS sgemm (torch::mm) " + size);
#ifdef ARCFACE_WITH_ONEDNN
      consider(onednn_gflops(n, dnnl::memory::data_type::f32), "oneDNN f32 matmul " + size);
#endif
    }
  }
  return peak;
}

}  // namespace arcface::bench
