#include "arcface/trainer.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <spdlog/fmt/fmt.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "arcface/backbone.h"
#include "arcface/checkpoint.h"
#include "arcface/dataset.h"
#include "arcface/distill.h"
#include "arcface/error.h"
#include "arcface/evaluate.h"
#include "arcface/head.h"
#include "arcface/learner.h"
#include "arcface/loader.h"
#include "arcface/loss.h"
#include "arcface/optim.h"
#include "arcface/system.h"
#include "arcface/weights.h"
#include "util/progress.h"
#include "util/rng.h"

namespace arcface {

namespace {

std::atomic<bool> stop_requested{false};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

BackboneOptions backbone_options(const TrainConfig& c) {
  return BackboneOptions(canonical_backbone_name(c.model.backbone))
      .input_size(c.data.input_size)
      .channels(c.data.channels)
      .embedding_dim(c.model.embedding_size)
      .use_se(c.model.use_se)
      .dropout(c.model.dropout);
}

Preprocess preprocess_of(const TrainConfig& c) {
  Preprocess p;
  p.input_size = c.data.input_size;
  p.color = c.data.channels == 1 ? Color::Gray : Color::RGB;
  p.resize = c.data.resize;
  p.mean = c.data.mean;
  p.std = c.data.std;
  return p;
}

// What a teacher that does not describe itself is fed: the student's input unless the
// distill.teacher_* keys say otherwise.
ForeignModel teacher_input(const TrainConfig& c) {
  const auto& d = c.distill;
  ForeignModel f{preprocess_of(c), d.teacher_backbone};
  auto& p = f.preprocess;
  if (d.teacher_input_size > 0) {
    p.input_size = d.teacher_input_size;
    p.resize = 0;
  }
  if (!d.teacher_color.empty()) p.color = parse_color(d.teacher_color);
  if (!d.teacher_mean.empty()) p.mean = d.teacher_mean;
  if (!d.teacher_std.empty()) p.std = d.teacher_std;
  return f;
}

MarginHeadOptions head_options(const TrainConfig& c) {
  return MarginHeadOptions(c.model.embedding_size, c.model.num_classes)
      .type(parse_margin_type(c.model.metric))
      .scale(c.model.scale)
      .margin(c.model.margin)
      .easy_margin(c.model.easy_margin);
}

LrSchedule schedule_of(const TrainConfig& c) {
  LrSchedule s;
  s.type = c.training.lr_schedule;
  s.base_lr = c.training.lr;
  s.step = c.training.lr_step;
  s.milestones = c.training.lr_milestones;
  s.decay = c.training.lr_decay;
  s.min_lr = c.training.lr_min;
  s.warmup_epochs = c.training.warmup_epochs;
  s.total_epochs = c.training.max_epoch;
  s.check();
  return s;
}

/// Refuses to resume into a different network, head or optimizer.
void check_resumable(const Checkpoint& ck, const BackboneImpl& backbone, const MarginHeadImpl& head,
                     const std::string& optimizer, const fs::path& path) {
  const auto& a = ck.backbone;
  const auto& b = backbone.options();
  auto differ = [&](const std::string& what, const auto& in_file, const auto& asked) {
    throw Error(
        fmt::format("cannot resume from '{}': it was trained with {} = {}, the config asks "
                    "for {}",
                    path.string(), what, in_file, asked));
  };
  if (a.name() != b.name()) differ("model.backbone", a.name(), b.name());
  if (a.input_size() != b.input_size()) differ("data.input_size", a.input_size(), b.input_size());
  if (a.channels() != b.channels()) differ("data.channels", a.channels(), b.channels());
  if (a.embedding_dim() != b.embedding_dim()) {
    differ("model.embedding_size", a.embedding_dim(), b.embedding_dim());
  }
  if (a.use_se() != b.use_se()) differ("model.use_se", a.use_se(), b.use_se());
  const auto& h = head.options();
  if (ck.head.type() != h.type())
    differ("model.metric", to_string(ck.head.type()), to_string(h.type()));
  if (ck.head.num_classes() != h.num_classes()) {
    differ("model.num_classes", ck.head.num_classes(), h.num_classes());
  }
  if (ck.optimizer_type != optimizer) differ("training.optimizer", ck.optimizer_type, optimizer);
}

// The ranks on this machine: torchrun's LOCAL_WORLD_SIZE, or all of them for a loopback
// rendezvous.
int64_t local_ranks(const DistributedOptions& d) {
  if (const char* v = std::getenv("LOCAL_WORLD_SIZE")) return std::max(1, std::atoi(v));
  const bool loopback = d.master.rfind("127.", 0) == 0 || d.master.rfind("localhost:", 0) == 0;
  return loopback ? d.world_size : 1;
}

// The other ranks stay quiet: rank 0 logs for the run.
std::shared_ptr<spdlog::logger> make_logger(const fs::path& dir, bool writer) {
  auto console = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  console->set_pattern("%v");
  if (!writer) {
    auto quiet = std::make_shared<spdlog::logger>("train", console);
    quiet->set_level(spdlog::level::warn);
    return quiet;
  }
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>((dir / "training.log").string());
  file->set_pattern("[%Y-%m-%d %H:%M:%S] %v");
  auto logger = std::make_shared<spdlog::logger>("train", spdlog::sinks_init_list{console, file});
  logger->flush_on(spdlog::level::info);
  return logger;
}

struct EpochStats {
  double loss_sum = 0, distill_sum = 0;
  int64_t correct = 0, seen = 0, batches = 0, hard = 0;
  double seconds = 0;       // training time, validation excluded
  double wait_seconds = 0;  // of which waiting for the loader

