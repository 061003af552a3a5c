#include "arcface/evaluate.h"

#include <torch/torch.h>

#include <chrono>

#include "arcface/error.h"
#include "arcface/loader.h"
#include "util/progress.h"

namespace arcface {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
}  // namespace

at::Tensor embed_images(Embedder& embedder, ImageSource source, const EvalOptions& options,
                        EmbedTiming* timing) {
  const auto start = Clock::now();
  LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.shuffle = false;
  lo.workers = options.workers;
  Loader loader(std::move(source), {}, embedder.preprocess(), lo);
  loader.start_epoch(0);

  EmbedTiming t;
  auto descriptors = torch::empty({loader.size(), embedder.dim(options.flip)});
  std::unique_ptr<Progress> progress;
  if (options.progress) progress = std::make_unique<Progress>("embedding", loader.size(), "img");
  int64_t done = 0;
  for (;;) {
    const auto wait_start = Clock::now();
    auto batch = loader.next();
    t.wait_seconds += since(wait_start);
    if (!batch) break;
    const auto net_start = Clock::now();
    auto d = embedder.descriptors(batch->images, options.flip);
    t.network_seconds += since(net_start);
    descriptors.index_copy_(0, torch::tensor(batch->indices, torch::kInt64), d);
    done += static_cast<int64_t>(batch->indices.size());
    if (progress) progress->update(done);
  }
  if (progress) progress->finish();
  t.seconds = since(start);
  if (timing) *timing = t;
  return descriptors;
}

EvalResult evaluate_pairs(Embedder& embedder, const PairList& pairs, const fs::path& root,
                          const EvalOptions& options) {
  const auto start = Clock::now();
  EmbedTiming timing;
  const auto descriptors =
      embed_images(embedder, ImageSource{root, pairs.images, pairs.encoded, options.face_crop},
                   options, &timing);

  EvalResult result;
  result.images = descriptors.size(0);
  result.network_seconds = timing.network_seconds;
  result.wait_seconds = timing.wait_seconds;
  const auto* data = descriptors.data_ptr<float>();
  const int64_t dim = descriptors.size(1);
  std::vector<bool> same;
  std::vector<int32_t> folds;
  for (const auto& p : pairs.pairs) {
    const float* a = data + p.a * dim;
    const float* b = data + p.b * dim;
    double dot = 0;
    for (int64_t k = 0; k < dim; ++k) dot += static_cast<double>(a[k]) * b[k];
    result.scores.push_back(dot);
    same.push_back(p.same);
    folds.push_back(p.fold);
  }
  result.metrics = verification_metrics(result.scores, same, folds, pairs.num_folds);
  result.seconds = since(start);
  return result;
}

}  // namespace arcface
