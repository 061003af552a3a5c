#pragma once

// The face service's API, independent of its transport: photos in, faces, matches and gallery
// changes out as JSON. `arcface serve` puts it on HTTP (server.h).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arcface/batcher.h"
#include "arcface/decision.h"
#include "arcface/gallery.h"

namespace arcface {

namespace fs = std::filesystem;

/// A request the service refuses: the HTTP status, a short machine-readable code and a
/// message naming the value at fault.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, const std::string& message)
      : std::runtime_error(message), status(status), code(std::move(code)) {}
  int status;
  std::string code;
};

/// An image as a client sent it: its bytes and the name it gave (a file name, or "upload").
struct Upload {
  std::string name;
  std::string bytes;
};

struct ServiceOptions {
  int64_t max_upload_bytes = 10 << 20;
  /// Width times height a photo may declare; refused before its pixels are decoded.
  int64_t max_pixels = 4096 * 4096;
  /// Faces may be added from server-side files below this folder only; empty: not at all.
  fs::path images_root;
  /// /v1/verify says same person when the cosine score reaches its threshold (from `arcface
  /// eval`, at a FAR or the best accuracy); unset: it gives the score alone.
  std::optional<Decision> verify;
  /// The threshold of a search that names none (from `identify-eval` at a FAR); unset: none.
  std::optional<Decision> search;
  int64_t max_k = 100;
  /// Photos one request may carry (each is decoded before the batch runs).
  int64_t max_photos = 16;
};

/// The API over one gallery and the batcher that describes faces. Thread-safe: photos are
/// decoded on the calling thread, described by the batcher, and the gallery is changed and
/// searched under one lock.
class Service {
 public:
  Service(Gallery& gallery, Batcher& batcher, ServiceOptions options);

  nlohmann::json health() const;
  /// The faces of each photo with their descriptors.
  nlohmann::json embed(const std::vector<Upload>& photos);
  /// The main faces of two photos compared.
  nlohmann::json verify(const Upload& a, const Upload& b);

  nlohmann::json subjects() const;
  nlohmann::json create_subject(const std::string& name, const nlohmann::json& metadata);
  nlohmann::json rename_subject(const std::string& name, const std::string& new_name);
  nlohmann::json delete_subject(const std::string& name);
  nlohmann::json faces(const std::string& subject) const;
  /// Enrols the main face of each photo, or none of them: a photo without a face is refused.
  /// `paths` are server-side files below images_root. The subject is made when `create`.
  nlohmann::json add_faces(const std::string& subject, const std::vector<Upload>& photos,
                           const std::vector<std::string>& paths, bool create);
  nlohmann::json delete_face(int64_t face);
  /// The best `k` subjects (scoring at least `threshold`; NaN: the options' search decision,
  /// else none) for every face of a photo.
  nlohmann::json search(const Upload& photo, int64_t k, double threshold);
  /// The same for a descriptor the client computed with this model.
  nlohmann::json search(const std::vector<float>& descriptor, int64_t k, double threshold);

  int64_t max_upload_bytes() const { return options_.max_upload_bytes; }

  /// A decoded photo (BGR), after the size, pixel-count and format checks.
  cv::Mat decode(const Upload& photo) const;
  /// The file `relative` names below images_root; an ApiError for anything outside it.
  fs::path server_file(const std::string& relative) const;

 private:
  std::vector<std::vector<NewFace>> encode(const std::vector<Upload>& photos);
  nlohmann::json matches(const std::vector<float>& descriptor, int64_t k, double threshold);
  void check_k(int64_t k) const;
  /// subject_name_problem as a 400.
  void check_subject_name(const std::string& name) const;
  /// The threshold a search applies, and the decision it stands for in the answer.
  double search_threshold(double asked, nlohmann::json& answer) const;

  Gallery& gallery_;
  Batcher& batcher_;
  ServiceOptions options_;
  mutable std::mutex gallery_mutex_;
};

}  // namespace arcface
