#include "arcface/identification.h"

#include <algorithm>
#include <cmath>

#include <spdlog/fmt/fmt.h>

#include "arcface/dataset.h"
#include "arcface/error.h"

namespace arcface {

IdentificationSplit identification_split(const fs::path& root, int64_t per_person) {
  if (per_person < 1) throw Error(fmt::format("identification: {} images per person", per_person));
  IdentificationSplit split;
  for (const auto& person : scan_identities(root)) {
    const auto n = static_cast<int64_t>(person.images.size());
    if (n <= per_person) {
      for (const auto& image : person.images) split.impostors.push_back(image);
      continue;
    }
    const auto index = static_cast<int64_t>(split.people.size());
    split.people.push_back(person.name);
    for (int64_t i = 0; i < n; ++i) {
      (i < per_person ? split.gallery : split.genuine).emplace_back(person.images[i], index);
    }
  }
  if (split.people.empty()) {
    throw Error(fmt::format("'{}' has nobody with more than {} images to enrol", root.string(),
                            per_person));
  }
  return split;
}

nlohmann::json IdentificationMetrics::to_json() const {
  nlohmann::json far = nlohmann::json::array();
  for (const auto& a : at_far) {
    far.push_back({{"far", a.far}, {"threshold", a.threshold}, {"dir", a.dir}});
  }
  return {{"enrolled", enrolled},
          {"genuine_probes", genuine},
          {"impostor_probes", impostors},
          {"rank1", rank1},
          {"rank5", rank5},
          {"at_far", far}};
}

IdentificationMetrics identification_metrics(const std::vector<Ranking>& genuine,
                                             const std::vector<int64_t>& truth,
                                             const std::vector<double>& impostor_best,
                                             int64_t enrolled, const std::vector<double>& fars) {
  if (genuine.size() != truth.size()) {
    throw Error(
        fmt::format("identification: {} rankings for {} probes", genuine.size(), truth.size()));
  }
  IdentificationMetrics m;
  m.enrolled = enrolled;
  m.genuine = static_cast<int64_t>(genuine.size());
  m.impostors = static_cast<int64_t>(impostor_best.size());
  int64_t first = 0, five = 0;
  for (size_t i = 0; i < genuine.size(); ++i) {
    const auto& p = genuine[i].people;
    const auto at = std::find(p.begin(), p.end(), truth[i]) - p.begin();
    first += at == 0;
    five += at < 5 && at < static_cast<long>(p.size());
  }
  const double n = std::max<double>(1, static_cast<double>(genuine.size()));
  m.rank1 = first / n;
  m.rank5 = five / n;
  std::vector<double> impostors = impostor_best;
  std::sort(impostors.begin(), impostors.end(), std::greater<>());
  for (double far : fars) {
    // At most floor(far * N) impostors may reach the threshold: it sits just above the next.
    const auto allowed = static_cast<size_t>(std::floor(far * impostors.size()));
    const double threshold = impostors.empty()            ? -1.0
                             : allowed < impostors.size() ? std::nextafter(impostors[allowed], 2.0)
                                                          : impostors.back();
    int64_t hits = 0;
    for (size_t i = 0; i < genuine.size(); ++i) {
      const auto& g = genuine[i];
      hits += !g.people.empty() && g.people[0] == truth[i] && g.scores[0] >= threshold;
    }
    m.at_far.push_back({far, threshold, hits / n});
  }
  return m;
}

}  // namespace arcface
