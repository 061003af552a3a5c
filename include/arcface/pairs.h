#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "arcface/names.h"

namespace arcface {

namespace fs = std::filesystem;

struct Pair {
  int32_t a = 0, b = 0;  // indices into PairList::images
  bool same = false;
  int32_t fold = 0;
  int64_t line = 0;  // 1-based line in the source file (0 for .bin)
};

/// A verification pair list. Each distinct image appears once in `images`, so it is embedded
/// once however many pairs name it.
struct PairList {
  PairsFormat format = PairsFormat::Auto;
  fs::path source;
  std::vector<std::string> images;            // paths relative to the image root, or "#i" for .bin
  std::vector<std::vector<uint8_t>> encoded;  // .bin only: the encoded image bytes of images[i]
  std::vector<Pair> pairs;
  int32_t num_folds = 10;
  /// True when the folds come from the file (pairs.txt); otherwise they are consecutive tenths
  /// after interleaving same and different pairs.
  bool folds_from_file = false;
  /// The benchmark protocol, where the format has several ("CFP frontal-profile"), else "".
  std::string protocol;

  int64_t positives() const;
  /// Images of `images` that do not exist under `root` (.bin lists have none).
  std::vector<std::string> missing_images(const fs::path& root) const;
  /// Drops the pairs that name an image in `missing` and the images no pair uses any more.
  void drop_images(const std::vector<std::string>& missing);
  /// Keeps only pairs of the first `folds` folds (a quick check during training).
  void keep_folds(int32_t folds);
};

/// A named pair list and the image root its paths are relative to (none for .bin): a
/// benchmark's or a training run's validation target.
struct PairTarget {
  std::string name;
  fs::path pairs, root;
};

/// "NAME=PAIRS[,ROOT]", e.g. "CFP-FP=cfp/Protocol/Split/FP,cfp/cfp-align-112".
PairTarget parse_pair_target(const std::string& spec);

/// Reads a target's pair list: read_pairs, and an Error naming the target when its list names
/// image paths but it has no root.
PairList read_pair_target(const PairTarget& target, PairsFormat format = PairsFormat::Auto);

/// Reads a pair list; a malformed line is an error naming the file and line number. A folder is
/// CFP's protocol as distributed: `Protocol/Split/FF` (frontal-frontal) or `Split/FP`
/// (frontal-profile), with `Pair_list_F.txt` and `Pair_list_P.txt` two levels up; images are
/// named by the last three parts of those lists' paths (`001/frontal/01.jpg`).
PairList read_pairs(const fs::path& path, PairsFormat format = PairsFormat::Auto);

/// Folds for a list without them: interleave same and different pairs (in file order), then cut
/// into `folds` consecutive parts. For lfw_test_pair.txt this gives back the official folds.
void assign_interleaved_folds(PairList& list, int32_t folds = 10);

}  // namespace arcface
