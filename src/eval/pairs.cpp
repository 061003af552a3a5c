#include "arcface/pairs.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <unordered_map>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"

namespace arcface {

int64_t PairList::positives() const {
  return std::count_if(pairs.begin(), pairs.end(), [](const Pair& p) { return p.same; });
}

std::vector<std::string> PairList::missing_images(const fs::path& root) const {
  std::vector<std::string> missing;
  if (format == PairsFormat::Bin) return missing;
  for (const auto& image : images) {
    if (!fs::exists(root / image)) missing.push_back(image);
  }
  return missing;
}

void PairList::drop_images(const std::vector<std::string>& missing) {
  std::set<std::string> gone(missing.begin(), missing.end());
  std::vector<Pair> kept;
  for (const auto& p : pairs) {
    if (!gone.count(images[p.a]) && !gone.count(images[p.b])) kept.push_back(p);
  }
  pairs = std::move(kept);
  // Re-index the images the remaining pairs use.
  std::vector<int32_t> remap(images.size(), -1);
  std::vector<std::string> used;
  std::vector<std::vector<uint8_t>> used_encoded;
  for (auto& p : pairs) {
    for (int32_t* index : {&p.a, &p.b}) {
      if (remap[*index] < 0) {
        remap[*index] = static_cast<int32_t>(used.size());
        used.push_back(images[*index]);
        if (!encoded.empty()) used_encoded.push_back(std::move(encoded[*index]));
      }
      *index = remap[*index];
    }
  }
  images = std::move(used);
  encoded = std::move(used_encoded);
}

void PairList::keep_folds(int32_t folds) {
  std::vector<std::string> unused;
  std::vector<Pair> kept;
  for (const auto& p : pairs) {
    if (p.fold < folds) kept.push_back(p);
  }
  pairs = std::move(kept);
  drop_images(unused);  // re-indexes the images still in use
  num_folds = std::min(num_folds, folds);
}

void assign_interleaved_folds(PairList& list, int32_t folds) {
  std::vector<size_t> pos, neg, order;
  for (size_t i = 0; i < list.pairs.size(); ++i) (list.pairs[i].same ? pos : neg).push_back(i);
  for (size_t i = 0; i < std::max(pos.size(), neg.size()); ++i) {
    if (i < pos.size()) order.push_back(pos[i]);
    if (i < neg.size()) order.push_back(neg[i]);
  }
  const size_t n = order.size();
  for (size_t k = 0; k < n; ++k) {
    list.pairs[order[k]].fold = static_cast<int32_t>(k * folds / n);
  }
  list.num_folds = folds;
  list.folds_from_file = false;
}

namespace {

std::vector<std::string> split_fields(const std::string& line) {
  std::istringstream in(line);
  return {std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
}

class ImageIndex {
 public:
  explicit ImageIndex(PairList& list) : list_(list) {}
  int32_t operator()(const std::string& path) {
    auto [it, added] = index_.emplace(path, static_cast<int32_t>(list_.images.size()));
    if (added) list_.images.push_back(path);
    return it->second;
  }

 private:
  PairList& list_;
  std::unordered_map<std::string, int32_t> index_;
};

int64_t parse_count(const std::string& text, const fs::path& path, int64_t line) {
  try {
    size_t used = 0;
    long long value = std::stoll(text, &used);
    if (used == text.size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  throw Error(fmt::format("{}:{}: '{}' is not a non-negative integer", path.string(), line, text));
}

std::string lfw_image(const std::string& name, int64_t number) {
  return fmt::format("{0}/{0}_{1:04d}.jpg", name, number);
}

void read_lfw(std::istream& in, PairList& list) {
  const auto& path = list.source;
  std::string line;
  int64_t number = 0;
  std::vector<std::string> header;
  while (header.empty() && std::getline(in, line)) {
    ++number;
    header = split_fields(line);
  }
  if (header.size() != 2) {
    throw Error(fmt::format("{}:{}: expected the header 'folds pairs-per-fold', got '{}'",
                            path.string(), number, line));
  }
  const int64_t folds = parse_count(header[0], path, number);
  const int64_t per_class = parse_count(header[1], path, number);
  if (folds < 1 || per_class < 1) {
    throw Error(fmt::format("{}:{}: header '{}' must name at least one fold and pair",
                            path.string(), number, line));
  }
  ImageIndex index(list);
  while (std::getline(in, line)) {
    ++number;
    auto f = split_fields(line);
    if (f.empty()) continue;
    Pair p;
    p.line = number;
    p.fold = static_cast<int32_t>(list.pairs.size() / (2 * per_class));
    if (f.size() == 3) {
      p.same = true;
      p.a = index(lfw_image(f[0], parse_count(f[1], path, number)));
      p.b = index(lfw_image(f[0], parse_count(f[2], path, number)));
    } else if (f.size() == 4) {
      p.a = index(lfw_image(f[0], parse_count(f[1], path, number)));
      p.b = index(lfw_image(f[2], parse_count(f[3], path, number)));
    } else {
      throw Error(fmt::format("{}:{}: expected 'name n1 n2' or 'name1 n1 name2 n2', got '{}'",
                              path.string(), number, line));
    }
    const bool expect_same = list.pairs.size() % (2 * per_class) < static_cast<size_t>(per_class);
    if (p.same != expect_same) {
      throw Error(
          fmt::format("{}:{}: expected a {} pair here (each fold has {} same, then {} "
                      "different lines)",
                      path.string(), number, expect_same ? "same-person" : "different-person",
                      per_class, per_class));
    }
    list.pairs.push_back(p);
  }
  if (static_cast<int64_t>(list.pairs.size()) != folds * 2 * per_class) {
    throw Error(fmt::format("{}: header promises {} folds of {} pairs, found {} pairs",
                            path.string(), folds, 2 * per_class, list.pairs.size()));
  }
  list.num_folds = static_cast<int32_t>(folds);
  list.folds_from_file = true;
}

void read_list(std::istream& in, PairList& list) {
  ImageIndex index(list);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    auto f = split_fields(line);
    if (f.empty() || f[0][0] == '#') continue;
    if (f.size() != 3 || (f[2] != "0" && f[2] != "1")) {
      throw Error(fmt::format("{}:{}: expected 'imageA imageB 1|0', got '{}'", list.source.string(),
                              number, line));
    }
    Pair p;
    p.a = index(f[0]);
    p.b = index(f[1]);
    p.same = f[2] == "1";
    p.line = number;
    list.pairs.push_back(p);
  }
  assign_interleaved_folds(list);
}

// An insightface .bin is a pickle of (list of JPEG byte strings, list of bools). Rather than a
// pickle machine we walk the byte-string records (opcodes B / C / 0x8e) that hold encoded
// images, then read the flags from the MARK ... APPENDS runs of NEWTRUE/NEWFALSE after them.
void read_bin(const std::vector<uint8_t>& bytes, PairList& list) {
  const auto& path = list.source;
  auto read_le = [&](size_t at, int width) {
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | bytes[at + i];
    return v;
  };
  auto is_image = [](const uint8_t* p, size_t n) {
    const bool jpeg = n > 4 && p[0] == 0xFF && p[1] == 0xD8 && p[n - 2] == 0xFF && p[n - 1] == 0xD9;
    const bool png = n > 8 && std::memcmp(p, "\x89PNG", 4) == 0;
    return jpeg || png;
  };
  size_t at = 0, end_of_images = 0;
  while (at < bytes.size()) {
    const uint8_t op = bytes[at];
    int width = op == 'B' ? 4 : op == 'C' ? 1 : op == 0x8e ? 8 : 0;
    if (width && at + 1 + width <= bytes.size()) {
      uint64_t n = read_le(at + 1, width);
      size_t start = at + 1 + width;
      if (n <= bytes.size() - start && is_image(bytes.data() + start, n)) {
        list.encoded.emplace_back(bytes.begin() + start, bytes.begin() + start + n);
        at = end_of_images = start + n;
        continue;
      }
    }
    ++at;
  }
  std::vector<bool> flags;
  for (at = end_of_images; at + 1 < bytes.size(); ++at) {
    if (bytes[at] != '(' || (bytes[at + 1] != 0x88 && bytes[at + 1] != 0x89)) continue;
    size_t k = at + 1;
    while (k < bytes.size() && (bytes[k] == 0x88 || bytes[k] == 0x89))
      flags.push_back(bytes[k++] == 0x88);
    at = k;
  }
  if (list.encoded.empty()) {
    throw Error(fmt::format("{}: no encoded images found; not an insightface verification .bin",
                            path.string()));
  }
  if (list.encoded.size() % 2 != 0 || flags.size() * 2 != list.encoded.size()) {
    throw Error(
        fmt::format("{}: found {} images and {} same/different flags; expected two "
                    "images per flag",
                    path.string(), list.encoded.size(), flags.size()));
  }
  for (size_t i = 0; i < list.encoded.size(); ++i) list.images.push_back(fmt::format("#{}", i));
  for (size_t i = 0; i < flags.size(); ++i) {
    Pair p;
    p.a = static_cast<int32_t>(2 * i);
    p.b = static_cast<int32_t>(2 * i + 1);
    p.same = flags[i];
    list.pairs.push_back(p);
  }
  assign_interleaved_folds(list);
}

// CFP names its photos by number: line k of Pair_list_F.txt is "k
// ../Data/Images/NNN/frontal/XX.jpg".
std::vector<std::string> read_cfp_photo_list(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("cannot open CFP photo list '{}'", path.string()));
  std::vector<std::string> photos;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    auto f = split_fields(line);
    if (f.empty()) continue;
    if (f.size() != 2 ||
        parse_count(f[0], path, number) != static_cast<int64_t>(photos.size()) + 1) {
      throw Error(fmt::format("{}:{}: expected '{} path/NNN/frontal|profile/XX.jpg', got '{}'",
                              path.string(), number, photos.size() + 1, line));
    }
    const fs::path photo(f[1]);
    auto part = photo.end();
    std::vector<std::string> tail;
    while (part != photo.begin() && tail.size() < 3) tail.insert(tail.begin(), (--part)->string());
    if (tail.size() < 3) {
      throw Error(
          fmt::format("{}:{}: '{}' has no person/pose/photo parts", path.string(), number, f[1]));
    }
    photos.push_back(tail[0] + "/" + tail[1] + "/" + tail[2]);
  }
  if (photos.empty()) throw Error(fmt::format("CFP photo list '{}' is empty", path.string()));
  return photos;
}

// CFP's protocol: Split/FF or Split/FP holds one folder per fold (01..10), each with same.txt and
// diff.txt of "i,j" lines; i numbers a frontal photo, j a frontal (FF) or profile (FP) one.
void read_cfp(PairList& list) {
  const fs::path split = fs::weakly_canonical(list.source);
  const std::string kind = split.filename().string();
  if (kind != "FF" && kind != "FP") {
    throw Error(
        fmt::format("CFP protocol folder '{}': give Protocol/Split/FF (frontal-frontal) or "
                    "Protocol/Split/FP (frontal-profile)",
                    list.source.string()));
  }
  const fs::path protocol = split.parent_path().parent_path();
  const auto frontal = read_cfp_photo_list(protocol / "Pair_list_F.txt");
  const auto second = kind == "FF" ? frontal : read_cfp_photo_list(protocol / "Pair_list_P.txt");
  std::vector<fs::path> folds;
  for (const auto& entry : fs::directory_iterator(list.source)) {
    if (entry.is_directory()) folds.push_back(entry.path());
  }
  std::sort(folds.begin(), folds.end());
  if (folds.empty()) {
    throw Error(
        fmt::format("CFP protocol folder '{}' has no fold folders (01..10)", list.source.string()));
  }
  ImageIndex index(list);
  auto photo = [&](const std::vector<std::string>& photos, const std::string& text,
                   const fs::path& path, int64_t number) {
    const int64_t k = parse_count(text, path, number);
    if (k < 1 || k > static_cast<int64_t>(photos.size())) {
      throw Error(fmt::format("{}:{}: photo number {} is outside 1..{}", path.string(), number, k,
                              photos.size()));
    }
    return index(photos[k - 1]);
  };
  for (size_t fold = 0; fold < folds.size(); ++fold) {
    for (const bool same : {true, false}) {
      const fs::path path = folds[fold] / (same ? "same.txt" : "diff.txt");
      std::ifstream in(path);
      if (!in) throw Error(fmt::format("cannot open CFP pairs file '{}'", path.string()));
      std::string line;
      int64_t found = 0;
      for (int64_t number = 1; std::getline(in, line); ++number) {
        if (split_fields(line).empty()) continue;
        const auto comma = line.find(',');
        if (comma == std::string::npos) {
          throw Error(fmt::format("{}:{}: expected 'i,j', got '{}'", path.string(), number, line));
        }
        auto field = [&](std::string text) {
          auto f = split_fields(text);
          if (f.size() != 1) {
            throw Error(
                fmt::format("{}:{}: expected 'i,j', got '{}'", path.string(), number, line));
          }
          return f[0];
        };
        Pair p;
        p.a = photo(frontal, field(line.substr(0, comma)), path, number);
        p.b = photo(second, field(line.substr(comma + 1)), path, number);
        p.same = same;
        p.fold = static_cast<int32_t>(fold);
        p.line = number;
        list.pairs.push_back(p);
        ++found;
      }
      if (found == 0) throw Error(fmt::format("CFP pairs file '{}' has no pairs", path.string()));
    }
  }
  list.num_folds = static_cast<int32_t>(folds.size());
  list.folds_from_file = true;
  list.protocol = kind == "FF" ? "CFP frontal-frontal (FF)" : "CFP frontal-profile (FP)";
}

PairsFormat detect_format(const fs::path& path, std::istream& in) {
  if (path.extension() == ".bin") return PairsFormat::Bin;
  std::string line;
  while (std::getline(in, line)) {
    auto f = split_fields(line);
    if (f.empty()) continue;
    in.clear();
    in.seekg(0);
    if (f.size() == 2 && std::all_of(line.begin(), line.end(),
                                     [](char c) { return std::isdigit(c) || std::isspace(c); })) {
      return PairsFormat::Lfw;
    }
    if (f.size() == 3) return PairsFormat::List;
    throw Error(
        fmt::format("{}: cannot tell the pairs format from its first line '{}'; give "
                    "--pairs-format",
                    path.string(), line));
  }
  throw Error(fmt::format("pairs file '{}' is empty", path.string()));
}

}  // namespace

PairTarget parse_pair_target(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
    throw Error(fmt::format("target '{}': expected NAME=PAIRS[,ROOT]", spec));
  }
  PairTarget t;
  t.name = spec.substr(0, eq);
  if (t.name.find_first_of("/\\") != std::string::npos || t.name == "." || t.name == ".." ||
      t.name == "mean") {
    throw Error(fmt::format(
        "target '{}': the name '{}' names a report folder and a choice of best.pt: no slashes, "
        "not 'mean'",
        spec, t.name));
  }
  const std::string rest = spec.substr(eq + 1);
  const auto comma = rest.find(',');
  t.pairs = rest.substr(0, comma);
  if (comma != std::string::npos) t.root = rest.substr(comma + 1);
  return t;
}

