#include "arcface/evaluate.h"

#include <torch/torch.h>

#include <chrono>

#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "arcface/loader.h"
#include "arcface/system.h"
#include "util/progress.h"

namespace arcface {

namespace {
using Clock = std::chrono::steady_clock;
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

std::vector<BadImage> check_pair_images(PairList& pairs, const fs::path& root, bool skip,
                                        int threads, const std::string& hint) {
  auto bad = find_bad_images(ImageSource{root, pairs.images, pairs.encoded, {}, {}, {}}, threads);
  if (bad.empty()) return bad;
  if (!skip) {
    std::string list;
    for (size_t i = 0; i < bad.size() && i < 10; ++i) list += "\n  " + bad[i].reason;
    if (bad.size() > 10) list += fmt::format("\n  ... and {} more", bad.size() - 10);
    throw Error(fmt::format("{} images named by '{}' cannot be used:{}{}", bad.size(),
                            pairs.source.string(), list, hint.empty() ? "" : "\n" + hint));
  }
  std::vector<std::string> names;
  for (const auto& b : bad) names.push_back(b.name);
  pairs.drop_images(names);
  return bad;
}

EvalResult evaluate_pairs(Embedder& embedder, const PairList& pairs, const fs::path& root,
                          const EvalOptions& options) {
  const auto start = Clock::now();
  EmbedTiming timing;
  const auto descriptors = embed_images(
      embedder, ImageSource{root, pairs.images, pairs.encoded, options.face_crop, {}, {}}, options,
      &timing);

  EvalResult result;
  result.images = descriptors.size(0);
  result.network_seconds = timing.network_seconds;
  result.wait_seconds = timing.wait_seconds;
  const auto* data = descriptors.data_ptr<float>();
  const int64_t dim = descriptors.size(1);
  std::vector<bool> same;
  std::vector<int32_t> folds;
  for (const auto& p : pairs.pairs) {
    result.scores.push_back(Embedder::match(data + p.a * dim, data + p.b * dim, dim));
    same.push_back(p.same);
    folds.push_back(p.fold);
  }
  result.metrics = verification_metrics(result.scores, same, folds, pairs.num_folds);
  result.seconds = since(start);
  return result;
}

Verification verify_pair_list(Embedder& embedder, PairList pairs, const fs::path& root,
                              const EvalOptions& options, bool skip_bad_images) {
  Verification v;
  const auto listed = static_cast<int64_t>(pairs.pairs.size());
  v.dropped = check_pair_images(pairs, root, skip_bad_images,
                                static_cast<int>(std::max<int64_t>(2, options.workers)),
                                "(--skip-missing evaluates the pairs without them)");
  v.skipped_pairs = listed - static_cast<int64_t>(pairs.pairs.size());
  if (pairs.pairs.empty()) {
    throw Error(fmt::format("no pair of '{}' is left to evaluate", pairs.source.string()));
  }
  v.result = evaluate_pairs(embedder, pairs, root, options);
  v.pairs = std::move(pairs);
  return v;
}

EvalSummary eval_summary(const Embedder& embedder, const Verification& run, const std::string& root,
                         FlipMode flip, const std::string& face_detection,
                         const std::vector<std::string>& no_face_images) {
  const auto sys = system_info();
  EvalSummary s;
  s.model = embedder.description();
  s.root = root;
  s.flip = to_string(flip);
  s.preprocess = describe(embedder.preprocess());
  s.precision = to_string(embedder.precision());
  s.images = run.result.images;
  s.skipped_pairs = run.skipped_pairs;
  for (const auto& d : run.dropped) s.dropped_images.push_back(d.reason);
  s.face_detection = face_detection;
  s.no_face_images = no_face_images;
  s.seconds = run.result.seconds;
  s.network_seconds = run.result.network_seconds;
  s.wait_seconds = run.result.wait_seconds;
  s.system = fmt::format("{} ({}), {} threads, {}", sys.cpu_model, sys.cpu_flags, sys.threads,
                         sys.allocator);
  return s;
}

}  // namespace arcface
