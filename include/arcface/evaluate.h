#pragma once

#include <filesystem>
#include <functional>
#include <vector>

#include "arcface/embedder.h"
#include "arcface/metrics.h"
#include "arcface/pairs.h"
#include "arcface/report.h"

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

/// Makes sure every image of `pairs` can be used, decoding each once in `threads` threads:
/// missing, truncated and corrupt images are an Error naming them (with `hint` appended, which
/// says how to skip them), or with `skip` their pairs are dropped and the images returned.
std::vector<BadImage> check_pair_images(PairList& pairs, const fs::path& root, bool skip,
                                        int threads, const std::string& hint = "");

/// Embeds each distinct image of the list once (in batches, decoded in worker threads) and
/// scores every pair by the cosine similarity of their descriptors.
EvalResult evaluate_pairs(Embedder& embedder, const PairList& pairs, const fs::path& root,
                          const EvalOptions& options);

/// A verification run on a pair list, as `arcface eval` makes it.
struct Verification {
  PairList pairs;                 // the pairs evaluated
  std::vector<BadImage> dropped;  // images left out with their pairs (skip_bad_images)
  int64_t skipped_pairs = 0;
  EvalResult result;
};

/// Checks every image of `pairs` (check_pair_images: an Error naming the missing and damaged
/// ones, or with `skip_bad_images` their pairs dropped), then embeds and scores the pairs.
Verification verify_pair_list(Embedder& embedder, PairList pairs, const fs::path& root,
                              const EvalOptions& options, bool skip_bad_images);

/// The facts of a run for its report: model, input, precision, flip, drops, timing, machine.
/// `face_detection` describes how raw photos were aligned ("" for aligned crops) and
/// `no_face_images` those in which no face was found.
EvalSummary eval_summary(const Embedder& embedder, const Verification& run, const std::string& root,
                         FlipMode flip, const std::string& face_detection = "",
                         const std::vector<std::string>& no_face_images = {});

}  // namespace arcface
