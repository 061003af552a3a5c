#pragma once

#include <cstdint>
#include <functional>
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
/// Resident set size of this process now, in MiB.
double rss_mib();

/// Hands the allocator's free pages back to the system. Our programs set jemalloc to keep
/// freed pages, so that training steps do not page-fault on every tensor; under glibc this
/// does nothing and returns false.
bool release_free_memory();

/// Bounds what kept free pages can cost. With some networks (InceptionResnetV1 in bf16)
/// jemalloc's free extents fragment and a process that keeps them grows by megabytes a step
/// (23 GiB after 1.3 epochs of the grown set). Called after every step: once the process has
/// grown `limit_mib` beyond what it held after `settle_steps` steps, the free pages go back
/// (a step's worth of page faults, then kept again) and what remains becomes the new base, so
/// memory in real use is not purged for again every step. Networks that do not fragment never
/// pay.
class MemoryGrowthLimit {
 public:
  explicit MemoryGrowthLimit(double limit_mib = 1024, int64_t settle_steps = 20,
                             std::function<double()> rss = rss_mib,
                             std::function<bool()> release = release_free_memory);
  /// True when this step released memory.
  bool after_step();
  int64_t releases() const { return releases_; }

 private:
  double limit_mib_;
  int64_t settle_steps_, steps_ = 0, releases_ = 0;
  double baseline_mib_ = 0;
  std::function<double()> rss_;
  std::function<bool()> release_;
};

}  // namespace arcface
