#include "arcface/gallery.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/utils/distances.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <mutex>
#include <unordered_map>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "arcface/names.h"

namespace arcface {

bool GalleryModel::same_as(const GalleryModel& o) const {
  return network == o.network && input == o.input && weights_hash == o.weights_hash &&
         dim == o.dim && flip == o.flip;
}

std::string GalleryModel::describe() const {
  return fmt::format("{}, {}, weights {}, {}-D, flip {}", network, input, weights_hash, dim, flip);
}

nlohmann::json GalleryModel::to_json() const {
  return {{"network", network}, {"input", input}, {"weights_hash", weights_hash}, {"dim", dim},
          {"flip", flip},       {"path", path},   {"load_args", load_args}};
}

GalleryModel GalleryModel::from_json(const nlohmann::json& j) {
  GalleryModel m;
  m.network = j.at("network").get<std::string>();
  m.input = j.at("input").get<std::string>();
  m.weights_hash = j.at("weights_hash").get<std::string>();
  m.dim = j.at("dim").get<int64_t>();
  m.flip = j.at("flip").get<std::string>();
  m.path = j.value("path", "");
  m.load_args = j.value("load_args", nlohmann::json::object());
  return m;
}

namespace {

// A process-wide FAISS setting, made once by the first gallery opened. Debian's FAISS is built
// without AVX2: its own loops score descriptors slowly, while the BLAS it calls from this many
// queries on (OpenBLAS) runs at the machine's speed. Exact search of 10,000 512-D faces took
// 4.0 ms per probe, now 0.8 (bench_gallery).
void search_exactly_through_blas() {
  static std::once_flag once;
  std::call_once(once, [] { faiss::distance_compute_blas_threshold = 1; });
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

/// One prepared statement; bind with bind(), read rows with step() and the column getters.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, const fs::path& file) : db_(db), file_(file) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK) fail(sql);
  }
  ~Statement() { sqlite3_finalize(s_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
  Statement& bind(int i, double v) { return check(sqlite3_bind_double(s_, i, v)); }
  Statement& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Statement& bind_blob(int i, const void* data, size_t bytes) {
    return check(sqlite3_bind_blob(s_, i, data, static_cast<int>(bytes), SQLITE_TRANSIENT));
  }
  /// True while there is a row.
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail(sqlite3_sql(s_));
    return false;
  }
  /// Runs to the end and makes the statement ready for new bindings.
  void run() {
    while (step()) {
    }
    sqlite3_reset(s_);
  }
  int64_t integer(int c) const { return sqlite3_column_int64(s_, c); }
  double real(int c) const { return sqlite3_column_double(s_, c); }
  std::string text(int c) const {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  template <class T>
  std::vector<T> blob(int c) const {
    const auto* p = static_cast<const T*>(sqlite3_column_blob(s_, c));
    const size_t n = static_cast<size_t>(sqlite3_column_bytes(s_, c)) / sizeof(T);
    return p ? std::vector<T>(p, p + n) : std::vector<T>();
  }

 private:
  Statement& check(int rc) {
    if (rc != SQLITE_OK) fail(sqlite3_sql(s_));
    return *this;
  }
  [[noreturn]] void fail(const std::string& sql) {
    throw Error(fmt::format("gallery '{}': {} (in: {})", file_.string(), sqlite3_errmsg(db_), sql));
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  fs::path file_;
};

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects(
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, metadata TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS faces(
  id INTEGER PRIMARY KEY, subject INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
  source TEXT NOT NULL, box TEXT NOT NULL, score REAL NOT NULL, embedding BLOB NOT NULL,
  crop BLOB, added TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS faces_subject ON faces(subject);
)";

constexpr int64_t kFormatVersion = 1;

}  // namespace

struct Gallery::Impl {
  fs::path path;
  sqlite3* db = nullptr;
  GalleryModel model;
  GalleryOptions options;
  // The index and what it needs to answer in subjects, kept in step with SQLite.
  std::unique_ptr<faiss::IndexIDMap2> index;
  bool hnsw = false;
  std::unordered_map<int64_t, int64_t> face_subject;
  std::map<int64_t, std::string> names;
  std::unordered_map<std::string, int64_t> by_name;
  std::map<int64_t, std::pair<std::vector<double>, int64_t>> sums;  // per subject, for Mean
  mutable std::unique_ptr<faiss::IndexIDMap2> means;                // rebuilt when stale
  mutable bool means_stale = true;

  ~Impl() {
    if (db) sqlite3_close(db);
  }

  void exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string text = message ? message : "?";
      sqlite3_free(message);
      throw Error(fmt::format("gallery '{}': {}", path.string(), text));
    }
  }

  /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
  /// Writers begin IMMEDIATE (the write lock at once); a plain BEGIN reads one snapshot.
  template <class F>
  void transaction(F&& body, const char* begin = "BEGIN IMMEDIATE") {
    exec(begin);
    try {
      body();
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  // The fingerprint and format version from the meta table.
  void read_model() {
    std::string stored, version;
    try {
      Statement s(db, "SELECT key, value FROM meta", path);
      while (s.step()) {
        if (s.text(0) == "model") stored = s.text(1);
        if (s.text(0) == "format_version") version = s.text(1);
      }
    } catch (const Error&) {
      throw Error(fmt::format("'{}' is not an arcface gallery", path.string()));
    }
    if (stored.empty()) throw Error(fmt::format("'{}' is not an arcface gallery", path.string()));
    if (version != std::to_string(kFormatVersion)) {
      throw Error(fmt::format("gallery '{}' has format version {}, this program reads {}",
                              path.string(), version, kFormatVersion));
    }
    model = GalleryModel::from_json(nlohmann::json::parse(stored));
  }

  void connect(int flags) {
    if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
      throw Error(fmt::format("cannot open gallery '{}': {}", path.string(),
                              db ? sqlite3_errmsg(db) : "out of memory"));
    }
    sqlite3_busy_timeout(db, 5000);
    // WAL: readers never block the writer; NORMAL sync loses nothing on a process crash.
    exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
  }

  std::unique_ptr<faiss::IndexIDMap2> new_index(int64_t faces) const {
    faiss::Index* inner = nullptr;
    if (faces >= options.hnsw_from) {
      auto* h = new faiss::IndexHNSWFlat(static_cast<int>(model.dim), options.hnsw_m,
                                         faiss::METRIC_INNER_PRODUCT);
      h->hnsw.efSearch = options.hnsw_ef_search;
      inner = h;
    } else {
      inner = new faiss::IndexFlatIP(model.dim);
    }
    auto map = std::make_unique<faiss::IndexIDMap2>(inner);
    map->own_fields = true;
    return map;
  }

  // SQLite is the truth: the index, subject names and sums are made from it, in one read
  // transaction so that another process's writes are seen whole or not at all.
  void load() {
    transaction([&] { read_all(); }, "BEGIN");
  }

  void read_all() {
    names.clear();
    by_name.clear();
    Statement subjects(db, "SELECT id, name FROM subjects", path);
    while (subjects.step()) {
      names[subjects.integer(0)] = subjects.text(1);
      by_name[subjects.text(1)] = subjects.integer(0);
    }
    Statement count(db, "SELECT COUNT(*) FROM faces", path);
    count.step();
    const int64_t n = count.integer(0);
    index = new_index(n);
    hnsw = n >= options.hnsw_from;
    face_subject.clear();
    sums.clear();
    std::vector<float> all;
    std::vector<faiss::Index::idx_t> ids;
    all.reserve(static_cast<size_t>(n * model.dim));
    Statement faces(db, "SELECT id, subject, embedding FROM faces", path);
    while (faces.step()) {
      const auto e = faces.blob<float>(2);
      if (static_cast<int64_t>(e.size()) != model.dim) {
        throw Error(fmt::format("gallery '{}': face {} has a {}-value descriptor, the model {}",
                                path.string(), faces.integer(0), e.size(), model.dim));
      }
      ids.push_back(faces.integer(0));
      face_subject[faces.integer(0)] = faces.integer(1);
      add_to_sum(faces.integer(1), e, 1);
      all.insert(all.end(), e.begin(), e.end());
    }
    if (!ids.empty())
      index->add_with_ids(static_cast<faiss::Index::idx_t>(ids.size()), all.data(), ids.data());
    means_stale = true;
  }

  void add_to_sum(int64_t subject, const std::vector<float>& e, int sign) {
    auto& [sum, count] = sums[subject];
    sum.resize(e.size(), 0.0);
    for (size_t i = 0; i < e.size(); ++i) sum[i] += sign * static_cast<double>(e[i]);
    count += sign;
    if (count <= 0) sums.erase(subject);
    means_stale = true;
  }

  void write_meta() {
    Statement s(db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", path);
    s.bind(1, std::string("model")).bind(2, model.to_json().dump()).run();
    Statement v(db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", path);
    v.bind(1, std::string("format_version")).bind(2, std::to_string(kFormatVersion)).run();
  }

  void remove_from_index(const std::vector<int64_t>& faces) {
    if (faces.empty()) return;
    if (hnsw) {  // HNSW cannot remove: rebuilt from SQLite
      load();
      return;
    }
    std::vector<faiss::Index::idx_t> ids(faces.begin(), faces.end());
    faiss::IDSelectorArray selector(ids.size(), ids.data());
    index->remove_ids(selector);
    for (auto f : faces) face_subject.erase(f);
  }

  void rebuild_means() const {
    means = std::make_unique<faiss::IndexIDMap2>(new faiss::IndexFlatIP(model.dim));
    means->own_fields = true;
    std::vector<float> all;
    std::vector<faiss::Index::idx_t> ids;
    for (const auto& [subject, s] : sums) {
      double norm = 0;
      for (double v : s.first) norm += v * v;
      norm = std::sqrt(std::max(norm, 1e-24));
      for (double v : s.first) all.push_back(static_cast<float>(v / norm));
      ids.push_back(subject);
    }
    if (!ids.empty())
      means->add_with_ids(static_cast<faiss::Index::idx_t>(ids.size()), all.data(), ids.data());
    means_stale = false;
  }
};

Gallery::Gallery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gallery::~Gallery() = default;
Gallery::Gallery(Gallery&&) noexcept = default;
Gallery& Gallery::operator=(Gallery&&) noexcept = default;

Gallery Gallery::create(const fs::path& path, const GalleryModel& model, GalleryOptions options) {
  search_exactly_through_blas();
  std::error_code ec;
  if (fs::exists(path, ec)) {
    throw Error(fmt::format("gallery '{}' exists already (open it, or remove the file first)",
                            path.string()));
  }
  if (model.dim < 1) throw Error("gallery: the model's descriptor length is unknown");
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->model = model;
  impl->options = options;
  impl->connect(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  impl->transaction([&] {
    impl->exec(kSchema);
    impl->write_meta();
  });
  impl->load();
  return Gallery(std::move(impl));
}

Gallery Gallery::open(const fs::path& path, const std::optional<GalleryModel>& model,
                      GalleryOptions options) {
  search_exactly_through_blas();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw Error(fmt::format("gallery '{}' not found (make one with arcface gallery create)",
                            path.string()));
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  impl->connect(SQLITE_OPEN_READWRITE);
  impl->read_model();
  if (model && !model->same_as(impl->model)) {
    throw Error(fmt::format(
        "gallery '{}' holds descriptors of another model:\n  gallery: {}\n  model:   {}\n"
        "Use the gallery's model, or re-embed it with this one (arcface gallery reembed)",
        path.string(), impl->model.describe(), model->describe()));
  }
  impl->load();
  return Gallery(std::move(impl));
}

GalleryModel Gallery::stored_model(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw Error(fmt::format("gallery '{}' not found (make one with arcface gallery create)",
                            path.string()));
  }
  Impl impl;
  impl.path = path;
  impl.connect(SQLITE_OPEN_READONLY);
  impl.read_model();
  return impl.model;
}

const GalleryModel& Gallery::model() const { return impl_->model; }
const fs::path& Gallery::path() const { return impl_->path; }

std::string subject_name_problem(const std::string& name) {
  if (name.empty()) return "a subject needs a name";
  if (name.size() > kMaxSubjectName) {
    return fmt::format("a subject name of {} bytes is longer than the {} allowed", name.size(),
                       kMaxSubjectName);
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7F) {
      return fmt::format("subject name '{}' holds the control character 0x{:02X} at byte {}",
                         name.substr(0, std::min<size_t>(i, 40)), c, i);
    }
  }
  if (const int64_t bad = invalid_utf8_at(name); bad >= 0) {
    return fmt::format("subject name is not valid UTF-8 (byte {})", bad);
  }
  return "";
}

int64_t Gallery::add_subject(const std::string& name, const nlohmann::json& metadata) {
  if (const auto problem = subject_name_problem(name); !problem.empty()) throw Error(problem);
  if (impl_->by_name.count(name)) throw Error(fmt::format("subject '{}' exists already", name));
  int64_t id = 0;
  impl_->transaction([&] {
    Statement s(impl_->db, "INSERT INTO subjects(name, metadata, created) VALUES (?, ?, ?)",
                impl_->path);
    s.bind(1, name)
        .bind(2, (metadata.is_null() ? nlohmann::json::object() : metadata).dump())
        .bind(3, now_utc())
        .run();
    id = sqlite3_last_insert_rowid(impl_->db);
  });
  impl_->names[id] = name;
  impl_->by_name[name] = id;
  return id;
}

int64_t Gallery::subject_id(const std::string& name, bool create) {
  if (auto found = impl_->by_name.find(name); found != impl_->by_name.end()) return found->second;
  if (create) return add_subject(name);
  throw Error(fmt::format("unknown subject '{}' in gallery '{}'", name, impl_->path.string()));
}

std::optional<int64_t> Gallery::find_subject(const std::string& name) const {
  if (auto found = impl_->by_name.find(name); found != impl_->by_name.end()) return found->second;
  return std::nullopt;
}

bool Gallery::has_face(int64_t face) const { return impl_->face_subject.count(face) > 0; }

void Gallery::rename_subject(const std::string& name, const std::string& new_name) {
  const int64_t id = subject_id(name);
  if (const auto problem = subject_name_problem(new_name); !problem.empty()) throw Error(problem);
  if (impl_->by_name.count(new_name)) {
    throw Error(fmt::format("subject '{}' exists already", new_name));
  }
  impl_->transaction([&] {
    Statement s(impl_->db, "UPDATE subjects SET name = ? WHERE id = ?", impl_->path);
    s.bind(1, new_name).bind(2, id).run();
  });
  impl_->names[id] = new_name;
  impl_->by_name.erase(name);
  impl_->by_name[new_name] = id;
}

void Gallery::remove_subject(const std::string& name) {
  const int64_t id = subject_id(name);
  std::vector<int64_t> faces;
  impl_->transaction([&] {
    Statement f(impl_->db, "SELECT id FROM faces WHERE subject = ?", impl_->path);
    f.bind(1, id);
    while (f.step()) faces.push_back(f.integer(0));
    Statement s(impl_->db, "DELETE FROM subjects WHERE id = ?", impl_->path);
    s.bind(1, id).run();
  });
  impl_->names.erase(id);
  impl_->by_name.erase(name);
  impl_->sums.erase(id);
  impl_->means_stale = true;
  impl_->remove_from_index(faces);
}

void Gallery::remove_face(int64_t face) {
  int64_t subject = 0;
  std::vector<float> embedding;
  impl_->transaction([&] {
    Statement f(impl_->db, "SELECT subject, embedding FROM faces WHERE id = ?", impl_->path);
    f.bind(1, face);
    if (!f.step()) {
      throw Error(fmt::format("no face {} in gallery '{}'", face, impl_->path.string()));
    }
    subject = f.integer(0);
    embedding = f.blob<float>(1);
    Statement d(impl_->db, "DELETE FROM faces WHERE id = ?", impl_->path);
    d.bind(1, face).run();
  });
  impl_->add_to_sum(subject, embedding, -1);
  impl_->remove_from_index({face});
}

std::vector<int64_t> Gallery::add_faces(int64_t subject, const std::vector<NewFace>& faces) {
  if (!impl_->names.count(subject)) throw Error(fmt::format("no subject with id {}", subject));
  for (const auto& f : faces) {
    if (static_cast<int64_t>(f.embedding.size()) != impl_->model.dim) {
      throw Error(fmt::format("a {}-value descriptor for a gallery of {}-D descriptors ({})",
                              f.embedding.size(), impl_->model.dim, f.source));
    }
  }
  std::vector<int64_t> ids;
  impl_->transaction([&] {
    Statement s(impl_->db,
                "INSERT INTO faces(subject, source, box, score, embedding, crop, added) VALUES "
                "(?, ?, ?, ?, ?, ?, ?)",
                impl_->path);
    for (const auto& f : faces) {
      s.bind(1, subject)
          .bind(2, f.source)
          .bind(3, nlohmann::json(f.box).dump())
          .bind(4, f.score)
          .bind_blob(5, f.embedding.data(), f.embedding.size() * sizeof(float))
          .bind_blob(6, f.crop_jpeg.data(), f.crop_jpeg.size())
          .bind(7, now_utc());
      s.run();
      ids.push_back(sqlite3_last_insert_rowid(impl_->db));
    }
  });
  // The index follows only once SQLite has the faces.
  std::vector<float> all;
  for (size_t i = 0; i < faces.size(); ++i) {
    all.insert(all.end(), faces[i].embedding.begin(), faces[i].embedding.end());
    impl_->face_subject[ids[i]] = subject;
    impl_->add_to_sum(subject, faces[i].embedding, 1);
  }
  std::vector<faiss::Index::idx_t> fids(ids.begin(), ids.end());
  if (!fids.empty()) {
    impl_->index->add_with_ids(static_cast<faiss::Index::idx_t>(fids.size()), all.data(),
                               fids.data());
  }
  return ids;
}

std::vector<Subject> Gallery::subjects() const {
  std::vector<Subject> out;
  Statement s(impl_->db,
              "SELECT s.id, s.name, s.metadata, s.created, COUNT(f.id) FROM subjects s LEFT JOIN "
              "faces f ON f.subject = s.id GROUP BY s.id ORDER BY s.name",
              impl_->path);
  while (s.step()) {
    out.push_back(
        {s.integer(0), s.text(1), nlohmann::json::parse(s.text(2)), s.text(3), s.integer(4)});
  }
  return out;
}

std::vector<GalleryFace> Gallery::faces(int64_t subject) const {
  std::vector<GalleryFace> out;
  Statement s(impl_->db,
              "SELECT id, subject, source, box, score, added FROM faces WHERE subject = ? ORDER "
              "BY id",
              impl_->path);
  s.bind(1, subject);
  while (s.step()) {
    out.push_back({s.integer(0), s.integer(1), s.text(2),
                   nlohmann::json::parse(s.text(3)).get<std::vector<float>>(), s.real(4),
                   s.text(5)});
  }
  return out;
}

int64_t Gallery::face_count() const { return static_cast<int64_t>(impl_->index->ntotal); }

std::vector<Match> Gallery::search(const std::vector<float>& probe, int64_t k,
                                   double threshold) const {
  auto& g = *impl_;
  if (static_cast<int64_t>(probe.size()) != g.model.dim) {
    throw Error(fmt::format("a {}-value probe descriptor for a gallery of {}-D descriptors",
                            probe.size(), g.model.dim));
  }
  std::vector<Match> out;
  if (k < 1 || g.index->ntotal == 0) return out;
  if (g.options.aggregation == Aggregation::Mean) {
    if (g.means_stale) g.rebuild_means();
    const int64_t n = std::min<int64_t>(k, g.means->ntotal);
    std::vector<float> d(n);
    std::vector<faiss::Index::idx_t> ids(n);
    g.means->search(1, probe.data(), n, d.data(), ids.data());
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || d[i] < threshold) continue;
      out.push_back({ids[i], g.names.at(ids[i]), d[i], 0});
    }
    return out;
  }
  // Best face per subject: widen the face search until k subjects are found.
  for (int64_t want = std::min<int64_t>(g.index->ntotal, 8 * k);;
       want = std::min<int64_t>(g.index->ntotal, 4 * want)) {
    std::vector<float> d(want);
    std::vector<faiss::Index::idx_t> ids(want);
    g.index->search(1, probe.data(), want, d.data(), ids.data());
    out.clear();
    std::map<int64_t, size_t> seen;
    for (int64_t i = 0; i < want && static_cast<int64_t>(out.size()) < k; ++i) {
      if (ids[i] < 0 || d[i] < threshold) continue;
      const int64_t subject = g.face_subject.at(ids[i]);
      if (seen.count(subject)) continue;
      seen[subject] = out.size();
      out.push_back({subject, g.names.at(subject), d[i], ids[i]});
    }
    const bool below = want > 0 && d[want - 1] < threshold;
    if (static_cast<int64_t>(out.size()) >= k || want >= g.index->ntotal || below) break;
  }
  return out;
}

std::string Gallery::index_kind() const {
  if (impl_->hnsw) {
    return fmt::format("HNSW (M {}, efSearch {})", impl_->options.hnsw_m,
                       impl_->options.hnsw_ef_search);
  }
  return "exact (IndexFlatIP)";
}

std::vector<std::pair<int64_t, std::vector<uint8_t>>> Gallery::crops() const {
  std::vector<std::pair<int64_t, std::vector<uint8_t>>> out;
  Statement s(impl_->db, "SELECT id, crop, source FROM faces ORDER BY id", impl_->path);
  while (s.step()) {
    auto crop = s.blob<uint8_t>(1);
    if (crop.empty()) {
      throw Error(fmt::format("gallery '{}': face {} ('{}') has no stored crop to re-embed",
                              impl_->path.string(), s.integer(0), s.text(2)));
    }
    out.emplace_back(s.integer(0), std::move(crop));
  }
  return out;
}

void Gallery::reembed(const GalleryModel& model,
                      const std::vector<std::pair<int64_t, std::vector<float>>>& embeddings) {
  auto& g = *impl_;
  const GalleryModel before = g.model;
  try {
    g.transaction([&] {
      Statement count(g.db, "SELECT COUNT(*) FROM faces", g.path);
      count.step();
      if (count.integer(0) != static_cast<int64_t>(embeddings.size())) {
        throw Error(
            fmt::format("reembed: {} descriptors for the {} faces of gallery '{}' (was "
                        "a face added meanwhile?)",
                        embeddings.size(), count.integer(0), g.path.string()));
      }
      Statement s(g.db, "UPDATE faces SET embedding = ? WHERE id = ?", g.path);
      for (const auto& [id, e] : embeddings) {
        if (static_cast<int64_t>(e.size()) != model.dim) {
          throw Error(fmt::format("reembed: face {} has a {}-value descriptor, the model {}", id,
                                  e.size(), model.dim));
        }
        s.bind_blob(1, e.data(), e.size() * sizeof(float)).bind(2, id);
        s.run();
      }
      g.model = model;
      g.write_meta();
    });
  } catch (...) {
    g.model = before;  // rolled back: the old model still describes the faces
    throw;
  }
  g.load();
}

nlohmann::json Gallery::export_json(bool with_embeddings) const {
  nlohmann::json out = {{"model", impl_->model.to_json()}, {"subjects", nlohmann::json::array()}};
  std::map<int64_t, std::vector<float>> embeddings;
  if (with_embeddings) {
    Statement s(impl_->db, "SELECT id, embedding FROM faces", impl_->path);
    while (s.step()) embeddings[s.integer(0)] = s.blob<float>(1);
  }
  for (const auto& subject : subjects()) {
    nlohmann::json faces = nlohmann::json::array();
    for (const auto& f : this->faces(subject.id)) {
      nlohmann::json face = {{"id", f.id},
                             {"source", f.source},
                             {"box", f.box},
                             {"score", f.score},
                             {"added", f.added}};
      if (with_embeddings) face["embedding"] = embeddings[f.id];
      faces.push_back(face);
    }
    out["subjects"].push_back({{"id", subject.id},
                               {"name", subject.name},
                               {"metadata", subject.metadata},
                               {"created", subject.created},
                               {"faces", faces}});
  }
  return out;
}

}  // namespace arcface
