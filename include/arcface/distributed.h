#pragma once

// Data-parallel training over PyTorch's c10d runtime: a TCPStore rendezvous at rank 0 and the
// Gloo backend for the collectives (NCCL would take its place on CUDA builds).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace arcface {

struct DistributedOptions {
  int world_size = 1;
  int rank = 0;
  std::string master = "127.0.0.1:29500";  // host:port of the rendezvous store run by rank 0
  /// How long a rank waits for the others: at the rendezvous and in every collective.
  std::chrono::seconds timeout{1800};

  bool enabled() const { return world_size > 1; }
  /// RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, as torchrun sets them; unset ones keep
  /// the defaults above.
  static DistributedOptions from_env();
  /// Checks the ranks and the master address; errors name the bad value.
  void check() const;
};

/// The ranks of one training run. Gradients are averaged across them in buckets of about
/// `bucket_bytes`; each bucket's all-reduce starts as soon as backward has produced all its
/// gradients, so communication overlaps the rest of backward (as PyTorch's DDP does).
class DataParallel {
 public:
  explicit DataParallel(const DistributedOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }

  /// Copies rank 0's parameters and buffers into every rank's module.
  void broadcast(torch::nn::Module& module);
  /// Averages the gradients of these parameters across the ranks from the next backward on.
  void attach(const std::vector<at::Tensor>& parameters, int64_t bucket_bytes = 25 << 20);
  /// After backward: waits for every bucket and writes the averages into the gradients.
  void finish_gradients();
  /// Element-wise sum across the ranks (loss, counts, a stop request).
  std::vector<double> sum(const std::vector<double>& values);

  /// Time this rank spent waiting for gradient all-reduces to finish.
  double wait_seconds() const { return wait_seconds_; }

 private:
  struct Impl;
  void launch(size_t bucket);
  /// Runs a collective, turning c10d's failure into an Error naming this rank and `what`.
  template <class F>
  auto collective(const char* what, F&& f);

  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
  double wait_seconds_ = 0;
};

}  // namespace arcface
