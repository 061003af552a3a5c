#pragma once

// Each subcommand registers its options and its action on the main app.
#include <CLI/CLI.hpp>

namespace arcface::cli {

/// Thrown by a command that ends with a status of its own (130: stopped by a signal), so main
/// returns it after the stack has unwound.
struct ExitStatus {
  int code;
};

void add_select(CLI::App& app);
void add_train(CLI::App& app);
void add_distill(CLI::App& app);
void add_eval(CLI::App& app);
void add_benchmark(CLI::App& app);
void add_overlap(CLI::App& app);
void add_embed(CLI::App& app);
void add_verify(CLI::App& app);
void add_export(CLI::App& app);
void add_align(CLI::App& app);
void add_gallery(CLI::App& app);
void add_identify(CLI::App& app);
void add_identify_eval(CLI::App& app);
void add_serve(CLI::App& app);
void add_pack(CLI::App& app);

}  // namespace arcface::cli

namespace arcface {
struct DetectorOptions;
}

namespace arcface::cli {
/// --detector-model and --score-threshold, shared by align and eval.
void add_detector_options(CLI::App* cmd, arcface::DetectorOptions& options);

}  // namespace arcface::cli
