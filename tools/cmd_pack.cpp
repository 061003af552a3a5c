// `arcface pack`: a folder tree or a train list as one insightface RecordIO file.
#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "arcface/recordio.h"
#include "commands.h"

namespace arcface::cli {

void add_pack(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "pack", "Write images as insightface's train.rec + train.idx + property (read sequentially)");
  struct Args {
    std::string root, list, out;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--root", a->root, "identity-per-folder image root (labels by folder name)")
      ->required();
  cmd->add_option("--list", a->list, "a train list of 'path label' lines relative to --root");
  cmd->add_option("--out", a->out, "the .rec to write (its .idx beside it, property in its folder)")
      ->required();
  cmd->callback([a] {
    const Dataset data =
        a->list.empty() ? dataset_from_folders(a->root) : read_train_list(a->list, a->root);
    validate_dataset(data, data.num_classes(), a->list.empty() ? a->root : a->list);
    const PackResult r = pack_records(data, a->out);
    fmt::print("Packed {} images of {} classes into {} ({:.1f} MiB)\n", r.images, r.classes, a->out,
               r.bytes / double(1 << 20));
  });
}

}  // namespace arcface::cli
