#pragma once

// Open-set identification (1:N) on a labelled image set: the protocol and its metrics.
// Torch-free; the search itself is the gallery's.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace arcface {

namespace fs = std::filesystem;

/// LFW's identification split (as in the open-set protocols of Best-Rowden et al.): of each
/// person with more than `per_person` images, the first `per_person` (in name order) are
/// enrolled and the others are genuine probes; every image of a person with at most
/// `per_person` images (one, for the default) is an impostor probe, whose person is not
/// enrolled.
struct IdentificationSplit {
  std::vector<std::string> people;                       // enrolled people, by index
  std::vector<std::pair<std::string, int64_t>> gallery;  // image, person index
  std::vector<std::pair<std::string, int64_t>> genuine;  // image, person index
  std::vector<std::string> impostors;                    // images of people not enrolled
};
IdentificationSplit identification_split(const fs::path& root, int64_t per_person = 1);

/// One probe's answer: the enrolled people ranked best first, with their scores.
struct Ranking {
  std::vector<int64_t> people;
  std::vector<double> scores;
};

struct IdentificationMetrics {
  int64_t enrolled = 0, genuine = 0, impostors = 0;
  double rank1 = 0, rank5 = 0;  // closed set: the true person first / among the first five
  struct AtFar {
    double far = 0;        // the share of impostor probes whose best score passes
    double threshold = 0;  // the score it takes
    double dir = 0;        // detection and identification rate: genuine probes whose true
                           // person is first and passes the threshold
  };
  std::vector<AtFar> at_far;  // at FAR 1e-2 and 1e-3
  nlohmann::json to_json() const;
};

/// Rank-k rates of genuine probes (`truth[i]` is probe i's person) and, at each FAR, the lowest
/// threshold that at most that share of impostors' best scores reach, with the DIR it gives.
IdentificationMetrics identification_metrics(const std::vector<Ranking>& genuine,
                                             const std::vector<int64_t>& truth,
                                             const std::vector<double>& impostor_best,
                                             int64_t enrolled,
                                             const std::vector<double>& fars = {1e-2, 1e-3});

}  // namespace arcface
