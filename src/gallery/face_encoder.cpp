#include "arcface/face_encoder.h"

#include <algorithm>
#include <exception>
#include <thread>

#include <torch/torch.h>

#include <spdlog/fmt/fmt.h>
#include <opencv2/imgcodecs.hpp>

#include "arcface/align.h"
#include "arcface/error.h"
#include "arcface/image_cv.h"

namespace arcface {

FaceEncoder::FaceEncoder(Embedder& embedder, FaceEncoderOptions options)
    : embedder_(embedder), options_(std::move(options)) {
  if (!options_.detector) return;
  const int threads = options_.detect_threads > 0
                          ? options_.detect_threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) detectors_.push_back(make_detector(*options_.detector));
}

FaceEncoder::~FaceEncoder() = default;

std::string FaceEncoder::crop_problem(const cv::Mat& photo) const {
  if (!detectors_.empty()) return "";
  // Aligned crops come at the model's size or a few times it (112 for a 64 model); a photo
  // outside that, or far from square, is not one.
  const int64_t input = embedder_.preprocess().input_size;
  const int64_t low = std::max<int64_t>(16, input / 2), high = 4 * std::max<int64_t>(input, 112);
  const int64_t w = photo.cols, h = photo.rows;
  if (std::min(w, h) >= low && std::max(w, h) <= high && 2 * std::min(w, h) >= std::max(w, h)) {
    return "";
  }
  return fmt::format(
      "the photo is {}x{}: without a face detector photos must be aligned face crops near the "
      "model's {}x{} input ({} to {} pixels a side, at most twice as long as wide); give a "
      "detector to find faces in photos",
      w, h, input, input, low, high);
}

std::vector<std::vector<float>> FaceEncoder::describe(const std::vector<cv::Mat>& crops) {
  std::vector<std::vector<float>> out;
  const auto batch = static_cast<size_t>(std::max<int64_t>(1, options_.batch_size));
  for (size_t begin = 0; begin < crops.size(); begin += batch) {
    const std::vector<cv::Mat> part(crops.begin() + begin,
                                    crops.begin() + std::min(crops.size(), begin + batch));
    const at::Tensor d = embedder_.embed(from_mats(part), options_.flip).contiguous();
    const float* p = d.data_ptr<float>();
    for (int64_t i = 0; i < d.size(0); ++i)
      out.emplace_back(p + i * d.size(1), p + (i + 1) * d.size(1));
  }
  return out;
}

std::vector<std::vector<NewFace>> FaceEncoder::encode(const std::vector<cv::Mat>& photos,
                                                      const std::vector<std::string>& sources) {
  // Detection runs single-threaded inside each detector: the photos are shared out among the
  // detectors, which keeps every core busy while the network waits.
  std::vector<std::vector<Face>> found(photos.size());
  if (!detectors_.empty()) {
    const size_t workers = std::min(detectors_.size(), photos.size());
    std::vector<std::exception_ptr> failed(workers);
    std::vector<std::thread> threads;
    for (size_t w = 0; w < workers; ++w) {
      threads.emplace_back([&, w] {
        try {
          for (size_t i = w; i < photos.size(); i += workers) {
            found[i] = detectors_[w]->detect(photos[i]);
          }
        } catch (...) {
          failed[w] = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : failed) {
      if (e) std::rethrow_exception(e);
    }
  }
  std::vector<std::vector<NewFace>> faces(photos.size());
  std::vector<cv::Mat> crops;
  std::vector<size_t> owner;
  for (size_t i = 0; i < photos.size(); ++i) {
    if (detectors_.empty()) {
      if (const auto problem = crop_problem(photos[i]); !problem.empty()) {
        throw Error(fmt::format("'{}': {}", sources[i], problem));
      }
      NewFace f;
      f.source = sources[i];
      faces[i].push_back(f);
      crops.push_back(photos[i]);
      owner.push_back(i);
      continue;
    }
    std::vector<Face> kept;
    if (options_.all_faces) {
      kept = found[i];
    } else if (const int main = main_face(found[i], photos[i].size()); main >= 0) {
      kept.push_back(found[i][main]);
    }
    for (const auto& face : kept) {
      NewFace f;
      f.source = sources[i];
      f.box = {face.box.x, face.box.y, face.box.width, face.box.height};
      f.score = face.score;
      faces[i].push_back(f);
      crops.push_back(align_face(photos[i], face));
      owner.push_back(i);
    }
  }
  const auto descriptors = describe(crops);
  std::vector<size_t> next(photos.size(), 0);
  for (size_t c = 0; c < crops.size(); ++c) {
    NewFace& f = faces[owner[c]][next[owner[c]]++];
    f.embedding = descriptors[c];
    cv::imencode(".jpg", crops[c], f.crop_jpeg, {cv::IMWRITE_JPEG_QUALITY, 95});
  }
  return faces;
}

std::vector<NewFace> FaceEncoder::encode(const cv::Mat& bgr, const std::string& source) {
  return encode(std::vector<cv::Mat>{bgr}, {source}).front();
}

}  // namespace arcface
