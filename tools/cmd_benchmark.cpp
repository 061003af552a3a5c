// `arcface benchmark`: one model over several verification targets, one table.
#include <spdlog/fmt/fmt.h>

#include "arcface/benchmark.h"
#include "commands.h"
#include "model_args.h"

namespace arcface::cli {

void add_benchmark(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "benchmark", "Verification on several targets (LFW, CFP-FF, CFP-FP, .bin) in one table");
  struct Args {
    ModelArgs model;
    std::vector<std::string> targets;
    std::string flip = "sum", out = "benchmark";
    int64_t batch_size = 64, workers = 1;
    bool no_progress = false;
  };
  auto args = std::make_shared<Args>();
  args->model.add_to(cmd);
  cmd->add_option("--target", args->targets,
                  "NAME=PAIRS[,ROOT]: a pairs.txt, lfw_test_pair.txt, CFP Split/FF or Split/FP "
                  "folder, or .bin (no root); repeat for each target")
      ->required();
  cmd->add_option("--flip", args->flip, "concat, sum (insightface) or none")->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "images per network batch")
      ->capture_default_str();
  cmd->add_option("--workers", args->workers, "decoding threads")->capture_default_str();
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->add_option("--out", args->out, "output directory")->capture_default_str();
  cmd->callback([args] {
    std::vector<PairTarget> targets;
    for (const auto& spec : args->targets) targets.push_back(parse_pair_target(spec));
    Embedder embedder = args->model.load();
    fmt::print("{} ({}, {})\n", embedder.description(), describe(embedder.preprocess()),
               to_string(embedder.precision()));
    EvalOptions eo;
    eo.flip = parse_flip_mode(args->flip);
    eo.batch_size = args->batch_size;
    eo.workers = args->workers;
    eo.progress = !args->no_progress;
    const auto rows = run_benchmark(embedder, targets, eo);
    fmt::print("\n{}", benchmark_markdown(embedder.description(), rows));
    write_benchmark(args->out, embedder, eo.flip, rows);
    fmt::print("Table: {0}/table.md and {0}/table.json; each target's report in {0}/NAME/\n",
               args->out);
  });
}

}  // namespace arcface::cli
