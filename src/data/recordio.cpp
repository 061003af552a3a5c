#include "arcface/recordio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "arcface/image.h"

namespace arcface {

namespace {

constexpr uint32_t kMagic = 0xced7230a;
constexpr uint32_t kLengthBits = (1u << 29) - 1;
constexpr size_t kHeaderBytes = 24;  // uint32 flag, float label, uint64 id, uint64 id2

uint32_t u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // the format is little-endian, as is every machine this runs on
  return v;
}

float f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

/// The parsed start of a record's payload: its flag and labels, and where the image begins.
struct Header {
  uint32_t flag = 0;
  std::vector<float> labels;  // the header's label, or the `flag` labels after it
  size_t image_at = kHeaderBytes;
};

Header parse_header(const std::vector<uint8_t>& payload, const std::string& what) {
  if (payload.size() < kHeaderBytes) {
    throw Error(
        fmt::format("{}: {} bytes, too short for the 24-byte header", what, payload.size()));
  }
  Header h;
  h.flag = u32(payload.data());
  if (h.flag == 0) {
    h.labels = {f32(payload.data() + 4)};
    return h;
  }
  h.image_at = kHeaderBytes + 4 * static_cast<size_t>(h.flag);
  if (payload.size() < h.image_at) {
    throw Error(
        fmt::format("{}: flag {} announces {} labels after the header, the record has {} "
                    "bytes",
                    what, h.flag, h.flag, payload.size()));
  }
  for (uint32_t i = 0; i < h.flag; ++i) h.labels.push_back(f32(payload.data() + 24 + 4 * i));
  return h;
}

}  // namespace

RecordFile::~RecordFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<uint8_t> RecordFile::payload(uint64_t offset, const std::string& what) const {
  std::vector<uint8_t> out;
  auto read_at = [&](void* into, size_t n, uint64_t at) {
    size_t done = 0;
    while (done < n) {
      const ssize_t got =
          ::pread(fd_, static_cast<uint8_t*>(into) + done, n - done, static_cast<off_t>(at + done));
      if (got <= 0)
        throw Error(fmt::format("{}: cannot read '{}' at offset {}", what, path_.string(), at));
      done += static_cast<size_t>(got);
    }
  };
  for (uint64_t at = offset;;) {
    if (at + 8 > size_) {
      throw Error(
          fmt::format("{} at offset {}: the file '{}' ends ({} bytes) before its header: "
                      "it is truncated",
                      what, at, path_.string(), size_));
    }
    uint32_t head[2];
    read_at(head, 8, at);
    if (head[0] != kMagic) {
      throw Error(fmt::format("{} at offset {} of '{}': bad magic 0x{:08x}, expected 0x{:08x}",
                              what, at, path_.string(), head[0], kMagic));
    }
    const uint32_t part = head[1] >> 29, length = head[1] & kLengthBits;
    if ((at == offset) != (part == 0 || part == 1)) {
      throw Error(fmt::format("{} at offset {} of '{}': a {} with continuation flag {}", what, at,
                              path_.string(),
                              at == offset ? "record starts" : "split record goes on", part));
    }
    if (at + 8 + length > size_) {
      throw Error(
          fmt::format("{} at offset {}: its {} bytes run past the end of '{}' ({} bytes): "
                      "the file is truncated",
                      what, at, length, path_.string(), size_));
    }
    const size_t old = out.size();
    out.resize(old + length);
    if (length) read_at(out.data() + old, length, at + 8);
    at += 8 + ((static_cast<uint64_t>(length) + 3) & ~uint64_t{3});
    if (part == 0 || part == 3) return out;
    // A writer splits a payload where the magic number appears; the reader puts it back.
    const uint32_t magic = kMagic;
    out.insert(out.end(), reinterpret_cast<const uint8_t*>(&magic),
               reinterpret_cast<const uint8_t*>(&magic) + 4);
  }
}

