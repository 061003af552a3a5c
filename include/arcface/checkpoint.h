#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <nlohmann/json.hpp>

#include "arcface/backbone.h"
#include "arcface/head.h"
#include "arcface/image.h"

namespace arcface {

namespace fs = std::filesystem;

/// Tensors by PyTorch name ("layer1.0.conv1.weight"), parameters and buffers alike.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

/// Per-parameter optimizer state, keyed by the parameter's position (as in PyTorch's
/// optimizer.state_dict()["state"]): momentum_buffer for SGD; step, exp_avg, exp_avg_sq for Adam.
using OptimizerState = std::map<int64_t, std::map<std::string, at::Tensor>>;

/// A module's parameters and buffers, detached copies on the CPU.
StateDict state_dict(const torch::nn::Module& module);

/// Copies `state` into `module`, strictly: a missing, unexpected or mis-shaped tensor is an
/// error that lists them all, so a wrong checkpoint never half-loads. `what` names the source.
void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& what);

/// A training checkpoint with the fields of seed 002's dictionary. It is written in
/// torch.save's zip format as a plain dictionary, so Python reads it with torch.load:
/// format, format_version, backbone, backbone_options, preprocess, head, num_classes,
/// backbone_state_dict, head_state_dict, optimizer_state_dict {state, param_groups},
/// scheduler_state_dict, epoch, batch_in_epoch, global_step, config, metrics.
struct Checkpoint {
  static constexpr int64_t kFormatVersion = 1;

  BackboneOptions backbone{"resnet_face18"};
  Preprocess preprocess;
  MarginHeadOptions head{512, 2};
  StateDict backbone_state, head_state;
  std::string optimizer_type;
  OptimizerState optimizer_state;
  nlohmann::json scheduler = nlohmann::json::object();
  int64_t epoch = 0;           // epochs completed
  int64_t batch_in_epoch = 0;  // batches of the next epoch already done (an interrupted epoch)
  int64_t global_step = 0;
  nlohmann::json config = nlohmann::json::object();   // the resolved training config
  nlohmann::json metrics = nlohmann::json::object();  // e.g. the last validation
};

/// Writes atomically (temporary file, then rename): an interrupted save never destroys the
/// previous checkpoint at `path`.
void save_checkpoint(const Checkpoint& checkpoint, const fs::path& path);

/// Reads a checkpoint; a file that is not one, or of another format version, is an error.
Checkpoint load_checkpoint(const fs::path& path);

/// Writes a plain PyTorch state dict (torch.save zip format): Python loads it with
/// `model.load_state_dict(torch.load(path))` into a module of the same architecture.
void save_state_dict(const StateDict& state, const fs::path& path);

/// Writes text atomically (temporary file, then rename).
void write_file_atomic(const fs::path& path, const std::string& text);

/// FNV-1a 64 of a file's bytes, as 16 hex digits: names a model by its content, whatever its
/// path or time stamp.
std::string file_hash(const fs::path& path);

}  // namespace arcface
