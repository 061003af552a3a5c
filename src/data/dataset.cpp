#include "arcface/dataset.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

int64_t Dataset::num_classes() const {
  int64_t n = 0;
  for (const auto& s : samples) n = std::max(n, s.label + 1);
  return n;
}

bool is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp" ||
         ext == ".tif" || ext == ".tiff";
}

std::vector<Identity> scan_identities(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    throw Error(fmt::format("image root '{}' is not a directory", root.string()));
  }
  std::vector<Identity> people;
  for (const auto& dir : fs::directory_iterator(root)) {
    if (!dir.is_directory()) continue;
    Identity person{dir.path().filename().string(), {}};
    for (const auto& file : fs::directory_iterator(dir.path())) {
      if (file.is_regular_file() && is_image_file(file.path())) {
        person.images.push_back(person.name + "/" + file.path().filename().string());
      }
    }
    std::sort(person.images.begin(), person.images.end());
    people.push_back(std::move(person));
  }
  if (people.empty()) {
    throw Error(fmt::format("image root '{}' holds no identity folders", root.string()));
  }
  std::sort(people.begin(), people.end(),
            [](const Identity& a, const Identity& b) { return a.name < b.name; });
  return people;
}

Dataset read_train_list(const fs::path& list, const fs::path& root, Labels labels) {
  std::ifstream in(list);
  if (!in) throw Error(fmt::format("cannot open train list '{}'", list.string()));
  Dataset data{root, {}};
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    auto last = line.find_last_not_of(" \t");
    line = line.substr(first, last - first + 1);
    auto split = line.find_last_of(" \t");
    std::string path =
        split == std::string::npos ? line : line.substr(0, line.find_last_not_of(" \t", split) + 1);
    std::string label_text = split == std::string::npos ? "" : line.substr(split + 1);
    int64_t label = 0;
    size_t used = 0;
    try {
      label = std::stoll(label_text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    const bool is_label = !label_text.empty() && used == label_text.size() && label >= 0;
    if (labels == Labels::Ignored) {
      data.samples.push_back({is_label ? path : line, 0});
      continue;
    }
    if (split == std::string::npos) {
      throw Error(
          fmt::format("{}:{}: expected 'path label', got '{}'", list.string(), number, line));
    }
    if (!is_label) {
      throw Error(fmt::format("{}:{}: label '{}' is not a non-negative integer", list.string(),
                              number, label_text));
    }
    data.samples.push_back({path, label});
  }
  if (data.samples.empty()) throw Error(fmt::format("train list '{}' is empty", list.string()));
  return data;
}

Dataset dataset_from_folders(const fs::path& root) {
  Dataset data{root, {}};
  int64_t label = 0;
  for (auto& person : scan_identities(root)) {
    if (person.images.empty()) continue;
    for (auto& image : person.images) data.samples.push_back({std::move(image), label});
    ++label;
  }
  if (data.samples.empty()) {
    throw Error(fmt::format("image root '{}' holds no images", root.string()));
  }
  return data;
}

Dataset unlabelled_images(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    throw Error(fmt::format("image root '{}' is not a directory", root.string()));
  }
  Dataset data{root, {}};
  for (const auto& file : fs::recursive_directory_iterator(root)) {
    if (file.is_regular_file() && is_image_file(file.path())) {
      data.samples.push_back({fs::relative(file.path(), root).generic_string(), 0});
    }
  }
  if (data.samples.empty()) {
    throw Error(fmt::format("image root '{}' holds no images", root.string()));
  }
  std::sort(data.samples.begin(), data.samples.end(),
            [](const Sample& a, const Sample& b) { return a.path < b.path; });
  return data;
}

void write_train_list(const fs::path& out, const std::vector<Sample>& samples) {
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  std::ofstream file(out);
  if (!file) throw Error(fmt::format("cannot write train list '{}'", out.string()));
  for (const auto& s : samples) file << s.path << ' ' << s.label << '\n';
  if (!file) throw Error(fmt::format("failed writing train list '{}'", out.string()));
}

void validate_dataset(const Dataset& data, int64_t num_classes, const std::string& source) {
  int64_t bad_labels = 0, missing = 0;
  std::string first_label, first_missing;
  for (size_t i = 0; i < data.samples.size(); ++i) {
    const auto& s = data.samples[i];
    if (s.label >= num_classes && bad_labels++ == 0) {
      first_label = fmt::format("{} entry {} ('{}'): label {} >= model.num_classes {}", source,
                                i + 1, s.path, s.label, num_classes);
    }
    if (!fs::exists(data.root / s.path) && missing++ == 0) {
      first_missing = fmt::format("{} entry {}: image '{}' not found", source, i + 1,
                                  (data.root / s.path).string());
    }
  }
  if (bad_labels) {
    throw Error(fmt::format("{} ({} such entries)", first_label, bad_labels));
  }
  if (missing) throw Error(fmt::format("{} ({} missing in all)", first_missing, missing));
}

}  // namespace arcface
