#pragma once

// Many callers, one network: requests for faces queue up and run through the model together,
// which on a CPU costs far less per image than one image at a time.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "arcface/face_encoder.h"

namespace arcface {

struct BatcherOptions {
  /// At most this many photos per network run; 1 runs each request alone (no batching).
  int64_t max_batch = 16;
  /// How long the first photo of a batch waits for others to join it.
  std::chrono::microseconds max_wait{5000};
};

/// Runs a FaceEncoder on one thread of its own for any number of calling threads: each photo
/// waits at most `max_wait` for others, then all of them (up to `max_batch`) are detected,
/// aligned and described in one batch. The encoder is used by that thread alone.
class Batcher {
 public:
  /// `on_batch`, when given, hears the size of every batch run (for metrics).
  Batcher(FaceEncoder& encoder, BatcherOptions options, std::function<void(size_t)> on_batch = {});
  /// Finishes the photos already queued, then stops.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// The faces of a decoded photo (BGR), as FaceEncoder::encode gives them; thread-safe.
  std::future<std::vector<NewFace>> submit(cv::Mat photo, std::string source);
  std::vector<NewFace> encode(cv::Mat photo, std::string source) {
    return submit(std::move(photo), std::move(source)).get();
  }

  const BatcherOptions& options() const { return options_; }
  /// Why the encoder could not take this photo ("" when it can): see FaceEncoder::crop_problem.
  std::string crop_problem(const cv::Mat& photo) const { return encoder_.crop_problem(photo); }

 private:
  struct Job {
    cv::Mat photo;
    std::string source;
    std::promise<std::vector<NewFace>> done;
    std::chrono::steady_clock::time_point queued;
  };
  void run();

  FaceEncoder& encoder_;
  BatcherOptions options_;
  std::function<void(size_t)> on_batch_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace arcface
