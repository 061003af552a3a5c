#pragma once

// The options every command that runs a model shares: the model file, the device, and for
// ONNX models a description of their input.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "arcface/embedder.h"
#include "arcface/system.h"

namespace arcface::cli {

struct ModelArgs {
  std::string model, device = "cpu", color = "rgb";
  int64_t input_size = 112, resize = 0;
  std::vector<double> mean{0.5}, std{0.5};
  int threads = 0;

  void add_to(CLI::App* cmd) {
    cmd->add_option("--model", model, "a checkpoint of ours (.pt) or an ONNX model (.onnx)")
        ->required();
    cmd->add_option("--device", device, "cpu or cuda")->capture_default_str();
    cmd->add_option("--threads", threads, "compute threads (0: one per core)")
        ->capture_default_str();
    auto* onnx = "ONNX input (checkpoints carry their own)";
    cmd->add_option("--input-size", input_size, onnx)->capture_default_str()->group("ONNX");
    cmd->add_option("--resize", resize,
                    "resize to this, then centre-crop --input-size (0: no crop)")
        ->capture_default_str()
        ->group("ONNX");
    cmd->add_option("--color", color, "rgb, bgr or gray")->capture_default_str()->group("ONNX");
    cmd->add_option("--mean", mean, "per-channel mean on 0..1 pixels")
        ->capture_default_str()
        ->group("ONNX");
    cmd->add_option("--std", std, "per-channel std on 0..1 pixels")
        ->capture_default_str()
        ->group("ONNX");
  }

  Embedder load() const {
    configure_threads(threads);
    Preprocess onnx;
    onnx.input_size = input_size;
    onnx.resize = resize;
    onnx.color = parse_color(color);
    onnx.mean = mean;
    onnx.std = std;
    return Embedder::load(model, device, onnx);
  }
};

}  // namespace arcface::cli
