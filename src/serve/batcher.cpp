#include "arcface/batcher.h"

namespace arcface {

Batcher::Batcher(FaceEncoder& encoder, BatcherOptions options, std::function<void(size_t)> on_batch)
    : encoder_(encoder), options_(options), on_batch_(std::move(on_batch)) {
  options_.max_batch = std::max<int64_t>(1, options_.max_batch);
  worker_ = std::thread([this] { run(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

std::future<std::vector<NewFace>> Batcher::submit(cv::Mat photo, std::string source) {
  Job job{std::move(photo), std::move(source), {}, std::chrono::steady_clock::now()};
  auto done = job.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_all();
  return done;
}

void Batcher::run() {
  const auto max_batch = static_cast<size_t>(options_.max_batch);
  for (;;) {
    std::vector<Job> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to do
      // The oldest photo waits for company until its deadline or a full batch.
      const auto deadline = queue_.front().queued + options_.max_wait;
      if (max_batch > 1) {
        wake_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= max_batch; });
      }
      while (!queue_.empty() && batch.size() < max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<cv::Mat> photos;
    std::vector<std::string> sources;
    for (const auto& job : batch) {
      photos.push_back(job.photo);
      sources.push_back(job.source);
    }
    if (on_batch_) on_batch_(batch.size());
    try {
      auto faces = encoder_.encode(photos, sources);
      for (size_t i = 0; i < batch.size(); ++i) batch[i].done.set_value(std::move(faces[i]));
    } catch (...) {
      // One photo's failure is its own: the batch runs again a photo at a time.
      for (auto& job : batch) {
        try {
          job.done.set_value(encoder_.encode(std::vector<cv::Mat>{job.photo}, {job.source})[0]);
        } catch (...) {
          job.done.set_exception(std::current_exception());
        }
      }
    }
  }
}

}  // namespace arcface