std::shared_ptr<const RecordFile> RecordFile::open(const fs::path& rec) {
  std::shared_ptr<RecordFile> f(new RecordFile());
  f->path_ = rec;
  f->fd_ = ::open(rec.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0)
    throw Error(fmt::format("record file '{}' not found or unreadable", rec.string()));
  struct stat st {};
  if (::fstat(f->fd_, &st) != 0) throw Error(fmt::format("cannot stat '{}'", rec.string()));
  f->size_ = static_cast<uint64_t>(st.st_size);

  // The index: "key<TAB>offset" lines.
  fs::path idx = rec;
  idx.replace_extension(".idx");
  std::ifstream in(idx);
  if (!in) {
    throw Error(
        fmt::format("index '{}' not found (the .idx beside '{}')", idx.string(), rec.string()));
  }
  std::map<int64_t, uint64_t> offsets;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream fields(line);
    int64_t key = -1;
    long long offset = -1;
    if (!(fields >> key >> offset) || key < 0 || offset < 0) {
      throw Error(
          fmt::format("{} line {}: expected 'key offset', got '{}'", idx.string(), line_no, line));
    }
    if (static_cast<uint64_t>(offset) >= f->size_) {
      throw Error(
          fmt::format("{} line {}: record {} at offset {} is past the end of '{}' ({} bytes): the "
                      ".rec is truncated, or this is not its index",
                      idx.string(), line_no, key, offset, rec.string(), f->size_));
    }
    offsets[key] = static_cast<uint64_t>(offset);
  }
  if (offsets.empty()) throw Error(fmt::format("index '{}' lists no record", idx.string()));

  // property: "num_classes,height,width".
  int64_t classes = 0;
  const fs::path property = rec.parent_path() / "property";
  if (std::ifstream p(property); p) {
    std::string text;
    std::getline(p, text);
    std::replace(text.begin(), text.end(), ',', ' ');
    std::istringstream fields(text);
    if (!(fields >> classes) || classes < 1) {
      throw Error(fmt::format("{}: expected 'num_classes,height,width', got '{}'",
                              property.string(), text));
    }
  }

  auto record = [&](int64_t key) {
    const auto found = offsets.find(key);
    if (found == offsets.end()) {
      throw Error(fmt::format("record {} is not in '{}'", key, idx.string()));
    }
    return found->second;
  };
  std::vector<int64_t> keys;
  const std::string what0 = fmt::format("record 0 of '{}'", rec.string());
  const Header first =
      offsets.count(0) ? parse_header(f->payload(record(0), what0), what0) : Header{};
  if (offsets.count(0) && first.flag > 0) {
    // insightface's layout: images are keys 1 .. id_start - 1.
    const float id_start = first.labels.at(0);
    if (!(id_start >= 1 && id_start <= static_cast<float>(offsets.size()))) {
      throw Error(fmt::format("{}: images are keys 1 to {}, but '{}' lists {} records", what0,
                              id_start - 1, idx.string(), offsets.size()));
    }
    for (int64_t k = 1; k < static_cast<int64_t>(id_start); ++k) keys.push_back(k);
  } else {
    for (const auto& [k, o] : offsets) keys.push_back(k);  // shuffled files list every image
  }
  int64_t largest = -1;
  for (const int64_t key : keys) {
    const uint64_t offset = record(key);
    const std::string what = fmt::format("record {} of '{}'", key, rec.string());
    const Header h = parse_header(f->payload(offset, what), what);
    const float value = h.labels.at(0);
    // Float labels are exact below 2^24.
    if (!(value >= 0 && value < 16777216.0f) || value != std::floor(value) ||
        (classes > 0 && value >= classes)) {
      throw Error(classes > 0 ? fmt::format("{}: label {} is outside 0..{} ({} classes in '{}')",
                                            what, value, classes - 1, classes, property.string())
                              : fmt::format("{}: label {} is not a class number", what, value));
    }
    f->images_.push_back({key, offset, static_cast<int64_t>(value)});
    largest = std::max<int64_t>(largest, static_cast<int64_t>(value));
  }
  f->num_classes_ = classes > 0 ? classes : largest + 1;
  return f;
}

std::vector<uint8_t> RecordFile::read(size_t i) const {
  const auto& image = images_.at(i);
  const std::string what = name(i);
  auto bytes = payload(image.offset, what);
  const Header h = parse_header(bytes, what);
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(h.image_at));
  return bytes;
}

std::string RecordFile::name(size_t i) const {
  return fmt::format("{}#{}", path_.filename().string(), images_.at(i).key);
}

std::vector<Identity> record_people(const RecordFile& records) {
  const auto& images = records.images();
  const auto width = std::to_string(std::max<int64_t>(0, records.num_classes() - 1)).size();
  std::map<int64_t, Identity> by_label;
  for (size_t i = 0; i < images.size(); ++i) {
    auto& person = by_label[images[i].label];
    if (person.name.empty()) person.name = fmt::format("{:0{}d}", images[i].label, width);
    person.images.push_back(records.name(i));
  }
  std::vector<Identity> people;
  for (auto& [label, person] : by_label) people.push_back(std::move(person));
  return people;
}

