#include <unistd.h>

#include <csignal>

#include <spdlog/fmt/fmt.h>

#include "arcface/config.h"
#include "arcface/trainer.h"
#include "commands.h"

namespace arcface::cli {

namespace {
void on_signal(int signal) {
  // The first signal asks for a checkpoint and a clean stop; a second one ends at once.
  request_training_stop();
  std::signal(signal, SIG_DFL);
}
}  // namespace

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a backbone with a margin head from a YAML config");
  struct Args {
    std::string config;
    std::vector<std::string> overrides;
    std::string resume;
    bool no_progress = false;
    int64_t max_steps = 0;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--config", args->config, "YAML config (see config/default.yaml)")->required();
  cmd->add_option("--set", args->overrides,
                  "override a config key: --set training.lr=0.01 (repeatable)");
  cmd->add_option("--resume", args->resume,
                  "continue from a checkpoint (e.g. checkpoints/last.pt)");
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->add_option("--max-steps", args->max_steps,
                  "stop after N steps with a resumable checkpoint (short trials, benchmarks)");
  cmd->callback([args] {
    const TrainConfig config = load_config(args->config, args->overrides);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    TrainOptions options;
    options.resume = args->resume;
    options.progress = !args->no_progress;
    options.max_steps = args->max_steps;
    const TrainResult r = train(config, options);
    if (r.interrupted) {
      fmt::print("Stopped early; resume with --resume {}\n", r.last_checkpoint.string());
      if (args->max_steps == 0) std::exit(130);  // a signal, as a shell expects
      return;
    }
    fmt::print("Training complete: {} epochs; best {} = {:.4f} in {}\n", r.epochs_done,
               r.best_metric_name, r.best_metric, r.best_checkpoint.string());
  });
}

}  // namespace arcface::cli
