#pragma once

// The steps of train() that stand on their own, each testable: the training images, the
// validation pairs, and the policy that picks best.pt.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arcface/config.h"
#include "arcface/dataset.h"
#include "arcface/image.h"
#include "arcface/pairs.h"
#include "arcface/recordio.h"

namespace arcface {

/// The images a run trains on, after data.bad_images has ruled on the damaged ones.
struct TrainingImages {
  Dataset data;
  std::string source;              // "train list 'x.txt'" or "image root 'y'", for messages
  std::vector<std::string> names;  // paths relative to data.root, in list order
  std::vector<int64_t> labels;     // the label of each name
  std::vector<BadImage> skipped;   // damaged images left out (data.bad_images: skip)
  std::shared_ptr<const RecordFile> records;  // data.train_rec: where the images are
  std::vector<size_t> record_index;           // of each name, in records

  /// The images to decode, files or records.
  ImageSource image_source() const {
    return ImageSource{data.root, names, {}, {}, records, record_index};
  }
};

/// Reads the train list (or the identity folders), checks its labels and files, and decodes
/// every image once: a truncated or corrupt one is an Error naming all of them
/// (data.bad_images: error) or is left out and listed (skip).
TrainingImages training_images(const TrainConfig& config);

/// A validation target: its name, image root and pairs.
struct ValTarget {
  std::string name;
  fs::path root;
  PairList pairs;
};

/// The validation targets (val.root + val.pairs as val.name, then val.targets), each cut to its
/// first val.folds folds, every image checked to exist and decode; none when validation is off.
std::vector<ValTarget> validation_targets(const TrainConfig& config);

/// Whether an epoch's {metric, value, epoch} beats the best so far. With validation configured,
/// validated epochs compete only with each other: a training accuracy never replaces a
/// validated best, and the first validation replaces it.
bool beats(const nlohmann::json& candidate, const nlohmann::json& best);

}  // namespace arcface
