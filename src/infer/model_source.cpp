#include "arcface/model_source.h"

#include <sstream>

#include <spdlog/fmt/fmt.h>

#include "arcface/config.h"
#include "arcface/error.h"
#include "arcface/system.h"

namespace arcface {

std::vector<double> parse_channel_values(const std::string& text, const std::string& name) {
  std::vector<double> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) {
      throw Error(
          fmt::format("{} '{}': '{}' is not a number (give one value or three, comma-separated)",
                      name, text, item));
    }
    values.push_back(v);
  }
  if (values.size() != 1 && values.size() != 3) {
    throw Error(fmt::format("{} '{}' has {} values: give one, or three comma-separated", name, text,
                            values.size()));
  }
  return values;
}

namespace {

std::string channel_text(const std::vector<double>& values) {
  std::string text;
  for (double v : values) text += fmt::format("{}{}", text.empty() ? "" : ",", v);
  return text;
}

std::vector<double> channel_values(const nlohmann::json& j, const std::string& name) {
  if (j.is_string()) return parse_channel_values(j.get<std::string>(), name);
  if (j.is_number()) return {j.get<double>()};
  if (j.is_array()) {
    auto values = j.get<std::vector<double>>();
    if (values.size() == 1 || values.size() == 3) return values;
  }
  throw Error(fmt::format("{} {}: give one value or three", name, j.dump()));
}

}  // namespace

Embedder ModelSource::load() const {
  configure_threads(threads);
  const auto& p = foreign.preprocess;
  check_normalisation(p.mean, p.std, "mean", "std");
  Embedder embedder = Embedder::load(model, device, foreign);
  embedder.precision(precision);
  return embedder;
}

nlohmann::json ModelSource::load_args() const {
  const auto& p = foreign.preprocess;
  return {{"backbone", foreign.backbone}, {"input_size", p.input_size},
          {"resize", p.resize},           {"color", to_string(p.color)},
          {"mean", channel_text(p.mean)}, {"std", channel_text(p.std)}};
}

void ModelSource::take_load_args(const nlohmann::json& args) {
  auto& p = foreign.preprocess;
  foreign.backbone = args.value("backbone", foreign.backbone);
  p.input_size = args.value("input_size", p.input_size);
  p.resize = args.value("resize", p.resize);
  if (args.contains("color")) p.color = parse_color(args.at("color").get<std::string>());
  if (args.contains("mean")) p.mean = channel_values(args.at("mean"), "mean");
  if (args.contains("std")) p.std = channel_values(args.at("std"), "std");
}

}  // namespace arcface
