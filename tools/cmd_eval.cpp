#include <spdlog/fmt/fmt.h>

#include "arcface/error.h"
#include "arcface/evaluate.h"
#ifdef ARCFACE_WITH_OPENCV
#include "arcface/aligner.h"
#include "arcface/image_cv.h"
#endif
#include "arcface/report.h"
#include "commands.h"
#include "model_args.h"

namespace arcface::cli {

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "LFW-style verification of a model on a pairs list");
  struct Args {
    ModelArgs model;
    std::string root, pairs, pairs_format = "auto", flip = "concat", out = "eval";
    int64_t batch_size = 64, workers = 1, folds = 0;
    bool skip_missing = false, no_progress = false;
    std::string preprocess = "none";
#ifdef ARCFACE_WITH_OPENCV
    AlignOptions align;
#endif
  };
  auto args = std::make_shared<Args>();
  args->model.add_to(cmd);
  cmd->add_option("--root", args->root, "image root the pairs' paths are relative to");
  cmd->add_option("--pairs", args->pairs,
                  "pairs.txt, lfw_test_pair.txt, an insightface .bin, or CFP's Split/FF or "
                  "Split/FP folder")
      ->required();
  cmd->add_option("--pairs-format", args->pairs_format, "auto, lfw, list, bin or cfp")
      ->capture_default_str();
  cmd->add_option("--flip", args->flip, "concat (seed 000), sum (insightface) or none")
      ->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "images per network batch")
      ->capture_default_str();
  cmd->add_option("--workers", args->workers, "decoding threads")->capture_default_str();
  cmd->add_option("--folds", args->folds, "evaluate only the first N folds (0: all)");
  cmd->add_option("--preprocess", args->preprocess,
                  "none (aligned crops), or detect and align raw images with dlib, yunet or mtcnn")
      ->capture_default_str();
#ifdef ARCFACE_WITH_OPENCV
  cmd->add_option("--margin", args->align.margin,
                  "with --preprocess: seed 002's crop mode (box plus margin) instead of the warp");
  cmd->add_option("--align-size", args->align.height, "with --preprocess: the aligned crop size")
      ->capture_default_str();
  add_detector_options(cmd, args->align.detector);
