#include <unistd.h>

#include <csignal>

#include <spdlog/fmt/fmt.h>

#include "arcface/config.h"
#include "arcface/error.h"
#include "arcface/trainer.h"
#include "commands.h"

namespace arcface::cli {

namespace {
void on_signal(int signal) {
  // The first signal asks for a checkpoint and a clean stop; a second one ends at once. Said
  // with write(), the one way to print from a signal handler: a long teacher pass or
  // validation may come before the next step.
  request_training_stop();
  std::signal(signal, SIG_DFL);
  static constexpr char kMessage[] =
      "\nStopping after the next step with a resumable checkpoint; a second signal stops at "
      "once\n";
  [[maybe_unused]] const auto written = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
}

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string resume;
  bool no_progress = false;
  int64_t max_steps = 0;
  std::string teacher;
  int world_size = 0, rank = -1;
  std::string master;
  int timeout_s = 0;
};

// `train` and `distill` are one command: distillation is training with a teacher.
CLI::App* add_training(CLI::App& app, const std::string& name, const std::string& description,
                       std::shared_ptr<TrainArgs> args) {
  auto* cmd = app.add_subcommand(name, description);
  cmd->add_option("--config", args->config, "YAML config (see config/default.yaml)")->required();
  cmd->add_option("--set", args->overrides,
                  "override a config key: --set training.lr=0.01 (repeatable)");
  cmd->add_option("--resume", args->resume,
                  "continue from a checkpoint (e.g. checkpoints/last.pt)");
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->add_option("--max-steps", args->max_steps,
                  "stop after N steps with a resumable checkpoint (short trials, benchmarks)");
  auto* dp =
      "Data parallel (c10d/Gloo; torchrun's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT work too)";
  cmd->add_option("--world-size", args->world_size, "number of ranks (processes)")->group(dp);
  cmd->add_option("--rank", args->rank, "this process's rank, 0..world-size-1")->group(dp);
  cmd->add_option("--master", args->master, "HOST:PORT of rank 0's rendezvous (127.0.0.1:29500)")
      ->group(dp);
  cmd->add_option("--dist-timeout", args->timeout_s,
                  "seconds a rank waits for the others before failing (1800)")
      ->group(dp);
  cmd->callback([args, name] {
    auto overrides = args->overrides;
    if (!args->teacher.empty()) {
      // As a quoted YAML string, so a path is never read as a number, a bool or a comment.
      std::string quoted;
      for (char c : args->teacher) quoted += c == '\'' ? std::string("''") : std::string(1, c);
      overrides.push_back("distill.teacher='" + quoted + "'");
    }
    const TrainConfig config = load_config(args->config, overrides);
    if (name == "distill" && config.distill.teacher.empty()) {
      throw Error(fmt::format("distill needs a teacher: --teacher MODEL or distill.teacher in '{}'",
                              args->config));
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    TrainOptions options;
    options.resume = args->resume;
    options.progress = !args->no_progress;
    options.max_steps = args->max_steps;
    options.distributed = DistributedOptions::from_env();
    if (args->world_size > 0) options.distributed.world_size = args->world_size;
    if (args->rank >= 0) options.distributed.rank = args->rank;
    if (!args->master.empty()) options.distributed.master = args->master;
    if (args->timeout_s > 0) options.distributed.timeout = std::chrono::seconds(args->timeout_s);
    const TrainResult r = train(config, options);
    if (r.interrupted) {
      fmt::print("Stopped early; resume with --resume {}\n", r.last_checkpoint.string());
      if (r.stop_requested) throw ExitStatus{130};  // a signal, as a shell expects
      return;
    }
    fmt::print("Training complete: {} epochs; best {} = {:.4f} in {}\n", r.epochs_done,
               r.best_metric_name, r.best_metric, r.best_checkpoint.string());
  });
  return cmd;
}

}  // namespace

void add_train(CLI::App& app) {
  add_training(app, "train", "Train a backbone with a margin head from a YAML config",
               std::make_shared<TrainArgs>());
}

void add_distill(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = add_training(
      app, "distill",
      "Train a student with a margin head and hard-example distillation from a teacher", args);
  cmd->add_option("--teacher", args->teacher,
                  "teacher model: one of our checkpoints, Python weights or ONNX (sets "
                  "distill.teacher)");
}

}  // namespace arcface::cli
