#include "arcface/system.h"

#include <dlfcn.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

int configure_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return at::get_num_threads();
}

namespace {

std::string cpuinfo_field(const std::string& name) {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "";
}

// jemalloc's control function, or null under glibc (jemalloc exports mallctl; glibc does not).
using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
Mallctl mallctl_function() {
  static const auto f = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
  return f;
}

bool jemalloc_active() { return mallctl_function() != nullptr; }

}  // namespace

SystemInfo system_info() {
  SystemInfo info;
  info.cpu_model = cpuinfo_field("model name");
  std::istringstream flags(cpuinfo_field("flags"));
  std::set<std::string> wanted{"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"};
  std::string list;
  for (std::string f; flags >> f;) {
    if (wanted.count(f)) list += (list.empty() ? "" : " ") + f;
  }
  info.cpu_flags = list;
  std::error_code ec;
  auto blas = std::filesystem::canonical("/etc/alternatives/libblas.so.3-x86_64-linux-gnu", ec);
  info.blas = ec ? "unknown" : blas.string();
  info.allocator = jemalloc_active() ? "jemalloc" : "glibc malloc";
  info.threads = at::get_num_threads();
  return info;
}

bool cpu_has_native_bf16() {
  const std::string flags = " " + cpuinfo_field("flags") + " ";
  return flags.find(" avx512_bf16 ") != std::string::npos ||
         flags.find(" amx_bf16 ") != std::string::npos;
}

bool cuda_has_native_bf16() {
  // The check libtorch itself makes before it sends a bf16 convolution to cuDNN.
  return at::detail::getCUDAHooks().hasCUDA() &&
         at::detail::getCUDAHooks().supportsBFloat16ConvolutionWithCuDNNv8();
}

Precision resolve_precision(Precision precision, bool cuda) {
  if (precision == Precision::Fp16 && !cuda) {
    throw Error(
        "precision fp16 needs a CUDA device: on the CPU use bf16 (native on CPUs with "
        "avx512_bf16 or AMX) or fp32");
  }
  if (precision != Precision::Auto) return precision;
  if (cuda) return cuda_has_native_bf16() ? Precision::Bf16 : Precision::Fp16;
  return cpu_has_native_bf16() ? Precision::Bf16 : Precision::Fp32;
}

double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

bool release_free_memory() {
  // jemalloc's "arena.<MALLCTL_ARENAS_ALL>.purge".
  const auto mallctl = mallctl_function();
  return mallctl && mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0) == 0;
}

MemoryGrowthLimit::MemoryGrowthLimit(double limit_mib, int64_t settle_steps,
                                     std::function<double()> rss, std::function<bool()> release)
    : limit_mib_(limit_mib),
      settle_steps_(settle_steps),
      rss_(std::move(rss)),
      release_(std::move(release)) {}

bool MemoryGrowthLimit::after_step() {
  if (++steps_ < settle_steps_) return false;
  const double now = rss_();
  if (steps_ == settle_steps_) {
    baseline_mib_ = now;
    return false;
  }
  if (now < baseline_mib_ + limit_mib_) return false;
  const bool released = release_();
  releases_ += released;
  baseline_mib_ = std::max(baseline_mib_, rss_());
  return released;
}

double peak_rss_mib() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

}  // namespace arcface
