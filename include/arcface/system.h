#pragma once

#include <string>

#include "arcface/names.h"

namespace arcface {

/// What a benchmark table or a log header says about the machine.
struct SystemInfo {
  std::string cpu_model;
  std::string cpu_flags;  // the flags that matter here: avx2, avx512f, avx512_bf16, amx
  std::string blas;       // the library behind libblas.so.3
  std::string allocator;  // "jemalloc (keeps freed memory)" or "glibc"
  int threads = 1;        // intra-op threads in use
};

/// Sets libtorch's intra-op threads (0 = one per core) and returns the number in use.
/// Debian's libtorch starts with one thread, so every command calls this.
int configure_threads(int threads);

/// Reads /proc/cpuinfo, the active BLAS and the allocator.
SystemInfo system_info();

/// True when the CPU computes bf16 natively (avx512_bf16 or AMX); checked at run time.
bool cpu_has_native_bf16();

/// True when the current CUDA device computes bf16 natively (compute capability 8.0 and up,
/// with cuDNN); false without CUDA.
bool cuda_has_native_bf16();

/// What Auto means here: Bf16 where the CPU or the GPU has native bf16, Fp32 on other CPUs and
/// Fp16 on other GPUs. Fp16 on the CPU is an Error (libtorch's CPU autocast has no fp16).
Precision resolve_precision(Precision precision, bool cuda);

/// Peak resident set size of this process in MiB.
double peak_rss_mib();

}  // namespace arcface
