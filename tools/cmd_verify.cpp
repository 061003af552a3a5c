#include <cmath>

#include <spdlog/fmt/fmt.h>

#include "arcface/decision.h"
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
    double threshold = std::nan(""), far = 0;
  };
  auto args = std::make_shared<Args>();
  args->model.add_to(cmd);
  cmd->add_option("image_a", args->a, "first face image")->required();
  cmd->add_option("image_b", args->b, "second face image")->required();
  cmd->add_option("--threshold", args->threshold, "same person when the cosine score >= this");
  cmd->add_option("--report", args->report,
                  "take the threshold and flip mode from an eval metrics.json");
  cmd->add_option("--far", args->far,
                  "with --report: decide at this false-accept rate (1e-2, 1e-3 or 1e-4) instead "
                  "of the best-accuracy threshold");
  cmd->add_option("--flip", args->flip, "none, concat or sum (default: the report's, else concat)");
  cmd->callback([args] {
    std::string flip = args->flip;
    Decision decision;
    decision.threshold = args->threshold;
    decision.meaning = "the threshold given";
    if (args->far > 0 && args->report.empty()) throw Error("--far needs --report metrics.json");
    if (!args->report.empty()) {
      if (!std::isnan(args->threshold)) throw Error("give --threshold or --report, not both");
      decision = read_decision(args->report, args->far);
      if (!decision.one_to_one) {
        throw Error(fmt::format(
            "--report '{}' is an identify-eval report (1:N); verify needs eval's metrics.json",
            args->report));
      }
      if (flip.empty()) flip = decision.flip;
    }
    if (std::isnan(decision.threshold)) {
      throw Error("verify needs --threshold, or --report metrics.json [--far 1e-3]");
    }
    const double threshold = decision.threshold;
    if (flip.empty()) flip = "concat";
    Embedder embedder = args->model.load();
    const auto mode = parse_flip_mode(flip);
    const Color color = embedder.preprocess().color;
    const double score = Embedder::match(embedder.embed(read_image(args->a, color), mode),
                                         embedder.embed(read_image(args->b, color), mode));
    fmt::print("score {:.4f} (threshold {:.4f}, flip {}, {}): {}\n", score, threshold, flip,
               to_string(embedder.precision()),
               score >= threshold ? "same person" : "different people");
    fmt::print("threshold: {}\n", decision.meaning);
  });
}

}  // namespace arcface::cli
