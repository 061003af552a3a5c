#include <cstdio>

#include <spdlog/fmt/fmt.h>

#include "arcface/dataset.h"
#include "arcface/error.h"
#include "arcface/recordio.h"
#include "commands.h"

namespace arcface::cli {

void add_select(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "select", "Choose a balanced training subset of an identity-per-folder root or a train.rec");
  struct Args {
    SelectOptions options;
    std::string order = "name";
    std::string out = "train_list.txt";
    fs::path rec;
  };
  auto args = std::make_shared<Args>();
  auto* root = cmd->add_option("--root", args->options.root, "identity-per-folder image root");
  auto* rec = cmd->add_option("--rec", args->rec,
                              "or an insightface train.rec: its labels are the people, the list "
                              "names its records (train with data.train_rec and data.train_list)");
  root->excludes(rec);
  cmd->add_option("--sources", args->options.sources,
                  "sub-folders of the root, each identity-per-folder, taken as one set "
                  "(people named source/person)")
      ->excludes(rec);
  cmd->add_option("--min-images", args->options.min_images, "keep people with at least N images")
      ->capture_default_str();
  cmd->add_option("--classes", args->options.classes, "number of people to take (0: all)")
      ->capture_default_str();
  cmd->add_option("--max-per-class", args->options.max_per_class,
                  "cap on images per person (0: none)")
      ->capture_default_str();
  cmd->add_option(
         "--order", args->order,
         "which qualified people: name (first K), count (K largest) or random (K drawn by --seed; "
         "a smaller K draws a subset of a larger)")
      ->capture_default_str();
  cmd->add_option("--seed", args->options.seed, "random seed for sampling and shuffling")
      ->capture_default_str();
  cmd->add_option("--exclude", args->options.exclude,
                  "file of images to leave out, one per line in its first field (e.g. the "
                  "training set's suspect_images.tsv)");
  cmd->add_option("--out", args->out, "train list to write")->capture_default_str();
  cmd->callback([args] {
    auto& o = args->options;
    if (o.root.empty() && args->rec.empty()) throw Error("select needs --root DIR or --rec FILE");
    o.order = parse_select_order(args->order);
    fmt::print("[1/5] Scanning dataset {}{}\n", (args->rec.empty() ? o.root : args->rec).string(),
               o.sources.empty() ? "" : fmt::format(" ({})", fmt::join(o.sources, ", ")));
    const SelectResult r = args->rec.empty()
                               ? select_balanced(o)
                               : select_balanced(record_people(*RecordFile::open(args->rec)), o);
    fmt::print("      Total persons: {}\n", r.total_persons);
    if (!o.exclude.empty()) {
      fmt::print("      Images left out ({}): {}\n", o.exclude.string(), r.excluded);
    }
    fmt::print("      Qualified persons (>={} images): {}\n", o.min_images, r.qualified);
    fmt::print("[2/5] Selecting classes ({} order)\n", args->order);
    fmt::print("      Selected classes: {}\n", r.selected);
    fmt::print("[3/5] Sampling images ({} per class)\n",
               o.max_per_class > 0 ? fmt::format("max {}", o.max_per_class) : "all");
    fmt::print("      Classes at the cap: {}; below it: {}\n", r.at_cap, r.selected - r.at_cap);
    fmt::print("[4/5] Shuffling data (seed {})\n", o.seed);
    fmt::print("      Total training samples: {}\n", r.samples.size());
    fmt::print("[5/5] Writing to file: {}\n", args->out);
    write_train_list(args->out, r.samples);
    fmt::print("Successfully wrote {} records\n", r.samples.size());
  });
}

}  // namespace arcface::cli
