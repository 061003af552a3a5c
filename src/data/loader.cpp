#include "arcface/loader.h"

#include <torch/torch.h>

#include <atomic>
#include <numeric>
#include <optional>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "arcface/error.h"
#include "util/progress.h"
#include "util/rng.h"

namespace arcface {

Loader::Loader(ImageSource source, std::vector<int64_t> labels, Preprocess preprocess,
               LoaderOptions options)
    : source_(std::move(source)),
      labels_(std::move(labels)),
      pre_(std::move(preprocess)),
      options_(options) {
  if (source_.size() == 0) throw Error("loader: no images");
  if (!labels_.empty() && labels_.size() != source_.size()) {
    throw Error(fmt::format("loader: {} images but {} labels", source_.size(), labels_.size()));
  }
  if (options_.batch_size < 1) {
    throw Error(fmt::format("loader: batch size {} must be >= 1", options_.batch_size));
  }
  if (options_.shards < 1 || options_.shard < 0 || options_.shard >= options_.shards) {
    throw Error(
        fmt::format("loader: shard {} of {} is not valid", options_.shard, options_.shards));
  }
  options_.workers = std::max<int64_t>(1, options_.workers);
  if (!options_.cache) return;

  // Decode everything once, in parallel; the first error (naming its file) is rethrown.
  cache_.resize(source_.size());
  std::atomic<size_t> next{0}, done{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto decode = [&] {
    for (size_t i; (i = next++) < source_.size();) {
      try {
        cache_[i] = source_.load(i, pre_);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = source_.size();
      }
      ++done;
    }
  };
  std::optional<Progress> progress;
  if (options_.progress) progress.emplace("decoding", static_cast<int64_t>(source_.size()), "img");
  std::vector<std::thread> threads;
  for (int64_t t = 0; t < std::max<int64_t>(2, options_.workers); ++t) threads.emplace_back(decode);
  while (done < source_.size() && !error) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (progress) progress->update(static_cast<int64_t>(done));
  }
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  if (progress) progress->finish();
}

Loader::~Loader() { stop_workers(); }

int64_t Loader::batches_per_epoch() const {
  const int64_t n = size(), b = options_.batch_size * options_.shards;
  return options_.drop_last || options_.shards > 1 ? n / b : (n + b - 1) / b;
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop_workers();
  epoch_ = epoch;
  order_.resize(source_.size());
  std::iota(order_.begin(), order_.end(), 0);
  if (options_.shuffle) Rng(mix_seed(options_.seed, static_cast<uint64_t>(epoch))).shuffle(order_);
  end_ = batches_per_epoch();
  next_to_make_ = next_to_give_ = std::min(first_batch, end_);
  ready_.clear();
  failed_.clear();
  stopping_ = false;
  for (int64_t t = 0; t < options_.workers; ++t) workers_.emplace_back([this] { work(); });
}

void Loader::work() {
  const int64_t ahead = 2 * options_.workers + 1;  // batches prepared before they are asked for
  for (;;) {
    int64_t batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || next_to_make_ >= end_ || next_to_make_ < next_to_give_ + ahead;
      });
      if (stopping_ || next_to_make_ >= end_) return;
      batch = next_to_make_++;
    }
    try {
      Batch made = make_batch(batch);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(batch, std::move(made));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      failed_.emplace(batch, std::current_exception());
    }
    changed_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_to_give_ >= end_) return std::nullopt;
  const int64_t want = next_to_give_;
  changed_.wait(lock, [&] { return ready_.count(want) || failed_.count(want); });
  if (auto f = failed_.find(want); f != failed_.end()) {
    auto error = f->second;
    lock.unlock();
    stop_workers();
    std::rethrow_exception(error);
  }
  Batch batch = std::move(ready_.at(want));
  ready_.erase(want);
  ++next_to_give_;
  lock.unlock();
  changed_.notify_all();
  return batch;
}

const Image& Loader::image(size_t i, Image& decoded) const {
  if (!cache_.empty()) return cache_[i];
  decoded = source_.load(i, pre_);
  return decoded;
}

Batch Loader::make_batch(int64_t batch) const {
  const int64_t begin = (batch * options_.shards + options_.shard) * options_.batch_size;
  const int64_t count = std::min<int64_t>(options_.batch_size, size() - begin);
  const int64_t c = pre_.channels(), s = pre_.input_size, load = pre_.load_size();
  Batch out;
  const auto host = torch::TensorOptions().pinned_memory(options_.pin_memory);
  out.images = torch::empty({count, c, s, s}, host.dtype(torch::kFloat32));
  if (!labels_.empty()) out.labels = torch::empty({count}, host.dtype(torch::kInt64));
  const uint64_t epoch_seed = mix_seed(options_.seed, static_cast<uint64_t>(epoch_));
  for (int64_t k = 0; k < count; ++k) {
    const int64_t position = begin + k;
    const int64_t index = order_[position];
    Rng rng(mix_seed(epoch_seed, static_cast<uint64_t>(position)));
    int x = static_cast<int>((load - s) / 2), y = x;
    if (options_.random_crop && load > s) {
      x = static_cast<int>(rng.below(load - s + 1));
      y = static_cast<int>(rng.below(load - s + 1));
    }
    const bool flip = options_.random_flip && rng.uniform() < 0.5;
    // Drawn only when asked for, so the crops and flips of other runs stay as they were.
    const bool gray = options_.random_gray > 0 && c == 3 && rng.uniform() < options_.random_gray;
    Image decoded;
    const Image& face = image(index, decoded);
    float* dst = out.images.data_ptr<float>() + k * c * s * s;
    write_tensor(gray ? desaturate(face, pre_.color) : face, pre_, x, y, flip, dst);
    if (!labels_.empty()) out.labels.data_ptr<int64_t>()[k] = labels_[index];
    out.indices.push_back(index);
  }
  return out;
}

}  // namespace arcface
