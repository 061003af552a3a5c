#pragma once

// Training people who look like test people: the overlap that makes a benchmark figure
// optimistic. Each person is their mean descriptor under a reference model; a training person
// whose mean is close to a test person's is listed, with a threshold taken from the scores of
// one person against themself (two halves of their photos) and of different people.
#include <filesystem>
#include <string>
#include <vector>

#include "arcface/evaluate.h"
#include "arcface/metrics.h"

namespace arcface {

namespace fs = std::filesystem;

/// People and their images, paths relative to `root`.
struct People {
  fs::path root;
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> images;
};

/// Every top-level folder of `root` is a person, with the images at any depth below it (LFW's
/// `Person/x.jpg`, CFP's `NNN/frontal/01.jpg`).
People people_in_folders(const fs::path& root);
/// The people of a train list (`path label` lines): a person per label, named by the folder of
/// its first image.
People people_in_list(const fs::path& list, const fs::path& root);

struct OverlapOptions {
  EvalOptions eval;  // flip, batch size, decoding threads
  /// The threshold is the score that this share of genuine half-pairs (each person with four
  /// photos or more, split in two halves of alternate photos) reaches...
  double recall = 0.99;
  /// ...unless given here (> -1).
  double threshold = -2;
  int64_t closest = 50;  // closest pairs listed whatever their score
};

struct OverlapPair {
  int64_t train = 0, test = 0;  // indices into the People
  double score = 0;
};

struct OverlapResult {
  double threshold = 0;
  ScoreStats genuine, impostor;  // one person's two halves; different people of one set
  std::vector<double> genuine_percentiles, impostor_percentiles;  // at 1, 5, 50, 95, 99, 99.9
  double genuine_above = 0, impostor_above = 0;                   // shares reaching threshold
  /// Each training person's closest test person, for those reaching the threshold; best first.
  std::vector<OverlapPair> matches;
  std::vector<OverlapPair> closest;  // the closest pairs overall, best first
  double seconds = 0;
};

/// Describes every image of both sets, then compares the people's mean descriptors.
OverlapResult find_overlap(Embedder& embedder, const People& train, const People& test,
                           const OverlapOptions& options);

/// Writes overlap.tsv (the matches), closest.tsv, overlap.json, and exclude.txt: the matched
/// training people's images, one path per line, as `select --exclude` takes them.
void write_overlap(const fs::path& dir, const People& train, const People& test,
                   const OverlapResult& result);

}  // namespace arcface
