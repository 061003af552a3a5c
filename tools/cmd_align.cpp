#include <spdlog/fmt/fmt.h>

#include "arcface/aligner.h"
#include "commands.h"

namespace arcface::cli {

/// The detector options `align` and `eval --preprocess` share.
void add_detector_options(CLI::App* cmd, DetectorOptions& d) {
  cmd->add_option("--detector-model", d.model,
                  "YuNet .onnx file, MTCNN weights folder, or dlib shape predictor (default: "
                  "libdlib-data's)");
  cmd->add_option("--score-threshold", d.score_threshold, "drop faces scoring below this (0..1)")
      ->capture_default_str();
}

void add_align(CLI::App& app) {
  auto* cmd = app.add_subcommand("align", "Detect, landmark and align the faces of an image tree");
  struct Args {
    AlignOptions options;
    std::string src, dst;
    int size = 112, width = 0, threads = 1;
    bool no_progress = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--src", args->src, "identity-per-folder tree of raw images")->required();
  cmd->add_option("--dst", args->dst, "where the aligned crops go (same relative paths)")
      ->required();
  cmd->add_option("--detector", args->options.detector.type, "dlib, yunet or mtcnn")
      ->capture_default_str();
  add_detector_options(cmd, args->options.detector);
  cmd->add_option("--size", args->size, "output height (and width)")->capture_default_str();
  cmd->add_option("--width", args->width, "output width when not square (e.g. 96 for 112x96)");
  cmd->add_option("--margin", args->options.margin,
                  "crop mode (seed 002): the box plus this margin instead of the 5-point warp");
  cmd->add_flag("--gray", args->options.grayscale, "single-channel crops");
  cmd->add_option("--threads", args->threads, "detection threads")->capture_default_str();
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->callback([args] {
    auto& o = args->options;
    o.height = args->size;
    o.width = args->width > 0 ? args->width : args->size;
    const auto r = align_tree(args->src, args->dst, o, args->threads, !args->no_progress);
    fmt::print(
        "{} images: {} aligned, {} without a face (centre crop), {} unreadable, {} already "
        "done; {:.1f}s ({:.1f} img/s)\n",
        r.images, r.aligned, r.fallbacks, r.unreadable, r.skipped, r.seconds,
        (r.images - r.skipped) / std::max(1e-9, r.seconds));
    fmt::print("See {}/landmarks.txt and {}/failures.txt\n", args->dst, args->dst);
  });
}

}  // namespace arcface::cli
