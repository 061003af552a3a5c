#include <spdlog/fmt/fmt.h>

#include "arcface/checkpoint.h"
#include "commands.h"

namespace arcface::cli {

void add_export(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("export", "Write a checkpoint's backbone as a plain PyTorch state dict");
  struct Args {
    std::string model, out;
    bool head = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--model", args->model, "a checkpoint of ours")->required();
  cmd->add_option("--out", args->out, "the .pth file to write")->required();
  cmd->add_flag("--head", args->head, "write the margin head's weights instead of the backbone's");
  cmd->callback([args] {
    const Checkpoint c = load_checkpoint(args->model);
    save_state_dict(args->head ? c.head_state : c.backbone_state, args->out);
    const auto& b = c.backbone;
    fmt::print("Wrote {} tensors of {} to {}\n",
               (args->head ? c.head_state : c.backbone_state).size(),
               args->head ? to_string(c.head.type()) + " head" : b.name(), args->out);
    if (!args->head) {
      fmt::print(
          "Python: model = build_backbone('{}', input_size={}, channels={}, embedding_dim={}, "
          "use_se={}); model.load_state_dict(torch.load('{}'))  (python/arcface_models.py)\n",
          b.name(), b.input_size(), b.channels(), b.embedding_dim(), b.use_se() ? "True" : "False",
          args->out);
    }
  });
}

}  // namespace arcface::cli
