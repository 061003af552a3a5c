#pragma once

#include <filesystem>
#include <functional>
#include <vector>

#include "arcface/embedder.h"
#include "arcface/metrics.h"
#include "arcface/pairs.h"

namespace arcface {

struct EvalOptions {
  FlipMode flip = FlipMode::Concat;
  int64_t batch_size = 64;
  int64_t workers = 1;  // decoding threads
  bool progress = true;
  /// Detection and alignment of raw photos before the preprocessing (ImageSource::face_crop).
  FaceCrop face_crop;
};

struct EvalResult {
  std::vector<double> scores;  // one cosine similarity per pair, in list order
  VerificationMetrics metrics;
  int64_t images = 0;
  double seconds = 0;          // wall time of embedding and scoring
  double network_seconds = 0;  // time in the network
  double wait_seconds = 0;     // time the network waited for decoded images
};

/// Where embedding time went.
struct EmbedTiming {
  double seconds = 0, network_seconds = 0, wait_seconds = 0;
};

/// Unit descriptors [N, D] of every image of `source`, in order: decoded in worker threads,
/// run through the network in batches, combined with the mirror image as `options.flip` says.
at::Tensor embed_images(Embedder& embedder, ImageSource source, const EvalOptions& options,
                        EmbedTiming* timing = nullptr);

/// Embeds each distinct image of the list once (in batches, decoded in worker threads) and
/// scores every pair by the cosine similarity of their descriptors.
EvalResult evaluate_pairs(Embedder& embedder, const PairList& pairs, const fs::path& root,
                          const EvalOptions& options);

}  // namespace arcface
