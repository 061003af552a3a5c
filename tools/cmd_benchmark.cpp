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
    EvalArgs eval;
    std::string out = "benchmark";
  };
  auto args = std::make_shared<Args>();
  args->model.add_to(cmd);
  cmd->add_option("--target", args->targets,
                  "NAME=PAIRS[,ROOT]: a pairs.txt, lfw_test_pair.txt, CFP Split/FF or Split/FP "
                  "folder, or .bin (no root); repeat for each target")
      ->required();
  args->eval.add_to(cmd, "sum");
  cmd->add_option("--out", args->out, "output directory")->capture_default_str();
  cmd->callback([args] {
    std::vector<PairTarget> targets;
    for (const auto& spec : args->targets) targets.push_back(parse_pair_target(spec));
    Embedder embedder = args->model.load();
    fmt::print("{} ({}, {})\n", embedder.description(), describe(embedder.preprocess()),
               to_string(embedder.precision()));
    const EvalOptions eo = args->eval.options();
    const auto rows = run_benchmark(embedder, targets, eo);
    fmt::print("\n{}", benchmark_markdown(embedder.description(), rows));
    write_benchmark(args->out, embedder, eo.flip, rows);
    fmt::print("Table: {0}/table.md and {0}/table.json; each target's report in {0}/NAME/\n",
               args->out);
  });
}

}  // namespace arcface::cli
