#include "arcface/decision.h"

#include <cmath>
#include <fstream>
#include <vector>

#include <spdlog/fmt/fmt.h>
#include <nlohmann/json.hpp>

#include "arcface/error.h"

namespace arcface {

namespace {

using nlohmann::json;

bool same_rate(double a, double b) { return std::abs(a - b) <= 1e-6 * std::max(a, b); }

std::string rates(const json& list) {
  std::vector<std::string> names;
  for (const auto& t : list) names.push_back(fmt::format("{:g}", t.at("far").get<double>()));
  return names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "));
}

Decision from_eval(const json& j, const fs::path& path, double far) {
  Decision d;
  d.flip = j.at("flip").get<std::string>();
  const std::string pairs = j.value("pairs_file", std::string("its pairs"));
  if (far <= 0) {
    d.threshold = j.at("threshold_best").get<double>();
    const auto negatives = j.at("negatives").get<int64_t>();
    const auto accepts = j.at("false_accepts").get<int64_t>();
    d.meaning = fmt::format(
        "the best-accuracy threshold of {}: {} of its {} different-person pairs ({:.2f}%) pass it",
        pairs, accepts, negatives, 100.0 * accepts / std::max<int64_t>(1, negatives));
    return d;
  }
  const json& list = j.contains("thresholds_at_far") ? j.at("thresholds_at_far") : json::array();
  for (const auto& t : list) {
    if (!same_rate(t.at("far").get<double>(), far)) continue;
    d.far = far;
    d.threshold = t.at("threshold").get<double>();
    const auto negatives = t.at("negatives").get<int64_t>();
    d.meaning =
        t.at("supported").get<bool>()
            ? fmt::format("FAR {:g}: at most {} of the {} different-person pairs of {} pass it",
                          far, t.at("false_accepts").get<int64_t>(), negatives, pairs)
            : fmt::format(
                  "FAR {:g} asked, but {} has only {} different-person pairs: the threshold "
                  "lies above all of them, which shows FAR < {:.1e}, not {:g}",
                  far, pairs, negatives, 1.0 / std::max<int64_t>(1, negatives), far);
    return d;
  }
  throw Error(fmt::format("report '{}' has no threshold for FAR {:g} (it has: {})", path.string(),
                          far, rates(list)));
}

Decision from_identification(const json& j, const fs::path& path, double far,
                             const std::string& aggregation) {
  if (far <= 0) {
    throw Error(fmt::format(
        "report '{}' is an identify-eval report: give the false-accept rate to decide at "
        "(--far)",
        path.string()));
  }
  for (const auto& run : j.at("runs")) {
    if (run.value("aggregation", std::string("mean")) != aggregation) continue;
    for (const auto& t : run.at("at_far")) {
      if (!same_rate(t.at("far").get<double>(), far)) continue;
      Decision d;
      d.one_to_one = false;
      d.far = far;
      d.flip = j.at("flip").get<std::string>();
      d.threshold = t.at("threshold").get<double>();
      d.meaning = fmt::format(
          "FAR {:g}: at most that share of the {} probes of people not enrolled find anyone "
          "({} enrolled, {} aggregation, {})",
          far, run.at("impostor_probes").get<int64_t>(), run.at("enrolled").get<int64_t>(),
          aggregation, j.value("root", std::string()));
      return d;
    }
    throw Error(fmt::format("report '{}' has no threshold for FAR {:g} (it has: {})", path.string(),
                            far, rates(run.at("at_far"))));
  }
  throw Error(
      fmt::format("report '{}' has no run with {} aggregation", path.string(), aggregation));
}

}  // namespace

Decision read_decision(const fs::path& report, double far, const std::string& aggregation) {
  std::ifstream in(report);
  if (!in) throw Error(fmt::format("cannot open report '{}'", report.string()));
  try {
    const json j = json::parse(in);
    if (j.contains("runs")) return from_identification(j, report, far, aggregation);
    if (j.contains("threshold_best")) return from_eval(j, report, far);
  } catch (const json::exception& e) {
    throw Error(fmt::format("report '{}' is not an arcface eval or identify-eval report: {}",
                            report.string(), e.what()));
  }
  throw Error(
      fmt::format("report '{}' is neither an arcface eval metrics.json nor an identify-eval report",
                  report.string()));
}

}  // namespace arcface
