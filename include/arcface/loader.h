#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <ATen/core/Tensor.h>

#include "arcface/image.h"

namespace arcface {

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;
  bool random_flip = false;
  bool random_crop = false;  // otherwise the centre crop
  double random_gray = 0;    // chance that a colour image is shown as a grayscale photo
  int64_t workers = 1;       // decoding threads
  bool cache = false;        // decode every image once, up front, and keep it
  bool progress = true;      // a progress bar while filling the cache
  bool pin_memory = false;   // batches in page-locked memory, for fast copies to a GPU
  uint64_t seed = 42;
  /// Data-parallel reading: each global batch of shards x batch_size images of the epoch's
  /// order is split into `shards` parts and this loader gives part `shard`, so the ranks
  /// together see what one process with the larger batch would. A last global batch that is
  /// not full is dropped.
  int64_t shards = 1, shard = 0;
};

/// A batch: images [B, C, H, W] float and, when the loader has labels, labels [B] int64.
/// `indices` are the positions of the images in the source.
struct Batch {
  at::Tensor images, labels;
  std::vector<int64_t> indices;
};

/// Decodes, augments and batches images in worker threads, a few batches ahead of the
/// consumer, so the network does not wait on JPEG decoding. The order of an epoch and every
/// random choice derive from (seed, epoch, position): the same seed gives the same batches
/// whatever the thread timing, and an epoch can be resumed at any batch.
class Loader {
 public:
  Loader(ImageSource source, std::vector<int64_t> labels, Preprocess preprocess,
         LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t size() const { return static_cast<int64_t>(source_.size()); }
  int64_t batches_per_epoch() const;
  /// Starts `epoch` at batch `first_batch`; the workers begin filling the queue.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  /// The next batch of the epoch in order, or nothing at its end. Rethrows a worker's error.
  std::optional<Batch> next();

 private:
  void stop_workers();
  void work();
  Batch make_batch(int64_t batch) const;
  /// Image i: the cached one, not copied, or decoded into `decoded`.
  const Image& image(size_t i, Image& decoded) const;

  ImageSource source_;
  std::vector<int64_t> labels_;
  Preprocess pre_;
  LoaderOptions options_;
  std::vector<Image> cache_;

  // The current epoch.
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;
  int64_t next_to_make_ = 0, next_to_give_ = 0, end_ = 0;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failed_;
  bool stopping_ = false;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::thread> workers_;
};

}  // namespace arcface
