#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace arcface {

namespace fs = std::filesystem;

/// What made a gallery's embeddings. A gallery opened with a model whose fingerprint differs
/// is refused: embeddings of two models are not comparable.
struct GalleryModel {
  std::string network;       // iresnet18, mobilefacenet, ..., onnx
  std::string input;         // describe(preprocess)
  std::string weights_hash;  // FNV-1a 64 of the model file's bytes
  int64_t dim = 0;           // descriptor length
  std::string flip;          // none, concat or sum
  /// How to load it again (not part of the fingerprint): the file and, for models that do
  /// not describe themselves, the command-line description of their input.
  std::string path;
  nlohmann::json load_args = nlohmann::json::object();

  bool same_as(const GalleryModel& other) const;
  /// "iresnet18, 112x112 rgb ..., weights 1a2b..., 512-D, flip sum"
  std::string describe() const;
  nlohmann::json to_json() const;
  static GalleryModel from_json(const nlohmann::json& j);
};

struct Subject {
  int64_t id = 0;
  std::string name;
  nlohmann::json metadata = nlohmann::json::object();
  std::string created;
  int64_t faces = 0;
};

struct GalleryFace {
  int64_t id = 0, subject = 0;
  std::string source;      // the photo it came from
  std::vector<float> box;  // x, y, w, h in the photo; empty for aligned crops
  double score = 0;        // the detector's, 1 for aligned crops
  std::string added;
};

/// A face to enrol: its unit descriptor, where it came from, and its aligned crop (JPEG bytes,
/// kept so that `reembed` can run another model on it).
struct NewFace {
  std::vector<float> embedding;
  std::string source;
  std::vector<float> box;
  double score = 1;
  std::vector<uint8_t> crop_jpeg;
};

/// Scores of a subject for a probe: its mean descriptor (default), or the best of its faces.
/// On LFW with two faces enrolled per person (identify-eval --per-person 2, pretrained ONNX
/// model) the mean gave rank-1 99.12% against 99.05% and DIR at FAR 1e-3 78.41% against 75.29%.
enum class Aggregation { BestFace, Mean };

struct Match {
  int64_t subject = 0;
  std::string name;
  double score = 0;  // cosine similarity
  int64_t face = 0;  // the best face (BestFace)
};

struct GalleryOptions {
  /// Exact inner-product search below this many faces, HNSW (approximate) from it on. With
  /// Debian's FAISS (no AVX2) exact search of 100,000 faces takes 15 ms a probe, while HNSW
  /// takes minutes to build at every open and finds 30% of the true top 10 of random
  /// descriptors (bench_gallery): exact up to a million.
  int64_t hnsw_from = 1000000;
  int hnsw_m = 32, hnsw_ef_search = 128;
  Aggregation aggregation = Aggregation::Mean;
};

/// The longest subject name, in bytes of UTF-8.
constexpr size_t kMaxSubjectName = 256;
/// Why a subject name is refused, "" when it is fine: empty, longer than kMaxSubjectName bytes,
/// holding a control character (a NUL, a newline, ...) or not valid UTF-8.
std::string subject_name_problem(const std::string& name);

/// A persistent face gallery: one SQLite file (WAL) holding the model's fingerprint, subjects
/// and faces with their descriptors, which is the truth; a FAISS index over the faces is built
/// from it at open and kept in step with every change. Each change is one transaction,
/// committed before the call returns: a crash loses nothing that was acknowledged. One thread
/// uses a Gallery at a time (search() may rebuild the mean index); processes may share the file.
class Gallery {
 public:
  /// Creates a new gallery file for `model`; refuses to overwrite an existing one.
  static Gallery create(const fs::path& path, const GalleryModel& model,
                        GalleryOptions options = {});
  /// Opens a gallery; `model`, when given, must have its fingerprint (an Error says how they
  /// differ).
  static Gallery open(const fs::path& path, const std::optional<GalleryModel>& model = {},
                      GalleryOptions options = {});
  /// The model a gallery was made with, read without building its index.
  static GalleryModel stored_model(const fs::path& path);
  ~Gallery();
  Gallery(Gallery&&) noexcept;
  Gallery& operator=(Gallery&&) noexcept;

  const GalleryModel& model() const;
  const fs::path& path() const;

  /// A new subject; an existing name or one subject_name_problem refuses is an Error.
  int64_t add_subject(const std::string& name, const nlohmann::json& metadata = {});
  /// The subject of that name, created when missing.
  int64_t subject_id(const std::string& name, bool create = false);
  /// The subject of that name, if there is one.
  std::optional<int64_t> find_subject(const std::string& name) const;
  bool has_face(int64_t face) const;
  void rename_subject(const std::string& name, const std::string& new_name);
  /// Removes a subject and its faces.
  void remove_subject(const std::string& name);
  void remove_face(int64_t face);
  /// Adds faces to a subject in one transaction; returns their ids.
  std::vector<int64_t> add_faces(int64_t subject, const std::vector<NewFace>& faces);

  std::vector<Subject> subjects() const;
  std::vector<GalleryFace> faces(int64_t subject) const;
  int64_t face_count() const;

  /// The `k` best subjects for a unit descriptor, best first, each scoring >= threshold.
  std::vector<Match> search(const std::vector<float>& probe, int64_t k,
                            double threshold = -1) const;
  /// Which index answers searches: "exact (IndexFlatIP)" or "HNSW (M 32, efSearch 128)".
  std::string index_kind() const;

  /// Every face's stored crop (JPEG bytes) with its id, for re-embedding.
  std::vector<std::pair<int64_t, std::vector<uint8_t>>> crops() const;
  /// Replaces every descriptor (same face ids) and the model, in one transaction.
  void reembed(const GalleryModel& model,
               const std::vector<std::pair<int64_t, std::vector<float>>>& embeddings);

  /// Subjects with their faces and descriptors, as JSON.
  nlohmann::json export_json(bool with_embeddings) const;

 private:
  struct Impl;
  explicit Gallery(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace arcface
