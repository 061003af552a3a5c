#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "arcface/config.h"
#include "arcface/distributed.h"

namespace arcface {

namespace fs = std::filesystem;

struct TrainOptions {
  fs::path resume;       // a checkpoint to continue from, exactly where it stopped
  bool progress = true;  // draw a progress bar on stderr
  /// Stop after this many optimizer steps in this run (0: no limit), saving a resumable
  /// checkpoint as an interruption does: for benchmarks and short trials.
  int64_t max_steps = 0;
  /// Data-parallel training: this process is one rank of `world_size`. Each rank reads its
  /// share of every global batch; only rank 0 writes the run directory.
  DistributedOptions distributed;
};

struct TrainResult {
  int64_t epochs_done = 0;
  bool interrupted = false;     // stopped early (a stop request or max_steps); last.pt resumes it
  bool stop_requested = false;  // by request_training_stop() (a signal), not by max_steps
  fs::path last_checkpoint, best_checkpoint;
  double best_metric = 0;
  std::string best_metric_name;
  nlohmann::json history = nlohmann::json::array();
};

/// Trains a backbone and margin head as the config says (as one rank of several when
/// `options.distributed` says so). In `paths.checkpoints_path` it
/// writes training_config.json, training.log, history.json, last.pt (every epoch), best.pt,
/// epoch_NNN.pt (every save_interval epochs) and, with validation, best_lfw.json.
/// A non-finite loss stops training with an Error and keeps the last good checkpoint.
TrainResult train(const TrainConfig& config, const TrainOptions& options = {});

/// Asks a running train() to save a resumable checkpoint and return at the next batch;
/// safe to call from a signal handler.
void request_training_stop();

}  // namespace arcface
