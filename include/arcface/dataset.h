#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "arcface/names.h"

namespace arcface {

namespace fs = std::filesystem;

/// One training image: its path relative to the dataset root, and its class.
struct Sample {
  std::string path;
  int64_t label = 0;
};

/// A labelled image set: the root its paths are relative to, and the samples.
struct Dataset {
  fs::path root;
  std::vector<Sample> samples;
  /// One more than the largest label.
  int64_t num_classes() const;
};

/// True for the image file extensions the toolkit decodes (jpg, jpeg, png, bmp, webp, tif).
bool is_image_file(const fs::path& path);

/// The identity folders of an identity-per-folder root, sorted by name, each with its image
/// file names sorted. Throws when the root is missing or holds no identity folder.
struct Identity {
  std::string name;
  std::vector<std::string> images;  // relative to the root: "name/file.jpg"
};
std::vector<Identity> scan_identities(const fs::path& root);

/// Whether a list's images carry identity labels. Without (training on a teacher alone), a
/// line is a path, and a trailing integer field, if any, is a label that is dropped.
enum class Labels { Required, Ignored };

/// Reads a train list of `relative/path.jpg label` lines (seed 000's train_list.txt). The label
/// is the last field, so paths may hold spaces. Errors name the file and line. With
/// Labels::Ignored every sample gets label 0.
Dataset read_train_list(const fs::path& list, const fs::path& root,
                        Labels labels = Labels::Required);

/// Every image of an identity-per-folder root, labelled by folder in name order.
Dataset dataset_from_folders(const fs::path& root);

/// Every image file below `root`, at any depth, in path order, each with label 0.
Dataset unlabelled_images(const fs::path& root);

/// Writes `path label` lines; the inverse of read_train_list.
void write_train_list(const fs::path& out, const std::vector<Sample>& samples);

/// Checks that every sample's file exists and its label is below `num_classes`; the error
/// names the first offending line and how many more there are.
void validate_dataset(const Dataset& data, int64_t num_classes, const std::string& source);

// --- balanced subset selection (seed 000's create_train_list) ---

struct SelectOptions {
  fs::path root;
  /// Sub-folders of `root`, each an identity-per-folder tree, taken together as one label
  /// space: people are "source/person" and paths stay relative to `root`. Empty: `root` itself.
  std::vector<std::string> sources;
  int64_t min_images = 10;
  int64_t classes = 100;       // 0: every qualified person
  int64_t max_per_class = 20;  // 0: no cap
  SelectOrder order = SelectOrder::Name;
  uint64_t seed = 42;
  /// Images to leave out before people are qualified: a file naming one image per line
  /// (relative to `root`, or a record name) in its first field, tab- or space-separated;
  /// blank lines, `#` comments and a first line whose first field is `path` (a TSV header) are
  /// skipped. A line naming none of the images (nor one of another source) is an error.
  fs::path exclude;
};

struct SelectResult {
  int64_t total_persons = 0;
  int64_t qualified = 0;
  int64_t selected = 0;
  int64_t at_cap = 0;    // selected people who end with exactly max_per_class images
  int64_t excluded = 0;  // images left out by SelectOptions::exclude
  std::vector<std::string> class_names;  // label i is class_names[i]
  std::vector<Sample> samples;           // shuffled
};

/// Keeps people with at least `min_images`, takes `classes` of them in `order`, samples up to
/// `max_per_class` images of each and shuffles, all with `seed`. Labels follow the people's
/// names (with `sources`, "source/person") in the chosen order.
SelectResult select_balanced(const SelectOptions& options);
/// The same selection over `people` given rather than scanned (a train.rec's, say); only
/// `root` of the options is unused.
SelectResult select_balanced(std::vector<Identity> people, const SelectOptions& options);

}  // namespace arcface