namespace {

void put32(std::vector<uint8_t>& out, uint32_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + 4);
}

void put64(std::vector<uint8_t>& out, uint64_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + 8);
}

void putf(std::vector<uint8_t>& out, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put32(out, bits);
}

std::vector<uint8_t> header(uint32_t flag, float label, uint64_t id,
                            const std::vector<float>& labels = {}) {
  std::vector<uint8_t> h;
  put32(h, flag);
  putf(h, label);
  put64(h, id);
  put64(h, 0);
  for (float l : labels) putf(h, l);
  return h;
}

/// Writes one record, split where the payload holds the magic number at a 4-byte boundary
/// (as MXNet's writer does, so that a reader can resynchronise on the magic).
void write_record(std::ofstream& out, const std::vector<uint8_t>& payload) {
  if (payload.size() > kLengthBits) {
    throw Error(
        fmt::format("a record of {} bytes: RecordIO parts hold under 512 MiB", payload.size()));
  }
  auto part = [&](uint32_t flag, size_t begin, size_t end) {
    const uint32_t head[2] = {kMagic, (flag << 29) | static_cast<uint32_t>(end - begin)};
    out.write(reinterpret_cast<const char*>(head), 8);
    out.write(reinterpret_cast<const char*>(payload.data() + begin),
              static_cast<std::streamsize>(end - begin));
    static const char zeros[4] = {0, 0, 0, 0};
    out.write(zeros, static_cast<std::streamsize>((4 - (end - begin) % 4) % 4));
  };
  size_t begin = 0;
  bool split = false;
  for (size_t i = 0; i + 4 <= (payload.size() & ~size_t{3}); i += 4) {
    if (u32(payload.data() + i) != kMagic) continue;
    part(split ? 2 : 1, begin, i);
    split = true;
    begin = i + 4;
  }
  part(split ? 3 : 0, begin, payload.size());
}

}  // namespace

PackResult pack_records(const Dataset& data, const fs::path& out) {
  if (data.samples.empty()) throw Error("pack: no images to pack");
  std::vector<size_t> order(data.samples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return data.samples[a].label < data.samples[b].label;
  });
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t classes = data.num_classes();
  if (n + 1 + classes > (int64_t{1} << 24)) {
    throw Error(
        fmt::format("pack: {} images and {} classes: the format's float labels count keys "
                    "exactly only up to 16,777,216",
                    n, classes));
  }
  fs::path idx_path = out;
  idx_path.replace_extension(".idx");
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  std::ofstream rec(out, std::ios::binary | std::ios::trunc);
  std::ofstream idx(idx_path, std::ios::trunc);
  if (!rec || !idx) throw Error(fmt::format("cannot write '{}' and its .idx", out.string()));

  auto add = [&](int64_t key, const std::vector<uint8_t>& payload) {
    idx << key << '\t' << static_cast<uint64_t>(rec.tellp()) << '\n';
    write_record(rec, payload);
  };
  // Record 0 names the identity records; each of those names its class's image keys.
  add(0, header(2, 0, 0, {static_cast<float>(n + 1), static_cast<float>(n + 1 + classes)}));
  std::vector<int64_t> first(classes + 1, -1), end(classes + 1, -1);
  ImageSize size;
  for (int64_t k = 1; k <= n; ++k) {
    const Sample& s = data.samples[order[k - 1]];
    const auto bytes = read_file_bytes(data.root / s.path);
    if (size.empty()) size = encoded_size(bytes.data(), bytes.size());
    auto payload = header(0, static_cast<float>(s.label), static_cast<uint64_t>(k));
    payload.insert(payload.end(), bytes.begin(), bytes.end());
    add(k, payload);
    if (first[s.label] < 0) first[s.label] = k;
    end[s.label] = k + 1;
  }
  for (int64_t c = 0; c < classes; ++c) {
    add(n + 1 + c, header(2, 0, 0,
                          {static_cast<float>(std::max<int64_t>(first[c], 0)),
                           static_cast<float>(std::max<int64_t>(end[c], 0))}));
  }
  rec.close();
  idx.close();
  std::ofstream property(out.parent_path() / "property", std::ios::trunc);
  property << classes << ',' << size.height << ',' << size.width << '\n';
  if (!rec || !idx || !property) {
    throw Error(fmt::format("cannot finish writing '{}' (disk full?)", out.string()));
  }
  return {n, classes, static_cast<uint64_t>(fs::file_size(out))};
}

}  // namespace arcface