  nlohmann::json to_json() const {
    return {{"loss_sum", loss_sum}, {"distill_sum", distill_sum},  {"correct", correct},
            {"seen", seen},         {"batches", batches},          {"hard", hard},
            {"seconds", seconds},   {"wait_seconds", wait_seconds}};
  }
  static EpochStats from_json(const nlohmann::json& j) {
    EpochStats s;
    s.loss_sum = j.value("loss_sum", 0.0);
    s.distill_sum = j.value("distill_sum", 0.0);
    s.hard = j.value("hard", int64_t{0});
    s.correct = j.value("correct", int64_t{0});
    s.seen = j.value("seen", int64_t{0});
    s.batches = j.value("batches", int64_t{0});
    s.seconds = j.value("seconds", 0.0);
    s.wait_seconds = j.value("wait_seconds", 0.0);
    return s;
  }
};

// The epoch's statistics over all ranks (each rank counted its own images).
EpochStats summed(const EpochStats& s, DataParallel& ranks) {
  const auto t = ranks.sum({s.loss_sum, s.distill_sum, static_cast<double>(s.correct),
                            static_cast<double>(s.seen), static_cast<double>(s.hard)});
  EpochStats out = s;
  out.loss_sum = t[0];
  out.distill_sum = t[1];
  out.correct = static_cast<int64_t>(t[2]);
  out.seen = static_cast<int64_t>(t[3]);
  out.hard = static_cast<int64_t>(t[4]);
  return out;
}

// Whether an epoch's {metric, value, epoch} beats the best so far. With validation configured,
// validated epochs compete only with each other: a training accuracy never replaces a
// validated best, and the first validation replaces it.
bool beats(const nlohmann::json& candidate, const nlohmann::json& best) {
  if (best.empty()) return true;
  const bool validated = candidate.value("metric", "") != "train_accuracy";
  const bool best_validated = best.value("metric", "") != "train_accuracy";
  if (validated != best_validated) return validated;
  return candidate.value("value", -1.0) > best.value("value", -1.0);
}

}  // namespace

void request_training_stop() { stop_requested = true; }

TrainResult train(const TrainConfig& config, const TrainOptions& options) {
  stop_requested = false;
  const auto& tc = config.training;
  const auto& dist = options.distributed;
  dist.check();
  // Ranks sharing this machine share its cores.
  int64_t threads_wanted = tc.threads;
  if (threads_wanted == 0 && dist.enabled()) {
    const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
    threads_wanted = std::max<int64_t>(1, cores / local_ranks(dist));
  }
  const int threads = configure_threads(static_cast<int>(threads_wanted));
  const c10::Device device = parse_device(tc.device);
  const fs::path dir = config.paths.checkpoints_path;

  // The network, head, optimizer and schedule; each factory checks its own config keys.
  torch::manual_seed(tc.seed);  // the initial weights
  Learner learner(make_backbone(backbone_options(config)), MarginHead(head_options(config)),
                  LossOptions().type(parse_loss_type(config.loss.type)).gamma(config.loss.gamma),
                  {tc.optimizer, tc.lr, tc.momentum, tc.weight_decay}, device);
  learner.precision(parse_precision(tc.precision));
  Backbone& backbone = learner.backbone();
  MarginHead& head = learner.head();
  const LrSchedule schedule = schedule_of(config);
  const Preprocess preprocess = preprocess_of(config);

  // Data.
  if (config.data.train_root.empty()) throw Error("config key 'data.train_root' is not set");
  Dataset data = config.data.train_list.empty()
                     ? dataset_from_folders(config.data.train_root)
                     : read_train_list(config.data.train_list, config.data.train_root);
  const std::string source = config.data.train_list.empty()
                                 ? "image root '" + config.data.train_root + "'"
                                 : "train list '" + config.data.train_list + "'";
  validate_dataset(data, config.model.num_classes, source);
  std::vector<int64_t> labels;
  std::vector<std::string> names;
  for (const auto& s : data.samples) {
    labels.push_back(s.label);
    names.push_back(s.path);
  }
  if (static_cast<int64_t>(labels.size()) < tc.batch_size && tc.drop_last) {
    throw Error(fmt::format("{} has {} images, fewer than one batch of training.batch_size {}",
                            source, labels.size(), tc.batch_size));
  }

  // Validation pairs, checked before the first epoch rather than after it.
  std::optional<PairList> val_pairs;
  if (!config.val.pairs.empty()) {
    val_pairs = read_pairs(config.val.pairs, parse_pairs_format(config.val.pairs_format));
    if (config.val.folds < val_pairs->num_folds) {
      val_pairs->keep_folds(static_cast<int32_t>(config.val.folds));
    }
    auto missing = val_pairs->missing_images(config.val.root);
    if (!missing.empty()) {
      throw Error(
          fmt::format("val.pairs '{}' names {} images missing under val.root '{}', first "
                      "'{}'",
                      config.val.pairs, missing.size(), config.val.root, missing.front()));
    }
  }
  const FlipMode val_flip = parse_flip_mode(config.val.flip);

  // The other ranks; only rank 0 writes the run directory and the log.
  std::shared_ptr<DataParallel> ranks;
  if (dist.enabled()) ranks = std::make_shared<DataParallel>(dist);
  const bool writer = dist.rank == 0;

  // Only now that the inputs are known to be good does the run get its directory.
  if (writer) fs::create_directories(dir);
  auto log = make_logger(dir, writer);

  // Where training starts.
  TrainResult result;
  int64_t start_epoch = 0, first_batch = 0, global_step = 0, steps_this_run = 0;
  EpochStats partial;
  nlohmann::json best = nlohmann::json::object();
  if (!options.resume.empty()) {
    Checkpoint ck = load_checkpoint(options.resume);
    check_resumable(ck, *backbone, *head, learner.optimizer_type(), options.resume);
    load_state_dict(*backbone, ck.backbone_state,
                    fmt::format("checkpoint '{}' backbone_state_dict", options.resume.string()));
    load_state_dict(*head, ck.head_state,
                    fmt::format("checkpoint '{}' head_state_dict", options.resume.string()));
    import_optimizer_state(learner.optimizer(), ck.optimizer_state);
    start_epoch = ck.epoch;
    first_batch = ck.batch_in_epoch;
    // A mid-epoch resume with another global batch (world size) continues at the same image.
    const int64_t global_batch = tc.batch_size * dist.world_size;
    const int64_t was = ck.metrics.value("global_batch", global_batch);
    if (first_batch > 0 && was != global_batch) first_batch = first_batch * was / global_batch;
    global_step = ck.global_step;
    result.history = ck.metrics.value("history", nlohmann::json::array());
    best = ck.metrics.value("best", nlohmann::json::object());
    // Resuming from an older checkpoint (epoch_010.pt of a run that went on) must not let a
    // weaker epoch replace the best.pt the run already has.
    if (writer && fs::exists(dir / "best.pt")) {
      const auto kept = load_checkpoint(dir / "best.pt").metrics.value("best", best);
      if (beats(kept, best)) {
        best = kept;
        log->info("Keeping {} (epoch {}, {} {:.4f}) until an epoch beats it",
                  (dir / "best.pt").string(), best.value("epoch", 0), best.value("metric", ""),
                  best.value("value", 0.0));
      }
    }
    // The saved partial statistics cover all ranks: rank 0 carries them on.
    if (first_batch > 0 && writer)
      partial = EpochStats::from_json(ck.metrics.value("partial_epoch", nlohmann::json::object()));
    log->info("Resumed from {}: epoch {} batch {} (step {})", options.resume.string(),
              start_epoch + 1, first_batch, global_step);
  } else if (!config.model.pretrained.empty()) {
    const BackboneWeights w = read_backbone_weights(config.model.pretrained);
    if (w.backbone && canonical_backbone_name(*w.backbone) != backbone->options().name()) {
      throw Error(fmt::format("model.pretrained '{}' holds weights for {}, the config trains {}",
                              config.model.pretrained, canonical_backbone_name(*w.backbone),
                              backbone->options().name()));
    }
    load_state_dict(*backbone, w.state, w.description);
    log->info("Backbone initialised from {}", w.description);
    if (config.model.pretrained_head) {
      if (w.head.empty()) {
        throw Error(fmt::format("model.pretrained_head: {} has no margin head to start from",
                                w.description));
      }
      load_state_dict(*head, w.head, w.description + " margin head");
      // Only the shapes can be checked: the rows are taken to be this train list's labels.
      log->info("Margin head initialised from {} (its rows as the labels of {})", w.description,
                config.data.train_list);
    }
  }

  LoaderOptions lo;
  lo.batch_size = tc.batch_size;
  lo.shuffle = true;
  lo.progress = options.progress;
  lo.drop_last = tc.drop_last;
  lo.random_flip = config.data.random_flip;
  lo.random_crop = config.data.random_crop;
  lo.random_gray = config.data.random_gray;
  lo.workers = config.data.workers;
  lo.cache = config.data.cache;
  lo.seed = tc.seed;
  lo.shards = dist.world_size;
  lo.shard = dist.rank;
  log->info("Loading training data from {} ...", source);
  Loader loader(ImageSource{data.root, names, {}, {}}, labels, preprocess, lo);
  const int64_t batches = loader.batches_per_epoch();

  // Distillation: the teacher sees every training image once, before the first step.
  at::Tensor teacher;
  if (!config.distill.teacher.empty()) {
    const auto& d = config.distill;
    DistillOptions o;
    o.embedding_weight = d.embedding_weight;
    o.logit_weight = d.logit_weight;
    o.temperature = d.temperature;
    o.hard_rule = parse_hard_rule(d.hard_rule);
    o.hard_margin = d.hard_margin;
    o.hard_fraction = d.hard_fraction;
    o.hard_weight = d.hard_weight;
    EvalOptions eo;
    eo.flip = parse_flip_mode(d.teacher_flip);
    if (eo.flip == FlipMode::Concat) throw Error("distill.teacher_flip must be sum or none");
    eo.batch_size = config.val.batch_size;
    eo.workers = config.data.workers;
    eo.progress = options.progress;
    log->info("Teacher {}: embedding the {} training images ...", d.teacher, names.size());
    const auto t0 = Clock::now();
    TeacherTargets targets;
    try {
      targets = teacher_targets(
          d.teacher, teacher_input(config), ImageSource{data.root, names, {}, {}}, eo, tc.device,
          writer ? dir / "teacher_embeddings.pt" : fs::path(), learner.precision());
    } catch (const Error& e) {
      // The loaders speak of the command-line options; here the config keys say the same.
      throw Error(fmt::format(
          "distill.teacher: {}\n(a teacher that does not describe itself takes "
          "distill.teacher_backbone, teacher_input_size, teacher_color, teacher_mean and "
          "teacher_std)",
          e.what()));
    }
    if (targets.embeddings.size(1) != config.model.embedding_size) {
      throw Error(
          fmt::format("distill.teacher '{}' gives {}-D embeddings, the student {}-D "
                      "(model.embedding_size)",
                      d.teacher, targets.embeddings.size(1), config.model.embedding_size));
    }
    learner.distill(o, targets.centres, targets.scale);
    teacher = targets.embeddings;
    log->info(
        "Distilling from {} ({:.1f}s): embedding weight {}, logit weight {} (T {}), hard "
        "examples by {} weigh {}x",
        targets.description, since(t0), o.embedding_weight, o.logit_weight, o.temperature,
        to_string(o.hard_rule), 1 + o.hard_weight);
  }

  learner.freeze_batchnorm(tc.freeze_bn);
  if (ranks) {
    learner.data_parallel(ranks);
    log->info("Rank 0 of {} (rendezvous {}): {} images per rank and step, {} per global batch",
              dist.world_size, dist.master, tc.batch_size, tc.batch_size * dist.world_size);
  }

  const auto info = system_info();
  const double macs = forward_macs(*backbone);
  if (writer) {
    nlohmann::json meta = config_to_json(config);
    meta["resolved"] = {{"backbone", backbone->options().name()},
                        {"dropout", backbone->options().dropout()},
                        {"margin", head->options().margin()},
                        {"precision", to_string(learner.precision())},
                        {"forward_gflops_per_image", 2 * macs / 1e9}};
    meta["system"] = {
        {"cpu", info.cpu_model},        {"cpu_flags", info.cpu_flags}, {"blas", info.blas},
        {"allocator", info.allocator},  {"threads", info.threads},     {"device", device.str()},
        {"world_size", dist.world_size}};
    write_file_atomic(dir / "training_config.json", meta.dump(2) + "\n");
  }
  log->info("============================================================");
  log->info("Training {} + {} ({}), {} classes, {} images, {} batches of {}",
            backbone->options().name(), to_string(head->options().type()), config.loss.type,
            config.model.num_classes, loader.size(), batches, tc.batch_size * dist.world_size);
  log->info("Input {}x{}x{}, {:.2f} GFLOP forward per image; device {}, {} threads, {}, {}",
            preprocess.channels(), preprocess.input_size, preprocess.input_size, 2 * macs / 1e9,
            device.str(), threads, info.allocator, to_string(learner.precision()));
  log->info("============================================================");

  auto make_checkpoint = [&](int64_t epoch_done, int64_t batch_in_epoch, const EpochStats& stats) {
    Checkpoint ck;
    ck.backbone = backbone->options();
    ck.preprocess = preprocess;
    ck.head = head->options();
    ck.backbone_state = state_dict(*backbone);
    ck.head_state = state_dict(*head);
    ck.optimizer_type = learner.optimizer_type();
    ck.optimizer_state = export_optimizer_state(learner.optimizer());
    ck.scheduler = {
        {"type", schedule.type}, {"last_epoch", epoch_done}, {"base_lr", schedule.base_lr}};
    ck.epoch = epoch_done;
    ck.batch_in_epoch = batch_in_epoch;
    ck.global_step = global_step;
    ck.config = config_to_json(config);
    ck.metrics = {{"history", result.history},
                  {"best", best},
                  {"global_batch", tc.batch_size * dist.world_size}};
    if (batch_in_epoch > 0) ck.metrics["partial_epoch"] = stats.to_json();
    return ck;
  };

  std::unique_ptr<Progress> progress;
  for (int64_t epoch = start_epoch; epoch < tc.max_epoch; ++epoch) {
    loader.start_epoch(epoch, first_batch);
    EpochStats stats = first_batch > 0 ? partial : EpochStats{};
    int64_t b = first_batch;
    first_batch = 0;
    learner.train();
    if (options.progress) {
      progress = std::make_unique<Progress>(fmt::format("epoch {}/{}", epoch + 1, tc.max_epoch),
                                            batches, "batch");
      progress->update(b);
    }
    auto epoch_start = Clock::now();
    const double allreduce_before = ranks ? ranks->wait_seconds() : 0.0;
    double lr = schedule.at(epoch, b, batches);
    for (;;) {
      const auto wait_start = Clock::now();
      auto batch = loader.next();
      stats.wait_seconds += since(wait_start);
      if (!batch) break;
      lr = schedule.at(epoch, b, batches);
      // Seeding each step's random draws from its number makes resume exact.
      at::Tensor batch_teacher;
      if (teacher.defined()) {
        batch_teacher = teacher.index_select(0, torch::tensor(batch->indices, torch::kLong));
      }
      const auto step =
          learner.step(batch->images, batch->labels, lr,
                       mix_seed(tc.seed, static_cast<uint64_t>(global_step)), batch_teacher);
      if (!std::isfinite(step.loss)) {
        throw Error(
            fmt::format("training stopped: the loss became {} at epoch {} batch {} (lr "
                        "{:g}); the last good checkpoint is kept in '{}'. Lower "
                        "training.lr or check the data.",
                        step.loss, epoch + 1, b, lr, dir.string()));
      }
      const int64_t n = batch->images.size(0);
      stats.loss_sum += step.loss * n;
      stats.distill_sum += step.distill_loss * n;
      stats.hard += step.hard_examples;
      stats.correct += step.correct;
      stats.seen += n;
      ++stats.batches;
      ++global_step;
      ++steps_this_run;
      if (b % tc.print_freq == 0) {
        if (progress) progress->clear();
        log->info("Epoch [{}/{}] Batch [{}/{}] Loss: {:.4f} Acc: {:.4f}", epoch + 1, tc.max_epoch,
                  b, batches, step.loss, static_cast<double>(step.correct) / n);
      }
      ++b;
      if (progress) {
        progress->update(b, fmt::format("loss {:.4f} acc {:.3f}", stats.loss_sum / stats.seen,
                                        static_cast<double>(stats.correct) / stats.seen));
      }
      bool stop = stop_requested || steps_this_run == options.max_steps;
      if (ranks) stop = ranks->sum({stop ? 1.0 : 0.0})[0] > 0;  // all ranks stop together
      if (stop) {
        stats.seconds += since(epoch_start);
        if (progress) progress->clear();
        if (ranks) stats = summed(stats, *ranks);
        result.last_checkpoint = dir / "last.pt";
        if (writer) save_checkpoint(make_checkpoint(epoch, b, stats), result.last_checkpoint);
        log->info("Stopped at epoch {} batch {}: saved {} (continue with --resume {})", epoch + 1,
                  b, result.last_checkpoint.string(), result.last_checkpoint.string());
        result.interrupted = true;
        result.stop_requested = stop_requested;
        result.epochs_done = epoch;
        return result;
      }
    }
    stats.seconds += since(epoch_start);
    if (progress) progress->finish();
    if (ranks) stats = summed(stats, *ranks);

    const double mean_loss = stats.loss_sum / std::max<int64_t>(1, stats.seen);
    const double accuracy = static_cast<double>(stats.correct) / std::max<int64_t>(1, stats.seen);
    const double images_per_s = stats.seen / std::max(1e-9, stats.seconds);
    nlohmann::json record = {{"epoch", epoch + 1},
                             {"lr", lr},
                             {"loss", mean_loss},
                             {"accuracy", accuracy},
                             {"seconds", stats.seconds},
                             {"data_wait_seconds", stats.wait_seconds},
                             {"images_per_s", images_per_s},
                             {"peak_rss_mib", peak_rss_mib()}};
    if (ranks) {
      record["world_size"] = dist.world_size;
      record["allreduce_wait_seconds"] = ranks->wait_seconds() - allreduce_before;
      log->info("Data parallel over {} ranks: {:.1f}s waiting for gradient all-reduces",
                dist.world_size, ranks->wait_seconds() - allreduce_before);
    }
    if (teacher.defined()) {
      const double seen = std::max<int64_t>(1, stats.seen);
      record["distill_loss"] = stats.distill_sum / seen;
      record["hard_fraction"] = stats.hard / seen;
      log->info("Distillation term {:.4f}, hard examples {:.1f}%", stats.distill_sum / seen,
                100 * stats.hard / seen);
    }
    log->info("============================================================");
    log->info("Epoch {}/{} complete - Time: {:.1f}s", epoch + 1, tc.max_epoch, stats.seconds);
    log->info("Average Loss: {:.4f}", mean_loss);
    log->info("Average Acc: {:.4f} ({:.2f}%)", accuracy, 100 * accuracy);
    log->info("Learning rate: {:.6f}", lr);
    log->info(
        "Throughput: {:.1f} images/s ({:.1f} GFLOP/s), {:.1f}s waiting for data, peak RSS "
        "{:.0f} MiB",
        images_per_s, images_per_s * 6 * macs / 1e9, stats.wait_seconds, peak_rss_mib());

    // Validation and the best checkpoint.
    std::string metric_name = "train_accuracy";
    double metric = accuracy;
    if (writer && val_pairs &&
        ((epoch + 1) % config.val.interval == 0 || epoch + 1 == tc.max_epoch)) {
      backbone->eval();
      Embedder embedder(backbone, preprocess);
      embedder.precision(learner.precision());
      EvalOptions eo;
      eo.flip = val_flip;
      eo.batch_size = config.val.batch_size;
      eo.workers = config.data.workers;
      eo.progress = options.progress;
      const auto val = evaluate_pairs(embedder, *val_pairs, config.val.root, eo);
      learner.train();
      const auto& m = val.metrics;
      const bool folds = val_pairs->num_folds > 1;
      metric_name = folds ? "val_accuracy_10fold" : "val_accuracy_best";
      metric = folds ? m.accuracy_10fold_mean : m.accuracy_best;
      record["val"] = {{"pairs", m.pairs},
                       {"folds", val_pairs->num_folds},
                       {"accuracy_10fold_mean", m.accuracy_10fold_mean},
                       {"accuracy_10fold_std", m.accuracy_10fold_std},
                       {"accuracy_best", m.accuracy_best},
                       {"threshold_best", m.threshold_best},
                       {"roc_auc", m.roc_auc},
                       {"seconds", val.seconds}};
      log->info(
          "Validation ({} pairs, {} folds): {}-fold {:.4f} ± {:.4f}, best-threshold {:.4f}, "
          "AUC {:.4f} ({:.1f}s)",
          m.pairs, val_pairs->num_folds, val_pairs->num_folds, m.accuracy_10fold_mean,
          m.accuracy_10fold_std, m.accuracy_best, m.roc_auc, val.seconds);
    }
    result.history.push_back(record);
    const nlohmann::json candidate = {
        {"metric", metric_name}, {"value", metric}, {"epoch", epoch + 1}};
    const bool improved = beats(candidate, best);
    if (improved) best = candidate;

    result.last_checkpoint = dir / "last.pt";
    result.epochs_done = epoch + 1;
    if (!writer) continue;
    Checkpoint ck = make_checkpoint(epoch + 1, 0, {});
    save_checkpoint(ck, result.last_checkpoint);
    if ((epoch + 1) % tc.save_interval == 0) {
      save_checkpoint(ck, dir / fmt::format("epoch_{:03d}.pt", epoch + 1));
    }
    if (improved) {
      save_checkpoint(ck, dir / "best.pt");
      log->info("Saved best model: {} ({} {:.4f})", (dir / "best.pt").string(), metric_name,
                metric);
      if (record.contains("val")) {
        nlohmann::json best_lfw = record["val"];
        best_lfw["epoch"] = epoch + 1;
        best_lfw["checkpoint"] = "best.pt";
        best_lfw["pairs_file"] = config.val.pairs;
        write_file_atomic(dir / "best_lfw.json", best_lfw.dump(2) + "\n");
      }
    }
    write_file_atomic(dir / "history.json", result.history.dump(2) + "\n");
    log->info("============================================================");
  }
  result.best_checkpoint = dir / "best.pt";
  result.best_metric = best.value("value", 0.0);
  result.best_metric_name = best.value("metric", "");
  return result;
}

}  // namespace arcface
