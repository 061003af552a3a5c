// `arcface overlap`: training people who look like test people, as a list select --exclude takes.
#include <spdlog/fmt/fmt.h>

#include "arcface/overlap.h"
#include "commands.h"
#include "model_args.h"

namespace arcface::cli {

void add_overlap(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "overlap",
      "Training people who look like test people (mean descriptors of a reference model)");
  struct Args {
    ModelArgs model;
    std::string train_root, train_list, test_root, out = "overlap";
    OverlapOptions options;
    EvalArgs eval;
  };
  auto args = std::make_shared<Args>();
  args->model.add_to(cmd);
  cmd->add_option("--train-root", args->train_root, "the training images' root")->required();
  cmd->add_option("--train-list", args->train_list,
                  "a train list (path label); without it every folder of --train-root is a person");
  cmd->add_option("--test-root", args->test_root,
                  "the test people, a folder each (images at any depth below it)")
      ->required();
  cmd->add_option("--recall", args->options.recall,
                  "the threshold keeps this share of one person's two halves together")
      ->capture_default_str();
  cmd->add_option("--threshold", args->options.threshold, "a cosine threshold instead of --recall");
  cmd->add_option("--closest", args->options.closest, "closest pairs listed whatever their score")
      ->capture_default_str();
  args->eval.add_to(cmd, "sum", 2);
  cmd->add_option("--out", args->out, "output directory")->capture_default_str();
  cmd->callback([args] {
    const People train = args->train_list.empty()
                             ? people_in_folders(args->train_root)
                             : people_in_list(args->train_list, args->train_root);
    const People test = people_in_folders(args->test_root);
    Embedder embedder = args->model.load();
    fmt::print("{} ({}, {}); {} training people, {} test people\n", embedder.description(),
               describe(embedder.preprocess()), to_string(embedder.precision()), train.names.size(),
               test.names.size());
    auto& o = args->options;
    o.eval = args->eval.options();
    const OverlapResult r = find_overlap(embedder, train, test, o);
    const auto& g = r.genuine_percentiles;
    const auto& i = r.impostor_percentiles;
    fmt::print(
        "One person's two halves: median {:.3f}, 1st percentile {:.3f} ({} people)\n"
        "Different people: median {:.3f}, 99th {:.3f}, 99.9th {:.3f}, max {:.3f} ({} pairs)\n",
        g[2], g[0], r.genuine.count, i[2], i[4], i[5], r.impostor.max, r.impostor.count);
    fmt::print("Threshold {:.4f}: {:.2f}% of the halves and {:.4f}% of different people reach it\n",
               r.threshold, 100 * r.genuine_above, 100 * r.impostor_above);
    fmt::print("{} of {} training people reach it with a test person", r.matches.size(),
               train.names.size());
    for (size_t k = 0; k < std::min<size_t>(10, r.matches.size()); ++k) {
      const auto& m = r.matches[k];
      fmt::print("{} {} ~ {} {:.3f}", k ? "," : ":", train.names[m.train], test.names[m.test],
                 m.score);
    }
    fmt::print("\n");
    write_overlap(args->out, train, test, r);
    fmt::print(
        "{0}/exclude.txt (for select --exclude), {0}/overlap.tsv, closest.tsv, overlap.json\n",
        args->out);
  });
}

}  // namespace arcface::cli
