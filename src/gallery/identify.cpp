#include "arcface/identify.h"

#include <torch/torch.h>

#include <unistd.h>

#include <chrono>
#include <map>

#include <spdlog/fmt/fmt.h>

#include "arcface/dataset.h"
#include "arcface/error.h"
#include "arcface/evaluate.h"
#include "arcface/image_cv.h"
#include "util/progress.h"

namespace arcface {

namespace {
using Clock = std::chrono::steady_clock;

std::vector<float> row(const at::Tensor& d, int64_t i) {
  const float* p = d.data_ptr<float>() + i * d.size(1);
  return {p, p + d.size(1)};
}
}  // namespace

EnrolResult enrol_tree(Gallery& gallery, FaceEncoder& encoder, const fs::path& root,
                       bool progress) {
  const auto start = Clock::now();
  const auto people = scan_identities(root);
  EnrolResult r;
  int64_t total = 0;
  for (const auto& p : people) total += static_cast<int64_t>(p.images.size());
  std::unique_ptr<Progress> bar;
  if (progress) bar = std::make_unique<Progress>("enrolling", total, "img");
  for (const auto& person : people) {
    std::vector<cv::Mat> photos;
    for (const auto& image : person.images)
      photos.push_back(to_mat(read_image(root / image, Color::BGR)));
    const auto faces = encoder.encode(photos, person.images);
    std::vector<NewFace> all;
    for (const auto& f : faces) {
      r.without_face += f.empty();
      all.insert(all.end(), f.begin(), f.end());
    }
    const int64_t subject = gallery.subject_id(person.name, true);
    gallery.add_faces(subject, all);
    r.photos += static_cast<int64_t>(photos.size());
    r.faces += static_cast<int64_t>(all.size());
    ++r.subjects;
    if (bar) bar->update(r.photos);
  }
  if (bar) bar->finish();
  r.seconds = since(start);
  return r;
}

std::vector<IdentificationRun> evaluate_identification(Embedder& embedder, const fs::path& root,
                                                       int64_t per_person, FlipMode flip,
                                                       const std::vector<Aggregation>& aggregations,
                                                       int64_t workers, bool progress) {
  const auto split = identification_split(root, per_person);
  ImageSource source;
  source.root = root;
  for (const auto& [image, person] : split.gallery) source.names.push_back(image);
  for (const auto& [image, person] : split.genuine) source.names.push_back(image);
  for (const auto& image : split.impostors) source.names.push_back(image);
  EvalOptions eo;
  eo.flip = flip;
  eo.workers = workers;
  eo.progress = progress;
  const auto t0 = Clock::now();
  const at::Tensor d = embed_images(embedder, source, eo).contiguous();
  const double embed_seconds = since(t0);

  // A real gallery, in a temporary file: the search path users get.
  const fs::path file = fs::temp_directory_path() /
                        fmt::format("arcface_identification_{}.db", static_cast<long>(getpid()));
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(file.string() + suffix);
  GalleryModel model;
  model.network = embedder.network();
  model.input = describe(embedder.preprocess());
  model.weights_hash = "-";
  model.dim = d.size(1);
  model.flip = to_string(flip);
  std::vector<IdentificationRun> runs;
  try {
    std::map<int64_t, int64_t> person_of_subject;
    {
      Gallery gallery = Gallery::create(file, model);
      std::map<int64_t, std::vector<NewFace>> by_person;
      int64_t i = 0;
      for (const auto& [image, person] : split.gallery) {
        NewFace f;
        f.source = image;
        f.embedding = row(d, i++);
        by_person[person].push_back(std::move(f));
      }
      for (auto& [person, faces] : by_person) {
        const int64_t subject = gallery.add_subject(split.people[person]);
        person_of_subject[subject] = person;
        gallery.add_faces(subject, faces);
      }
    }
    for (const Aggregation aggregation : aggregations) {
      GalleryOptions go;
      go.aggregation = aggregation;
      const Gallery gallery = Gallery::open(file, {}, go);
      IdentificationRun run;
      run.embed_seconds = embed_seconds;
      run.index = gallery.index_kind();
      run.aggregation = aggregation;
      const auto t1 = Clock::now();
      int64_t i = static_cast<int64_t>(split.gallery.size());
      std::vector<Ranking> rankings;
      std::vector<int64_t> truth;
      for (const auto& [image, person] : split.genuine) {
        Ranking r;
        for (const auto& m : gallery.search(row(d, i++), 5)) {
          r.people.push_back(person_of_subject.at(m.subject));
          r.scores.push_back(m.score);
        }
        rankings.push_back(std::move(r));
        truth.push_back(person);
      }
      std::vector<double> impostor_best;
      for (size_t k = 0; k < split.impostors.size(); ++k) {
        const auto m = gallery.search(row(d, i++), 1);
        impostor_best.push_back(m.empty() ? -1.0 : m[0].score);
      }
      run.search_seconds = since(t1);
      run.metrics = identification_metrics(rankings, truth, impostor_best,
                                           static_cast<int64_t>(split.people.size()));
      runs.push_back(run);
    }
  } catch (...) {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(file.string() + suffix);
    throw;
  }
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(file.string() + suffix);
  return runs;
}

}  // namespace arcface
