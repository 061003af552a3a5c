#include <algorithm>
#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/fmt/fmt.h>

#include "arcface/dataset.h"
#include "arcface/error.h"
#include "util/rng.h"

namespace arcface {

namespace {

std::vector<Identity> scan_people(const SelectOptions& options) {
  if (options.sources.empty()) return scan_identities(options.root);
  std::vector<Identity> people;
  for (const auto& source : options.sources) {
    for (auto& person : scan_identities(options.root / source)) {
      person.name = source + "/" + person.name;
      for (auto& image : person.images) image = source + "/" + image;
      people.push_back(std::move(person));
    }
  }
  std::sort(people.begin(), people.end(),
            [](const Identity& a, const Identity& b) { return a.name < b.name; });
  return people;
}

// An image of another source under the same root: one exclusion list may serve several
// selections (the training set's covers all its folders).
bool in_other_source(const SelectOptions& options, const std::string& path) {
  if (options.sources.empty()) return false;
  const auto source = path.substr(0, path.find('/'));
  return std::find(options.sources.begin(), options.sources.end(), source) ==
             options.sources.end() &&
         fs::is_regular_file(options.root / path);
}

// The images named by `options.exclude`; each must be one of `people`'s or of another source.
std::set<std::string> read_exclusions(const SelectOptions& options,
                                      const std::vector<Identity>& people) {
  std::ifstream in(options.exclude);
  if (!in) throw Error(fmt::format("select: cannot read '{}'", options.exclude.string()));
  std::set<std::string> known;
  for (const auto& person : people) known.insert(person.images.begin(), person.images.end());
  std::set<std::string> excluded;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    line.erase(0, line.find_first_not_of(" \t"));
    // A tab separates fields that may hold spaces; without one, the first word.
    std::string path;
    const auto tab = line.find('\t');
    if (tab != std::string::npos) {
      path = line.substr(0, tab);
    } else {
      std::istringstream(line) >> path;
    }
    if (path.empty() || path[0] == '#' || (n == 1 && path == "path")) continue;
    if (!known.count(path) && !in_other_source(options, path)) {
      throw Error(fmt::format(
          "{}:{}: '{}' is none of the images to select from{}", options.exclude.string(), n, path,
          options.root.empty() ? std::string()
                               : " (paths relative to '" + options.root.string() + "')"));
    }
    excluded.insert(path);
  }
  return excluded;
}

}  // namespace

SelectResult select_balanced(const SelectOptions& options) {
  return select_balanced(scan_people(options), options);
}

SelectResult select_balanced(std::vector<Identity> people, const SelectOptions& options) {
  if (options.min_images < 1 || options.classes < 0 || options.max_per_class < 0) {
    throw Error(fmt::format(
        "select: min-images ({}) must be >= 1, classes ({}) and max-per-class ({}) >= 0 (0: all)",
        options.min_images, options.classes, options.max_per_class));
  }
  SelectResult result;
  result.total_persons = static_cast<int64_t>(people.size());
  if (!options.exclude.empty()) {
    const auto excluded = read_exclusions(options, people);
    for (auto& person : people) {
      auto& images = person.images;
      const auto before = images.size();
      images.erase(std::remove_if(images.begin(), images.end(),
                                  [&](const std::string& image) { return excluded.count(image); }),
                   images.end());
      result.excluded += static_cast<int64_t>(before - images.size());
    }
  }

  std::vector<Identity> qualified;
  for (auto& person : people) {
    if (static_cast<int64_t>(person.images.size()) >= options.min_images) {
      qualified.push_back(std::move(person));
    }
  }
  result.qualified = static_cast<int64_t>(qualified.size());
  if (options.order == SelectOrder::Count) {
    std::stable_sort(qualified.begin(), qualified.end(), [](const Identity& a, const Identity& b) {
      return a.images.size() > b.images.size();
    });
  }
  if (options.order == SelectOrder::Random) {
    // Its own generator: the images drawn below stay those of the other orders' seed.
    Rng draw(mix_seed(options.seed, 1));
    draw.shuffle(qualified);
  }
  if (options.classes > 0 && static_cast<int64_t>(qualified.size()) > options.classes) {
    qualified.resize(options.classes);
  }
  if (options.order == SelectOrder::Random) {
    std::sort(qualified.begin(), qualified.end(),
              [](const Identity& a, const Identity& b) { return a.name < b.name; });
  }
  result.selected = static_cast<int64_t>(qualified.size());
  if (qualified.empty()) {
    throw Error(fmt::format("select: no person{} has at least {} images",
                            options.root.empty() ? "" : " in '" + options.root.string() + "'",
                            options.min_images));
  }

  Rng rng(options.seed);
  const auto cap = options.max_per_class > 0 ? options.max_per_class : INT64_MAX;
  for (size_t label = 0; label < qualified.size(); ++label) {
    auto& images = qualified[label].images;
    if (static_cast<int64_t>(images.size()) >= cap) ++result.at_cap;
    if (static_cast<int64_t>(images.size()) > cap) {
      rng.shuffle(images);
      images.resize(cap);
      std::sort(images.begin(), images.end());
    }
    result.class_names.push_back(qualified[label].name);
    for (auto& image : images) {
      result.samples.push_back({std::move(image), static_cast<int64_t>(label)});
    }
  }
  rng.shuffle(result.samples);
  return result;
}

}  // namespace arcface
