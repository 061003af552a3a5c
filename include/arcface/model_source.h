#pragma once

// How to load a model: the file, the device, the precision and, for models that do not
// describe themselves, their input. The command line, galleries and the Python module all
// describe a model this way.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arcface/embedder.h"

namespace arcface {

namespace fs = std::filesystem;

struct ModelSource {
  fs::path model;  // a checkpoint of ours, a PyTorch checkpoint or state dict, or .onnx
  std::string device = "cpu";
  Precision precision = Precision::Auto;
  int threads = 0;  // compute threads, 0: one per core
  /// The input of ONNX models and Python weights, and the network of a plain state dict (our
  /// checkpoints carry their own).
  ForeignModel foreign;

  /// Sets the compute threads and loads the model in its precision. A mean or std outside
  /// 0..1 is refused (check_normalisation).
  Embedder load() const;
  /// What a gallery keeps to load the model again (the command line's option names:
  /// backbone, input_size, resize, color, mean, std).
  nlohmann::json load_args() const;
  /// Takes `load_args()` back; mean and std may be numbers, lists or "r,g,b" text.
  void take_load_args(const nlohmann::json& args);
};

/// "0.5" or "0.485,0.456,0.406": one value for every channel or one per channel. Errors name
/// `name` and the item that is not a number.
std::vector<double> parse_channel_values(const std::string& text, const std::string& name);

}  // namespace arcface
