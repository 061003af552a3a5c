#pragma once

// insightface's training format: `train.rec` (MXNet RecordIO: every image a record of a
// 24-byte header and its JPEG), `train.idx` (record key -> byte offset) and `property`
// (`num_classes,height,width`), as arcface_torch's MXFaceDataset reads it.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "arcface/dataset.h"

namespace arcface {

namespace fs = std::filesystem;

/// One image record: its key in the .idx, where it starts in the .rec, and its class.
struct RecordImage {
  int64_t key = 0;
  uint64_t offset = 0;
  int64_t label = 0;
};

/// A packed image set, opened for reading. Every image record's header is read at open (so a
/// damaged file is refused then, naming the record); the JPEG bytes are read on demand, from
/// any thread.
class RecordFile {
 public:
  /// Opens `train.rec` with the `train.idx` beside it and the `property` file of its folder
  /// (when present: it bounds the labels). Record 0 with `flag` > 0 names the image records
  /// (keys 1 to its first label); without it every key of the .idx is an image.
  static std::shared_ptr<const RecordFile> open(const fs::path& rec);
  ~RecordFile();

  const fs::path& path() const { return path_; }
  const std::vector<RecordImage>& images() const { return images_; }
  /// From `property`, or one more than the largest label.
  int64_t num_classes() const { return num_classes_; }
  /// The encoded image of images()[i].
  std::vector<uint8_t> read(size_t i) const;
  /// "train.rec#12" for messages and lists.
  std::string name(size_t i) const;

 private:
  RecordFile() = default;
  /// The payload of the record at `offset`, split records joined; `what` names it in errors.
  std::vector<uint8_t> payload(uint64_t offset, const std::string& what) const;

  fs::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::vector<RecordImage> images_;
  int64_t num_classes_ = 0;
};

/// The people of a packed file for `select_balanced`: one per label, named by the label
/// (zero-padded, so name order is label order), its images the records' names.
std::vector<Identity> record_people(const RecordFile& records);

struct PackResult {
  int64_t images = 0, classes = 0;
  uint64_t bytes = 0;
};

/// Writes `data` (its files' bytes, unchanged) as `out` (.rec), the .idx beside it and a
/// `property` file in its folder, in insightface's layout: record 0, the images grouped by
/// class (labels kept), then one record per class giving its images' key range.
PackResult pack_records(const Dataset& data, const fs::path& out);

}  // namespace arcface
