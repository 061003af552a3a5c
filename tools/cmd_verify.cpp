#include <fstream>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "arcface/error.h"
#include "commands.h"
#include "model_args.h"

namespace arcface::cli {

void add_verify(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("verify", "Decide whether two aligned face images show the same person");
  struct Args {
    ModelArgs model;
    std::string a, b, report, flip;
    double threshold = std::nan("");
  };
  auto args = std::make_shared<Args>();
  args->model.add_to(cmd);
  cmd->add_option("image_a", args->a, "first face image")->required();
  cmd->add_option("image_b", args->b, "second face image")->required();
  cmd->add_option("--threshold", args->threshold, "same person when the cosine score >= this");
  cmd->add_option("--report", args->report,
                  "take the threshold and flip mode from an eval metrics.json");
  cmd->add_option("--flip", args->flip, "none, concat or sum (default: the report's, else concat)");
  cmd->callback([args] {
    std::string flip = args->flip;
    double threshold = args->threshold;
    if (!args->report.empty()) {
      const EvalReport report = read_eval_report(args->report);
      if (std::isnan(threshold)) threshold = report.threshold;
      if (flip.empty()) flip = report.flip;
    }
    if (std::isnan(threshold)) throw Error("verify needs --threshold or --report metrics.json");
    if (flip.empty()) flip = "concat";
    Embedder embedder = args->model.load();
    const auto mode = parse_flip_mode(flip);
    const Color color = embedder.preprocess().color;
    const double score = Embedder::match(embedder.embed(read_image(args->a, color), mode),
                                         embedder.embed(read_image(args->b, color), mode));
    fmt::print("score {:.4f} (threshold {:.4f}, flip {}, {}): {}\n", score, threshold, flip,
               to_string(embedder.precision()),
               score >= threshold ? "same person" : "different people");
  });
}

}  // namespace arcface::cli
