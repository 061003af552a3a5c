#pragma once

// The options every command that runs a model shares: the model file, the device, and for
// ONNX models a description of their input.
#include <string>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "arcface/config.h"
#include "arcface/embedder.h"
#include "arcface/error.h"
#include "arcface/evaluate.h"
#include "arcface/model_source.h"
#include "arcface/system.h"

namespace arcface::cli {

/// How a command describes many images: flip, batch, decoding threads and progress.
struct EvalArgs {
  std::string flip;
  int64_t batch_size = 64, workers = 1;
  bool no_progress = false;

  void add_to(CLI::App* cmd, const std::string& default_flip, int64_t default_workers = 1) {
    flip = default_flip;
    workers = default_workers;
    cmd->add_option("--flip", flip, "none, concat (seed 000) or sum (insightface)")
        ->capture_default_str();
    cmd->add_option("--batch-size", batch_size, "images per network batch")->capture_default_str();
    cmd->add_option("--workers", workers, "decoding threads")->capture_default_str();
    cmd->add_flag("--no-progress", no_progress, "no progress bar");
  }

  EvalOptions options() const {
    EvalOptions o;
    o.flip = parse_flip_mode(flip);
    o.batch_size = batch_size;
    o.workers = workers;
    o.progress = !no_progress;
    return o;
  }
};

struct ModelArgs {
  std::string model, device = "cpu", color = "rgb", backbone, precision = "auto";
  int64_t input_size = 112, resize = 0;
  std::string mean = "0.5", std = "0.5";  // one value, or one per channel: 0.485,0.456,0.406
  int threads = 0;

  void add_to(CLI::App* cmd, bool required = true) {
    auto* option = cmd->add_option("--model", model,
                                   "a checkpoint of ours, a PyTorch checkpoint or state dict "
                                   "(.pt/.pth), or an ONNX model (.onnx)");
    if (required) option->required();
    cmd->add_option("--device", device, "cpu, cuda[:N] or auto (CUDA when present)")
        ->capture_default_str();
    cmd->add_option("--threads", threads, "compute threads (0: one per core)")
        ->capture_default_str();
    cmd->add_option("--precision", precision,
                    "auto (bf16 where the CPU or GPU computes it natively), fp32, bf16 or fp16 "
                    "(CUDA)")
        ->capture_default_str();
    auto* onnx = "input of ONNX models and Python weights (our checkpoints carry their own)";
    cmd->add_option("--backbone", backbone, "the network of a plain PyTorch state dict")
        ->group("Foreign models");
    cmd->add_option("--input-size", input_size, onnx)
        ->capture_default_str()
        ->group("Foreign models");
    cmd->add_option("--resize", resize,
                    "resize to this, then centre-crop --input-size (0: no crop)")
        ->capture_default_str()
        ->group("Foreign models");
    cmd->add_option("--color", color, "rgb, bgr or gray")
        ->capture_default_str()
        ->group("Foreign models");
    cmd->add_option("--mean", mean, "mean on 0..1 pixels: one value or r,g,b")
        ->capture_default_str()
        ->group("Foreign models");
    cmd->add_option("--std", std, "std on 0..1 pixels: one value or r,g,b")
        ->capture_default_str()
        ->group("Foreign models");
  }

  /// The model these options describe (mean and std checked, naming the options).
  ModelSource source() const {
    ModelSource m;
    m.model = model;
    m.device = device;
    m.precision = parse_precision(precision);
    m.threads = threads;
    m.foreign.backbone = backbone;
    auto& p = m.foreign.preprocess;
    p.input_size = input_size;
    p.resize = resize;
    p.color = parse_color(color);
    p.mean = parse_channel_values(mean, "--mean");
    p.std = parse_channel_values(std, "--std");
    check_normalisation(p.mean, p.std, "--mean", "--std");
    return m;
  }

  Embedder load() const { return source().load(); }
};

}  // namespace arcface::cli
