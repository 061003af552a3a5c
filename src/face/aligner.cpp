#include "arcface/aligner.h"

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/fmt/fmt.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "arcface/dataset.h"
#include "arcface/error.h"
#include "arcface/image.h"
#include "arcface/image_cv.h"
#include "util/progress.h"

namespace arcface {

FaceAligner::FaceAligner(const AlignOptions& options)
    : options_(options), detector_(make_detector(options.detector)) {
  if (options_.width < 16 || options_.height < 16) {
    throw Error(fmt::format("aligned size {}x{} is too small", options_.width, options_.height));
  }
}

FaceAligner::Result FaceAligner::align(const cv::Mat& bgr) {
  Result r;
  const auto faces = detector_->detect(bgr);
  const int main = main_face(faces, bgr.size());
  if (main < 0) {
    r.crop = centre_crop(bgr, options_.width, options_.height);
  } else {
    r.face = faces[main];
    r.crop = options_.margin >= 0 ? crop_face(bgr, *r.face, options_.margin, options_.width)
                                  : align_face(bgr, *r.face, options_.width, options_.height);
  }
  if (options_.grayscale) cv::cvtColor(r.crop, r.crop, cv::COLOR_BGR2GRAY);
  return r;
}

AlignerPool::AlignerPool(const AlignOptions& options, int size) {
  for (int t = 0; t < std::max(1, size); ++t)
    free_.push_back(std::make_unique<FaceAligner>(options));
}

cv::Mat AlignerPool::crop(const cv::Mat& bgr, const std::string& name) {
  std::unique_ptr<FaceAligner> aligner;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    available_.wait(lock, [&] { return !free_.empty(); });
    aligner = std::move(free_.back());
    free_.pop_back();
  }
  // The aligner goes back to the pool however align() ends.
  std::optional<FaceAligner::Result> r;
  std::exception_ptr error;
  try {
    r = aligner->align(bgr);
  } catch (...) {
    error = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(aligner));
    if (r && !r->face) fallbacks_.push_back(name);
  }
  available_.notify_one();
  if (error) std::rethrow_exception(error);
  return r->crop;
}

std::vector<std::string> AlignerPool::fallbacks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto out = fallbacks_;
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

std::string landmarks_line(const std::string& path, const Face& f) {
  std::string line = fmt::format("{} {:.3f} {:.1f} {:.1f} {:.1f} {:.1f}", path, f.score, f.box.x,
                                 f.box.y, f.box.width, f.box.height);
  for (const auto& p : f.landmarks) line += fmt::format(" {:.1f} {:.1f}", p.x, p.y);
  return line;
}

// Lines of an earlier run's file, by image path (the first field).
std::map<std::string, std::string> read_lines(const fs::path& file) {
  std::map<std::string, std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    lines[line.substr(0, line.find(' '))] = line;
  }
  return lines;
}

void write_lines(const fs::path& file, const std::string& header,
                 const std::map<std::string, std::string>& lines) {
  std::string text = header;
  for (const auto& [path, line] : lines) text += line + "\n";
  const fs::path tmp = file.string() + ".tmp";
  std::ofstream(tmp) << text;
  fs::rename(tmp, file);
}

}  // namespace

AlignTreeResult align_tree(const fs::path& src, const fs::path& dst, const AlignOptions& options,
                           int threads, bool progress) {
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  if (!fs::is_directory(src, ec))
    throw Error(fmt::format("source '{}' is not a directory", src.string()));
  std::vector<std::string> images;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    if (entry.is_regular_file() && is_image_file(entry.path())) {
      images.push_back(fs::relative(entry.path(), src).string());
    }
  }
  std::sort(images.begin(), images.end());
  if (images.empty()) throw Error(fmt::format("no images under '{}'", src.string()));
  fs::create_directories(dst);
  auto landmarks = read_lines(dst / "landmarks.txt");
  auto failures = read_lines(dst / "failures.txt");

  AlignTreeResult result;
  result.images = static_cast<int64_t>(images.size());
  std::vector<std::string> todo;
  for (const auto& image : images) {
    if (fs::exists(dst / image) && (landmarks.count(image) || failures.count(image))) {
      ++result.skipped;
    } else {
      todo.push_back(image);
    }
  }
  // Detectors are built before the threads start, so a bad model fails at once.
  std::vector<std::unique_ptr<FaceAligner>> aligners;
  for (int t = 0; t < std::max(1, threads); ++t)
    aligners.push_back(std::make_unique<FaceAligner>(options));

  std::atomic<size_t> next{0}, done{0};
  std::mutex mutex;
  auto work = [&](FaceAligner& aligner) {
    for (size_t i; (i = next++) < todo.size();) {
      const std::string& rel = todo[i];
      std::string landmark_line, failure_line;
      try {
        const cv::Mat image = to_mat(read_image(src / rel, Color::BGR));
        const auto r = aligner.align(image);
        fs::create_directories((dst / rel).parent_path());
        if (!cv::imwrite((dst / rel).string(), r.crop, {cv::IMWRITE_JPEG_QUALITY, 95})) {
          throw Error(fmt::format("cannot write '{}'", (dst / rel).string()));
        }
        if (r.face) {
          landmark_line = landmarks_line(rel, *r.face);
        } else {
          failure_line = rel + " no_face centre_crop";
        }
      } catch (const std::exception& e) {  // Error, cv::Exception, c10::Error: this image only
        failure_line = rel + " unreadable " + e.what();
      }
      std::lock_guard<std::mutex> lock(mutex);
      if (!landmark_line.empty()) {
        landmarks[rel] = landmark_line;
        failures.erase(rel);
        ++result.aligned;
      } else if (failure_line.find(" no_face ") != std::string::npos) {
        failures[rel] = failure_line;
        ++result.fallbacks;
      } else {
        failures[rel] = failure_line;
        ++result.unreadable;
      }
      ++done;
    }
  };
  std::unique_ptr<Progress> bar;
  if (progress)
    bar = std::make_unique<Progress>("aligning", static_cast<int64_t>(todo.size()), "img");
  // The lists are written every few seconds, so an interrupted run keeps what it did.
  auto save = [&] {
    std::lock_guard<std::mutex> lock(mutex);
    write_lines(dst / "landmarks.txt",
                "# path score box_x box_y box_w box_h eyeL_x eyeL_y eyeR_x eyeR_y nose_x nose_y "
                "mouthL_x mouthL_y mouthR_x mouthR_y (source pixels; L/R = image left/right)\n",
                landmarks);
    write_lines(dst / "failures.txt", "# path reason\n", failures);
  };
  std::vector<std::thread> workers;
  for (auto& a : aligners) workers.emplace_back(work, std::ref(*a));
  auto last_save = std::chrono::steady_clock::now();
  while (done < todo.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (bar) bar->update(static_cast<int64_t>(done));
    if (std::chrono::steady_clock::now() - last_save > std::chrono::seconds(10)) {
      save();
      last_save = std::chrono::steady_clock::now();
    }
  }
  for (auto& w : workers) w.join();
  if (bar) bar->finish();
  save();
  result.seconds = since(start);
  return result;
}

}  // namespace arcface