PairList read_pair_target(const PairTarget& target, PairsFormat format) {
  PairList pairs = read_pairs(target.pairs, format);
  if (pairs.format != PairsFormat::Bin && target.root.empty()) {
    throw Error(fmt::format("target {}: '{}' names image paths; give its root (NAME=PAIRS,ROOT)",
                            target.name, target.pairs.string()));
  }
  return pairs;
}

PairList read_pairs(const fs::path& path, PairsFormat format) {
  PairList list;
  list.source = path;
  if (fs::is_directory(path) || format == PairsFormat::Cfp) {
    if (!fs::is_directory(path)) {
      throw Error(fmt::format("CFP protocol folder '{}' does not exist", path.string()));
    }
    list.format = PairsFormat::Cfp;
    read_cfp(list);
    return list;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open pairs file '{}'", path.string()));
  list.format = format == PairsFormat::Auto ? detect_format(path, in) : format;
  switch (list.format) {
    case PairsFormat::Lfw:
      read_lfw(in, list);
      break;
    case PairsFormat::List:
      read_list(in, list);
      break;
    case PairsFormat::Bin: {
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
      read_bin(bytes, list);
      break;
    }
    case PairsFormat::Auto:
    case PairsFormat::Cfp:
      break;
  }
  if (list.pairs.empty()) throw Error(fmt::format("pairs file '{}' has no pairs", path.string()));
  return list;
}

}  // namespace arcface
