#include "arcface/service.h"

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "arcface/image.h"
#include "arcface/image_cv.h"

namespace arcface {

namespace {

using nlohmann::json;

json face_json(const NewFace& f) {
  return {{"box", f.box.empty() ? json(nullptr) : json(f.box)}, {"detection_score", f.score}};
}

json subject_json(const Subject& s) {
  return {{"name", s.name}, {"faces", s.faces}, {"created", s.created}, {"metadata", s.metadata}};
}

ApiError unknown_subject(const std::string& name) {
  return {404, "unknown_subject", fmt::format("no subject '{}' in the gallery", name)};
}

}  // namespace

Service::Service(Gallery& gallery, Batcher& batcher, ServiceOptions options)
    : gallery_(gallery), batcher_(batcher), options_(std::move(options)) {}

cv::Mat Service::decode(const Upload& photo) const {
  const auto size = static_cast<int64_t>(photo.bytes.size());
  if (size > options_.max_upload_bytes) {
    throw ApiError(413, "too_large",
                   fmt::format("'{}' has {} bytes, more than the {} allowed", photo.name, size,
                               options_.max_upload_bytes));
  }
  const auto* data = reinterpret_cast<const uint8_t*>(photo.bytes.data());
  const ImageSize declared = encoded_size(data, photo.bytes.size());
  if (declared.empty()) {
    throw ApiError(415, "not_an_image", fmt::format("'{}' is not a JPEG or PNG image", photo.name));
  }
  if (static_cast<int64_t>(declared.width) * declared.height > options_.max_pixels) {
    throw ApiError(413, "too_many_pixels",
                   fmt::format("'{}' is {}x{}, more than the {} pixels allowed", photo.name,
                               declared.width, declared.height, options_.max_pixels));
  }
  try {
    return to_mat(decode_bytes(data, photo.bytes.size(), Color::BGR, photo.name));
  } catch (const Error& e) {
    throw ApiError(422, "damaged_image", e.what());
  }
}

fs::path Service::server_file(const std::string& relative) const {
  if (options_.images_root.empty()) {
    throw ApiError(403, "server_paths_off",
                   "faces from server paths are off (the service was started without "
                   "--images-root)");
  }
  const fs::path given(relative);
  // Paths stay below the root: no absolute paths, no "..", and no link leading out of it.
  if (relative.empty() || given.is_absolute() ||
      std::any_of(given.begin(), given.end(), [](const fs::path& p) { return p == ".."; })) {
    throw ApiError(403, "path_outside_root",
                   fmt::format("path '{}' is not a relative path below the images root", relative));
  }
  std::error_code ec;
  const fs::path root = fs::canonical(options_.images_root, ec);
  if (ec || root.empty()) {
    throw ApiError(500, "images_root_gone",
                   "the images root the service was started with cannot be read");
  }
  const fs::path file = fs::canonical(root / given, ec);
  if (ec || !fs::is_regular_file(file)) {
    throw ApiError(404, "no_such_file",
                   fmt::format("no file '{}' below the images root", relative));
  }
  const auto [r, f] = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
  if (r != root.end()) {
    throw ApiError(403, "path_outside_root",
                   fmt::format("path '{}' leads outside the images root", relative));
  }
  return file;
}

std::vector<std::vector<NewFace>> Service::encode(const std::vector<Upload>& photos) {
  // Each photo is decoded before any is described: the count bounds what a request holds.
  if (static_cast<int64_t>(photos.size()) > options_.max_photos) {
    throw ApiError(413, "too_many_photos",
                   fmt::format("{} photos in one request, more than the {} allowed", photos.size(),
                               options_.max_photos));
  }
  std::vector<std::future<std::vector<NewFace>>> pending;
  std::vector<cv::Mat> decoded;
  for (const auto& p : photos) {
    decoded.push_back(decode(p));
    if (const auto problem = batcher_.crop_problem(decoded.back()); !problem.empty()) {
      throw ApiError(422, "not_a_face_crop", fmt::format("'{}': {}", p.name, problem));
    }
  }
  for (size_t i = 0; i < photos.size(); ++i) {
    pending.push_back(batcher_.submit(std::move(decoded[i]), photos[i].name));
  }
  std::vector<std::vector<NewFace>> faces;
  for (auto& p : pending) faces.push_back(p.get());
  return faces;
}

json Service::health() const {
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  int64_t stored = 0;
  const auto subjects = gallery_.subjects();
  for (const auto& s : subjects) stored += s.faces;
  return {{"status", "ok"},
          {"model", gallery_.model().describe()},
          {"dim", gallery_.model().dim},
          {"subjects", subjects.size()},
          {"faces", stored},
          {"indexed", gallery_.face_count()},
          {"index", gallery_.index_kind()},
          {"max_batch", batcher_.options().max_batch}};
}

json Service::embed(const std::vector<Upload>& photos) {
  const auto faces = encode(photos);
  json out = json::array();
  for (size_t i = 0; i < photos.size(); ++i) {
    json found = json::array();
    for (const auto& f : faces[i]) {
      json j = face_json(f);
      j["embedding"] = f.embedding;
      found.push_back(j);
    }
    out.push_back({{"photo", photos[i].name}, {"faces", found}});
  }
  return {{"dim", gallery_.model().dim}, {"photos", out}};
}

json Service::verify(const Upload& a, const Upload& b) {
  const auto faces = encode({a, b});
  for (size_t i = 0; i < 2; ++i) {
    if (faces[i].empty()) {
      throw ApiError(422, "no_face", fmt::format("no face found in '{}'", (i ? b : a).name));
    }
  }
  const auto& x = faces[0].front().embedding;
  const auto& y = faces[1].front().embedding;
  const double score = Embedder::match(x.data(), y.data(), static_cast<int64_t>(x.size()));
  json out = {
      {"score", score}, {"a", face_json(faces[0].front())}, {"b", face_json(faces[1].front())}};
  if (options_.verify) {
    out["threshold"] = options_.verify->threshold;
    out["same"] = score >= options_.verify->threshold;
    out["far"] = options_.verify->far;
    out["decision"] = options_.verify->meaning;
  }
  return out;
}

json Service::subjects() const {
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  json out = json::array();
  for (const auto& s : gallery_.subjects()) out.push_back(subject_json(s));
  return {{"subjects", out}};
}

void Service::check_subject_name(const std::string& name) const {
  if (const auto problem = subject_name_problem(name); !problem.empty()) {
    throw ApiError(400, "bad_request", problem);
  }
}

json Service::create_subject(const std::string& name, const json& metadata) {
  check_subject_name(name);
  if (!metadata.is_null() && !metadata.is_object()) {
    throw ApiError(400, "bad_request", "\"metadata\" must be a JSON object");
  }
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  if (gallery_.find_subject(name)) {
    throw ApiError(409, "subject_exists", fmt::format("subject '{}' exists already", name));
  }
  gallery_.add_subject(name, metadata);
  return {{"name", name}, {"faces", 0}};
}

json Service::rename_subject(const std::string& name, const std::string& new_name) {
  check_subject_name(new_name);
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  if (!gallery_.find_subject(name)) throw unknown_subject(name);
  if (gallery_.find_subject(new_name)) {
    throw ApiError(409, "subject_exists", fmt::format("subject '{}' exists already", new_name));
  }
  gallery_.rename_subject(name, new_name);
  return {{"name", new_name}, {"was", name}};
}

json Service::delete_subject(const std::string& name) {
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  if (!gallery_.find_subject(name)) throw unknown_subject(name);
  gallery_.remove_subject(name);
  return {{"deleted", name}};
}

json Service::faces(const std::string& subject) const {
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  const auto id = gallery_.find_subject(subject);
  if (!id) throw unknown_subject(subject);
  json out = json::array();
  for (const auto& f : gallery_.faces(*id)) {
    out.push_back({{"id", f.id},
                   {"source", f.source},
                   {"box", f.box.empty() ? json(nullptr) : json(f.box)},
                   {"detection_score", f.score},
                   {"added", f.added}});
  }
  return {{"subject", subject}, {"faces", out}};
}

json Service::add_faces(const std::string& subject, const std::vector<Upload>& photos,
                        const std::vector<std::string>& paths, bool create) {
  check_subject_name(subject);
  std::vector<Upload> all = photos;
  for (const auto& p : paths) {
    const fs::path file = server_file(p);
    if (static_cast<int64_t>(fs::file_size(file)) > options_.max_upload_bytes) {
      throw ApiError(
          413, "too_large",
          fmt::format("'{}' is larger than the {} bytes allowed", p, options_.max_upload_bytes));
    }
    const auto bytes = read_file_bytes(file);
    all.push_back({p, std::string(bytes.begin(), bytes.end())});
  }
  if (all.empty()) {
    throw ApiError(400, "no_image", "no photo given (upload one, or name a server path)");
  }
  if (!create) {
    std::lock_guard<std::mutex> lock(gallery_mutex_);
    if (!gallery_.find_subject(subject)) throw unknown_subject(subject);
  }
  const auto found = encode(all);
  std::vector<NewFace> faces;
  for (size_t i = 0; i < all.size(); ++i) {
    if (found[i].empty()) {
      throw ApiError(422, "no_face",
                     fmt::format("no face found in '{}': nothing was added", all[i].name));
    }
    faces.push_back(found[i].front());
  }
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  const auto existing = gallery_.find_subject(subject);
  if (!existing && !create) throw unknown_subject(subject);
  const int64_t id = existing ? *existing : gallery_.add_subject(subject);
  const auto ids = gallery_.add_faces(id, faces);
  json out = json::array();
  for (size_t i = 0; i < ids.size(); ++i) {
    json j = face_json(faces[i]);
    j["id"] = ids[i];
    j["source"] = faces[i].source;
    out.push_back(j);
  }
  return {{"subject", subject}, {"faces", out}};
}

json Service::delete_face(int64_t face) {
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  if (!gallery_.has_face(face)) {
    throw ApiError(404, "unknown_face", fmt::format("no face {} in the gallery", face));
  }
  gallery_.remove_face(face);
  return {{"deleted", face}};
}

void Service::check_k(int64_t k) const {
  if (k < 1 || k > options_.max_k) {
    throw ApiError(400, "bad_request", fmt::format("k {} is not within 1..{}", k, options_.max_k));
  }
}

json Service::matches(const std::vector<float>& descriptor, int64_t k, double threshold) {
  std::lock_guard<std::mutex> lock(gallery_mutex_);
  json out = json::array();
  for (const auto& m : gallery_.search(descriptor, k, threshold)) {
    out.push_back({{"subject", m.name}, {"score", m.score}});
  }
  return out;
}

double Service::search_threshold(double asked, json& answer) const {
  if (!std::isnan(asked)) {
    answer["threshold"] = asked;
    return asked;
  }
  if (!options_.search) return -1;
  answer["threshold"] = options_.search->threshold;
  answer["far"] = options_.search->far;
  answer["decision"] = options_.search->meaning;
  return options_.search->threshold;
}

json Service::search(const Upload& photo, int64_t k, double threshold) {
  check_k(k);
  json out = {{"photo", photo.name}};
  threshold = search_threshold(threshold, out);
  const auto found = encode({photo}).front();
  if (found.empty()) {
    throw ApiError(422, "no_face", fmt::format("no face found in '{}'", photo.name));
  }
  json faces = json::array();
  for (const auto& f : found) {
    json j = face_json(f);
    j["matches"] = matches(f.embedding, k, threshold);
    faces.push_back(j);
  }
  out["faces"] = faces;
  return out;
}

json Service::search(const std::vector<float>& descriptor, int64_t k, double threshold) {
  check_k(k);
  const int64_t dim = gallery_.model().dim;
  if (static_cast<int64_t>(descriptor.size()) != dim) {
    throw ApiError(422, "wrong_dimension",
                   fmt::format("a {}-value descriptor for a gallery of {}-D descriptors ({})",
                               descriptor.size(), dim, gallery_.model().network));
  }
  double norm = 0;
  for (float v : descriptor) norm += static_cast<double>(v) * v;
  if (!(norm > 0) || !std::isfinite(norm)) {
    throw ApiError(422, "bad_descriptor", "the descriptor is zero or not finite");
  }
  std::vector<float> unit(descriptor);
  for (float& v : unit) v = static_cast<float>(v / std::sqrt(norm));
  json out = json::object();
  threshold = search_threshold(threshold, out);
  out["faces"] = json::array({{{"box", nullptr}, {"matches", matches(unit, k, threshold)}}});
  return out;
}

}  // namespace arcface