#endif
  cmd->add_flag("--skip-missing,--skip-bad", args->skip_missing,
                "drop the pairs of missing or damaged images (listed in the report)");
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->add_option("--out", args->out, "output directory")->capture_default_str();
  cmd->callback([args] {
    fmt::print("[1/4] Loading model...\n");
    Embedder embedder = args->model.load();
    fmt::print("      {}\n      input: {}; {}\n", embedder.description(),
               describe(embedder.preprocess()), to_string(embedder.precision()));

    fmt::print("[2/4] Pair verification...\n");
    PairList pairs = read_pairs(args->pairs, parse_pairs_format(args->pairs_format));
    if (args->folds > 0 && args->folds < pairs.num_folds) {
      pairs.keep_folds(static_cast<int32_t>(args->folds));
    }
    if (pairs.format != PairsFormat::Bin && args->root.empty()) {
      throw Error("--root is needed for a pairs file that names image paths");
    }
    fmt::print("      {} pairs ({} same, {} different), {} distinct images, {} format{}, {}\n",
               pairs.pairs.size(), pairs.positives(), pairs.pairs.size() - pairs.positives(),
               pairs.images.size(), to_string(pairs.format),
               pairs.protocol.empty() ? "" : " (" + pairs.protocol + ")",
               pairs.folds_from_file ? fmt::format("{} folds from the file", pairs.num_folds)
                                     : fmt::format("{} interleaved folds", pairs.num_folds));
    EvalOptions eo;
    eo.flip = parse_flip_mode(args->flip);
    eo.batch_size = args->batch_size;
    eo.workers = args->workers;
    eo.progress = !args->no_progress;
#ifdef ARCFACE_WITH_OPENCV
    std::shared_ptr<AlignerPool> aligners;
#endif
    std::string face_detection;
    if (args->preprocess != "none") {
#ifndef ARCFACE_WITH_OPENCV
      throw Error(
          fmt::format("--preprocess {}: detecting and aligning faces needs a build with "
                      "OpenCV; this one evaluates aligned crops only",
                      args->preprocess));
#else
      auto& a = args->align;
      a.detector.type = args->preprocess;
      a.width = a.height;
      aligners = std::make_shared<AlignerPool>(a, static_cast<int>(args->workers));
      eo.face_crop = [aligners](const Image& bgr, const std::string& name) {
        return from_mat(aligners->crop(to_mat(bgr), name));
      };
      face_detection = fmt::format(
          "{}, {} to {}x{}", args->preprocess,
          a.margin >= 0 ? fmt::format("box + margin {}", a.margin) : std::string("5-point warp"),
          a.width, a.height);
      fmt::print("      detecting and aligning faces: {}\n", face_detection);
#endif
    }
    const Verification run = verify_pair_list(embedder, pairs, args->root, eo, args->skip_missing);
    for (const auto& d : run.dropped) fmt::print("      dropped: {}\n", d.reason);
    if (run.skipped_pairs > 0) {
      fmt::print("      skipped {} pairs with {} missing or damaged images\n", run.skipped_pairs,
                 run.dropped.size());
    }
    const EvalResult& r = run.result;
    const auto& m = r.metrics;
    fmt::print(
        "      Processing complete: {} pairs, {} images in {:.1f}s ({:.1f} img/s with flips: {})\n",
        m.pairs, r.images, r.seconds, r.images / std::max(1e-9, r.seconds), args->flip);
    std::vector<std::string> no_face;
#ifdef ARCFACE_WITH_OPENCV
    if (aligners) {
      no_face = aligners->fallbacks();
      fmt::print("      no face found in {} images (centre crop used)\n", no_face.size());
    }
#endif

    fmt::print("[3/4] Computing accuracy...\n");
    if (pairs.num_folds > 1) {
      fmt::print("      {}-fold accuracy: {:.2f}% ± {:.2f}%\n", pairs.num_folds,
                 100 * m.accuracy_10fold_mean, 100 * m.accuracy_10fold_std);
    } else {
      fmt::print(
          "      Cross-validated accuracy: none (one fold leaves no pairs to choose "
          "its threshold on)\n");
    }
    fmt::print("      Best accuracy: {:.2f}% (threshold tuned on these pairs)\n",
               100 * m.accuracy_best);
    fmt::print("      Best threshold: {:.4f}\n", m.threshold_best);
    fmt::print(
        "      ROC AUC: {:.4f}  TAR@FAR=1e-3: {:.2f}%  TAR@FAR=1e-2: {:.2f}%  EER: {:.2f}%\n",
        m.roc_auc, 100 * m.tar_at_far_1e3, 100 * m.tar_at_far_1e2, 100 * m.eer);
    for (const auto& t : m.at_far) {
      fmt::print(
          "      Threshold at FAR {:g}: {:.4f} (TAR {:.2f}%, {} of {} different pairs pass{})\n",
          t.far, t.threshold, 100 * t.tar, t.false_accepts, t.negatives,
          t.supported ? "" : "; too few of them to show this rate");
    }

    fmt::print("[4/4] Similarity distribution analysis...\n");
    fmt::print("      Same person (positive): {:.4f} ± {:.4f}\n", m.pos.mean, m.pos.std);
    fmt::print("      Different persons (negative): {:.4f} ± {:.4f}\n", m.neg.mean, m.neg.std);
    fmt::print("      Discriminative margin: {:.4f}\n", m.margin);

    const EvalSummary s = eval_summary(embedder, run, args->root, eo.flip, face_detection, no_face);
    write_eval_report(args->out, run.pairs, r.scores, m, s);
    fmt::print("Report: {}/report.md (metrics.json, pair_scores.csv, roc.png, score_hist.png)\n",
               args->out);
  });
}

}  // namespace arcface::cli
