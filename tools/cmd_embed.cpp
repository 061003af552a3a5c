#include <fstream>

#include <spdlog/fmt/fmt.h>

#include "arcface/dataset.h"
#include "arcface/error.h"
#include "arcface/evaluate.h"
#include "commands.h"
#include "model_args.h"

namespace arcface::cli {

void add_embed(CLI::App& app) {
  auto* cmd = app.add_subcommand("embed", "Write unit face descriptors of aligned images");
  struct Args {
    ModelArgs model;
    std::string root, list, out, flip = "none";
    std::vector<std::string> images;
    int64_t batch_size = 64;
  };
  auto args = std::make_shared<Args>();
  args->model.add_to(cmd);
  cmd->add_option("--root", args->root,
                  "embed every image under this folder (or the root of --list)");
  cmd->add_option("--list", args->list, "a file of image paths (first field of each line)");
  cmd->add_option("images", args->images, "image files");
  cmd->add_option("--flip", args->flip, "none, concat or sum")->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "images per batch")->capture_default_str();
  cmd->add_option("--out", args->out, "embeddings.npy (+ .paths.txt), .csv or .json")->required();
  cmd->callback([args] {
    ImageSource source;
    if (!args->list.empty()) {
      source.root = args->root;
      std::ifstream in(args->list);
      if (!in) throw Error(fmt::format("cannot open image list '{}'", args->list));
      for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::string path;
        if (fields >> path && path[0] != '#') source.names.push_back(path);
      }
    } else if (!args->images.empty()) {
      source.names = args->images;
    } else if (!args->root.empty()) {
      source.root = args->root;
      for (const auto& entry : fs::recursive_directory_iterator(args->root)) {
        if (entry.is_regular_file() && is_image_file(entry.path())) {
          source.names.push_back(fs::relative(entry.path(), args->root).string());
        }
      }
      std::sort(source.names.begin(), source.names.end());
    }
    if (source.names.empty()) throw Error("embed: no images given (use --root, --list or files)");
    Embedder embedder = args->model.load();
    EvalOptions eo;
    eo.flip = parse_flip_mode(args->flip);
    eo.batch_size = args->batch_size;
    const auto names = source.names;
    const auto descriptors = embed_images(embedder, std::move(source), eo);
    save_embeddings(args->out, names, descriptors, embedding_meta(embedder, eo.flip));
    fmt::print("Wrote {} descriptors of {} values to {} ({}, {}, flip {})\n", descriptors.size(0),
               descriptors.size(1), args->out, embedder.description(),
               to_string(embedder.precision()), args->flip);
  });
}

}  // namespace arcface::cli
