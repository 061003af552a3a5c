#include "arcface/trainer.h"

#include "train/trainer_steps.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
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
#include "arcface/recordio.h"
#include "arcface/system.h"
#include "arcface/weights.h"
#include "util/progress.h"
#include "util/rng.h"

namespace arcface {

namespace {

std::atomic<bool> stop_requested{false};

using Clock = std::chrono::steady_clock;

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
  int64_t skipped = 0;      // steps whose scaled fp16 gradients overflowed
  double seconds = 0;       // training time, validation excluded
  double wait_seconds = 0;  // of which waiting for the loader

  nlohmann::json to_json() const {
    return {{"loss_sum", loss_sum}, {"distill_sum", distill_sum},   {"correct", correct},
            {"seen", seen},         {"batches", batches},           {"hard", hard},
            {"seconds", seconds},   {"wait_seconds", wait_seconds}, {"skipped", skipped}};
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
    s.skipped = j.value("skipped", int64_t{0});
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

}  // namespace

void request_training_stop() { stop_requested = true; }

bool beats(const nlohmann::json& candidate, const nlohmann::json& best) {
  if (best.empty()) return true;
  auto validated_metric = [](const nlohmann::json& j) {
    return j.value("metric", "").rfind("val_", 0) == 0;
  };
  const bool validated = validated_metric(candidate);
  const bool best_validated = validated_metric(best);
  if (validated != best_validated) return validated;
  return candidate.value("value", -1.0) > best.value("value", -1.0);
}

TrainingImages training_images(const TrainConfig& config) {
  const auto& d = config.data;
  const bool labelled = config.distill.margin_weight > 0;
  TrainingImages t;
  std::map<std::string, size_t> record_of;
  if (!d.train_rec.empty()) {
    t.records = RecordFile::open(d.train_rec);
    const auto& images = t.records->images();
    for (size_t i = 0; i < images.size(); ++i) record_of[t.records->name(i)] = i;
    if (d.train_list.empty()) {
      t.source = "record file '" + d.train_rec + "'";
      for (size_t i = 0; i < images.size(); ++i) {
        t.data.samples.push_back({t.records->name(i), labelled ? images[i].label : 0});
      }
    } else {
      // A selection of the records (`arcface select --rec`): its labels replace theirs.
      t.source = fmt::format("train list '{}' of record file '{}'", d.train_list, d.train_rec);
      t.data = read_train_list(d.train_list, {}, labelled ? Labels::Required : Labels::Ignored);
      for (size_t i = 0; i < t.data.samples.size(); ++i) {
        if (!record_of.count(t.data.samples[i].path)) {
          throw Error(fmt::format("{} entry {}: '{}' is not a record of the file", t.source, i + 1,
                                  t.data.samples[i].path));
        }
      }
    }
    for (size_t i = 0; i < t.data.samples.size(); ++i) {
      const auto& s = t.data.samples[i];
      if (s.label >= config.model.num_classes) {
        throw Error(fmt::format("{} entry {} ('{}'): label {} is not below model.num_classes {}",
                                t.source, i + 1, s.path, s.label, config.model.num_classes));
      }
      t.names.push_back(s.path);
      t.record_index.push_back(record_of.at(s.path));
    }
  } else {
    if (d.train_root.empty()) {
      throw Error("config key 'data.train_root' (or 'data.train_rec') is not set");
    }
    if (!d.train_list.empty()) {
      t.data = read_train_list(d.train_list, d.train_root,
                               labelled ? Labels::Required : Labels::Ignored);
    } else {
      t.data = labelled ? dataset_from_folders(d.train_root) : unlabelled_images(d.train_root);
    }
    t.source = d.train_list.empty() ? "image root '" + d.train_root + "'"
                                    : "train list '" + d.train_list + "'";
    validate_dataset(t.data, config.model.num_classes, t.source);
    for (const auto& s : t.data.samples) t.names.push_back(s.path);
  }
  const auto bad =
      find_bad_images(t.image_source(), static_cast<int>(std::max<int64_t>(2, d.workers)));
  if (!bad.empty() && d.bad_images != "skip") {
    std::string list;
    for (const auto& b : bad) list += "\n  " + b.reason;
    throw Error(
        fmt::format("{} images of {} are truncated, corrupt or unreadable:{}\nReplace them, or set "
                    "data.bad_images: skip to train without them",
                    bad.size(), t.source, list));
  }
  std::set<std::string> skip;
  for (const auto& b : bad) skip.insert(b.name);
  t.names.clear();
  t.record_index.clear();
  for (const auto& s : t.data.samples) {
    if (skip.count(s.path)) continue;
    t.names.push_back(s.path);
    t.labels.push_back(s.label);
    if (t.records) t.record_index.push_back(record_of.at(s.path));
  }
  t.skipped = bad;
  if (static_cast<int64_t>(t.labels.size()) < config.training.batch_size &&
      config.training.drop_last) {
    throw Error(
        fmt::format("{} has {} usable images, fewer than one batch of training.batch_size {}",
                    t.source, t.labels.size(), config.training.batch_size));
  }
  return t;
}

std::vector<ValTarget> validation_targets(const TrainConfig& config) {
  const auto& v = config.val;
  std::vector<ValTarget> out;
  if (v.pairs.empty()) return out;
  std::vector<PairTarget> targets{{v.name, v.pairs, v.root}};
  for (const auto& spec : v.targets) targets.push_back(parse_pair_target(spec));
  for (size_t i = 0; i < targets.size(); ++i) {
    const auto& t = targets[i];
    PairList pairs =
        read_pair_target(t, i == 0 ? parse_pairs_format(v.pairs_format) : PairsFormat::Auto);
    if (v.folds < pairs.num_folds) pairs.keep_folds(static_cast<int32_t>(v.folds));
    check_pair_images(pairs, t.root, false,
                      static_cast<int>(std::max<int64_t>(2, config.data.workers)),
                      fmt::format("(validation target {}, root '{}')", t.name, t.root.string()));
    out.push_back({t.name, t.root, std::move(pairs)});
  }
  return out;
}

namespace {

/// One training run: the pieces train() puts together, in the order it calls them.
class Run {
 public:
  Run(const TrainConfig& config, const TrainOptions& options)
      : c_(config),
        tc_(config.training),
        options_(options),
        dir_(config.paths.checkpoints_path),
        preprocess_(preprocess_of(config)),
        schedule_(schedule_of(config)) {}

  TrainResult run() {
    set_up();
    for (int64_t epoch = start_epoch_; epoch < tc_.max_epoch; ++epoch) {
      if (!run_epoch(epoch)) return result_;
    }
    result_.best_checkpoint = dir_ / "best.pt";
    result_.best_metric = best_.value("value", 0.0);
    result_.best_metric_name = best_.value("metric", "");
    return result_;
  }

 private:
  // Threads, the network, the data, the run directory, the starting point, the teacher: all
  // inputs are checked before the directory is made and before the first step.
  void set_up() {
    const auto& dist = options_.distributed;
    dist.check();
    // Ranks sharing this machine share its cores.
    int64_t threads_wanted = tc_.threads;
    if (threads_wanted == 0 && dist.enabled()) {
      const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
      threads_wanted = std::max<int64_t>(1, cores / local_ranks(dist));
    }
    threads_ = configure_threads(static_cast<int>(threads_wanted));
    device_ = parse_device(tc_.device);

    // The network, head, optimizer and schedule; each factory checks its own config keys.
    torch::manual_seed(tc_.seed);  // the initial weights
    learner_.emplace(make_backbone(backbone_options(c_)), MarginHead(head_options(c_)),
                     LossOptions().type(parse_loss_type(c_.loss.type)).gamma(c_.loss.gamma),
                     OptimizerOptions{tc_.optimizer, tc_.lr, tc_.momentum, tc_.weight_decay},
                     device_);
    learner_->precision(parse_precision(tc_.precision));

    images_ = training_images(c_);
    val_targets_ = validation_targets(c_);

    // The other ranks; only rank 0 writes the run directory and the log.
    if (dist.enabled()) ranks_ = std::make_shared<DataParallel>(dist);
    writer_ = dist.rank == 0;
    // Only now that the inputs are known to be good does the run get its directory.
    if (writer_) fs::create_directories(dir_);
    log_ = make_logger(dir_, writer_);
    report_skipped_images();

    restore();
    make_loader();
    attach_teacher();
    learner_->freeze_batchnorm(tc_.freeze_bn);
    learner_->channels_last(tc_.channels_last);
    if (ranks_) {
      learner_->data_parallel(ranks_);
      log_->info("Rank 0 of {} (rendezvous {}): {} images per rank and step, {} per global batch",
                 dist.world_size, dist.master, tc_.batch_size, global_batch());
    }
    describe_run();
  }

  int64_t global_batch() const { return tc_.batch_size * options_.distributed.world_size; }
  bool teacher_only() const { return teacher_.defined() && c_.distill.margin_weight == 0; }
  // Teacher alone, every example weighs the same: the term is embedding_weight * (1 - cos).
  double teacher_cosine(double distill_term) const {
    return 1.0 - distill_term / c_.distill.embedding_weight;
  }
  Backbone& backbone() { return learner_->backbone(); }
  MarginHead& head() { return learner_->head(); }

  void report_skipped_images() {
    if (images_.skipped.empty()) return;
    log_->warn("Training without {} damaged images of {} (data.bad_images: skip):",
               images_.skipped.size(), images_.source);
    std::string list;
    for (const auto& b : images_.skipped) {
      log_->warn("  {}", b.reason);
      list += b.name + "\t" + b.reason + "\n";
    }
    if (writer_) write_file_atomic(dir_ / "bad_images.txt", list);
  }

  // Where training starts: a checkpoint to resume, weights to start from, or scratch.
  void restore() {
    if (!options_.resume.empty()) {
      resume(options_.resume);
    } else if (!c_.model.pretrained.empty()) {
      start_from_pretrained();
    }
  }

  void resume(const fs::path& path) {
    Checkpoint ck = load_checkpoint(path);
    check_resumable(ck, *backbone(), *head(), learner_->optimizer_type(), path);
    load_state_dict(*backbone(), ck.backbone_state,
                    fmt::format("checkpoint '{}' backbone_state_dict", path.string()));
    load_state_dict(*head(), ck.head_state,
                    fmt::format("checkpoint '{}' head_state_dict", path.string()));
    import_optimizer_state(learner_->optimizer(), ck.optimizer_state);
    if (auto* scaler = learner_->loss_scaler(); scaler && ck.metrics.contains("loss_scale")) {
      scaler->load_state(ck.metrics["loss_scale"]);
    }
    start_epoch_ = ck.epoch;
    first_batch_ = ck.batch_in_epoch;
    // A mid-epoch resume with another global batch (world size) continues at the same image.
    const int64_t was = ck.metrics.value("global_batch", global_batch());
    if (first_batch_ > 0 && was != global_batch())
      first_batch_ = first_batch_ * was / global_batch();
    global_step_ = ck.global_step;
    result_.history = ck.metrics.value("history", nlohmann::json::array());
    best_ = ck.metrics.value("best", nlohmann::json::object());
    // Resuming from an older checkpoint (epoch_010.pt of a run that went on) must not let a
    // weaker epoch replace the best.pt the run already has.
    if (writer_ && fs::exists(dir_ / "best.pt")) {
      const auto kept = load_checkpoint(dir_ / "best.pt").metrics.value("best", best_);
      if (beats(kept, best_)) {
        best_ = kept;
        log_->info("Keeping {} (epoch {}, {} {:.4f}) until an epoch beats it",
                   (dir_ / "best.pt").string(), best_.value("epoch", 0), best_.value("metric", ""),
                   best_.value("value", 0.0));
      }
    }
    // The saved partial statistics cover all ranks: rank 0 carries them on.
    if (first_batch_ > 0 && writer_) {
      partial_ = EpochStats::from_json(ck.metrics.value("partial_epoch", nlohmann::json::object()));
    }
    log_->info("Resumed from {}: epoch {} batch {} (step {})", path.string(), start_epoch_ + 1,
               first_batch_, global_step_);
  }

  void start_from_pretrained() {
    const BackboneWeights w = read_backbone_weights(c_.model.pretrained);
    if (w.backbone && canonical_backbone_name(*w.backbone) != backbone()->options().name()) {
      throw Error(fmt::format("model.pretrained '{}' holds weights for {}, the config trains {}",
                              c_.model.pretrained, canonical_backbone_name(*w.backbone),
                              backbone()->options().name()));
    }
    load_state_dict(*backbone(), w.state, w.description);
    log_->info("Backbone initialised from {}", w.description);
    if (!c_.model.pretrained_head) return;
    if (w.head.empty()) {
      throw Error(
          fmt::format("model.pretrained_head: {} has no margin head to start from", w.description));
    }
    load_state_dict(*head(), w.head, w.description + " margin head");
    // Only the shapes can be checked: the rows are taken to be this train list's labels.
    log_->info("Margin head initialised from {} (its rows as the labels of {})", w.description,
               c_.data.train_list);
  }

  void make_loader() {
    LoaderOptions lo;
    lo.batch_size = tc_.batch_size;
    lo.shuffle = true;
    lo.progress = options_.progress;
    lo.drop_last = tc_.drop_last;
    lo.random_flip = c_.data.random_flip;
    lo.random_crop = c_.data.random_crop;
    lo.random_gray = c_.data.random_gray;
    lo.workers = c_.data.workers;
    lo.cache = c_.data.cache;
    lo.seed = tc_.seed;
    lo.pin_memory = device_.is_cuda();
    lo.shards = options_.distributed.world_size;
    lo.shard = options_.distributed.rank;
    log_->info("Loading training data from {} ...", images_.source);
    loader_ = std::make_unique<Loader>(images_.image_source(), images_.labels, preprocess_, lo);
  }

  // Distillation: the teacher sees every training image once, before the first step.
  void attach_teacher() {
    const auto& d = c_.distill;
    if (d.teacher.empty()) return;
    DistillOptions o;
    o.embedding_weight = d.embedding_weight;
    o.logit_weight = d.logit_weight;
    o.margin_weight = d.margin_weight;
    o.temperature = d.temperature;
    o.hard_rule = parse_hard_rule(d.hard_rule);
    o.hard_margin = d.hard_margin;
    o.hard_fraction = d.hard_fraction;
    o.hard_weight = d.hard_weight;
    EvalOptions eo;
    eo.flip = parse_flip_mode(d.teacher_flip);
    eo.batch_size = c_.val.batch_size;
    eo.workers = c_.data.workers;
    eo.progress = options_.progress;
    log_->info("Teacher {}: embedding the {} training images ...", d.teacher, images_.names.size());
    const auto t0 = Clock::now();
    TeacherTargets targets;
    try {
      targets = teacher_targets(d.teacher, teacher_input(c_), images_.image_source(), eo,
                                tc_.device, writer_ ? dir_ / "teacher_embeddings.pt" : fs::path(),
                                learner_->precision());
    } catch (const Error& e) {
      // The loaders speak of the command-line options; here the config keys say the same.
      throw Error(fmt::format(
          "distill.teacher: {}\n(a teacher that does not describe itself takes "
          "distill.teacher_backbone, teacher_input_size, teacher_color, teacher_mean and "
          "teacher_std)",
          e.what()));
    }
    if (targets.embeddings.size(1) != c_.model.embedding_size) {
      throw Error(
          fmt::format("distill.teacher '{}' gives {}-D embeddings, the student {}-D "
                      "(model.embedding_size)",
                      d.teacher, targets.embeddings.size(1), c_.model.embedding_size));
    }
    learner_->distill(o, targets.centres, targets.scale);
    teacher_ = targets.embeddings;
    log_->info(
        "Distilling from {} ({:.1f}s): margin loss weight {}{}, embedding weight {}, logit "
        "weight {} (T {}), {}",
        targets.description, since(t0), o.margin_weight,
        o.margin_weight == 0 ? " (the teacher alone, labels unused)" : "", o.embedding_weight,
        o.logit_weight, o.temperature,
        o.hard_rule == HardRule::None ? std::string("no hard examples")
                                      : fmt::format("hard examples by {} weigh {}x",
                                                    to_string(o.hard_rule), 1 + o.hard_weight));
  }

  void describe_run() {
    const auto info = system_info();
    macs_ = forward_macs(*backbone());
    if (writer_) {
      nlohmann::json meta = config_to_json(c_);
      meta["resolved"] = {{"backbone", backbone()->options().name()},
                          {"dropout", backbone()->options().dropout()},
                          {"margin", head()->options().margin()},
                          {"precision", to_string(learner_->precision())},
                          {"forward_gflops_per_image", 2 * macs_ / 1e9},
                          {"bad_images_skipped", images_.skipped.size()}};
      meta["system"] = {{"cpu", info.cpu_model},
                        {"cpu_flags", info.cpu_flags},
                        {"blas", info.blas},
                        {"allocator", info.allocator},
                        {"threads", info.threads},
                        {"device", device_.str()},
                        {"world_size", options_.distributed.world_size}};
      write_file_atomic(dir_ / "training_config.json", meta.dump(2) + "\n");
    }
    log_->info("============================================================");
    if (teacher_only()) {
      log_->info("Training {} on its teacher alone (labels unused), {} images, {} batches of {}",
                 backbone()->options().name(), loader_->size(), loader_->batches_per_epoch(),
                 global_batch());
    } else {
      log_->info("Training {} + {} ({}), {} classes, {} images, {} batches of {}",
                 backbone()->options().name(), to_string(head()->options().type()), c_.loss.type,
                 c_.model.num_classes, loader_->size(), loader_->batches_per_epoch(),
                 global_batch());
    }
    log_->info("Input {}x{}x{}, {:.2f} GFLOP forward per image; device {}, {} threads, {}, {}",
               preprocess_.channels(), preprocess_.input_size, preprocess_.input_size,
               2 * macs_ / 1e9, device_.str(), threads_, info.allocator,
               to_string(learner_->precision()));
    log_->info("============================================================");
  }

  Checkpoint make_checkpoint(int64_t epoch_done, int64_t batch_in_epoch, const EpochStats& stats) {
    Checkpoint ck;
    ck.backbone = backbone()->options();
    ck.preprocess = preprocess_;
    ck.head = head()->options();
    ck.backbone_state = state_dict(*backbone());
    ck.head_state = state_dict(*head());
    ck.optimizer_type = learner_->optimizer_type();
    ck.optimizer_state = export_optimizer_state(learner_->optimizer());
    ck.scheduler = {
        {"type", schedule_.type}, {"last_epoch", epoch_done}, {"base_lr", schedule_.base_lr}};
    ck.epoch = epoch_done;
    ck.batch_in_epoch = batch_in_epoch;
    ck.global_step = global_step_;
    ck.config = config_to_json(c_);
    ck.metrics = {{"history", result_.history}, {"best", best_}, {"global_batch", global_batch()}};
    if (batch_in_epoch > 0) ck.metrics["partial_epoch"] = stats.to_json();
    if (auto* scaler = learner_->loss_scaler()) ck.metrics["loss_scale"] = scaler->state();
    return ck;
  }

  // One epoch of steps, then its summary, validation and checkpoints. False when the run
  // stopped early (a signal, --max-steps) after saving a resumable last.pt.
  bool run_epoch(int64_t epoch) {
    const int64_t batches = loader_->batches_per_epoch();
    loader_->start_epoch(epoch, first_batch_);
    EpochStats stats = first_batch_ > 0 ? partial_ : EpochStats{};
    int64_t b = first_batch_;
    first_batch_ = 0;
    learner_->train();
    std::unique_ptr<Progress> progress;
    if (options_.progress) {
      progress = std::make_unique<Progress>(fmt::format("epoch {}/{}", epoch + 1, tc_.max_epoch),
                                            batches, "batch", b);
    }
    const auto epoch_start = Clock::now();
    const double allreduce_before = ranks_ ? ranks_->wait_seconds() : 0.0;
    double lr = schedule_.at(epoch, b, batches);
    for (;;) {
      const auto wait_start = Clock::now();
      auto batch = loader_->next();
      stats.wait_seconds += since(wait_start);
      if (!batch) break;
      lr = schedule_.at(epoch, b, batches);
      at::Tensor batch_teacher;
      if (teacher_.defined()) {
        batch_teacher = teacher_.index_select(0, torch::tensor(batch->indices, torch::kLong));
      }
      // Seeding each step's random draws from its number makes resume exact.
      const auto step =
          learner_->step(batch->images, batch->labels, lr,
                         mix_seed(tc_.seed, static_cast<uint64_t>(global_step_)), batch_teacher);
      if (!std::isfinite(step.loss)) {
        throw Error(
            fmt::format("training stopped: the loss became {} at epoch {} batch {} (lr "
                        "{:g}); the last good checkpoint is kept in '{}'. Lower "
                        "training.lr or check the data{}.",
                        step.loss, epoch + 1, b, lr, dir_.string(),
                        learner_->precision() == Precision::Fp16
                            ? " (in fp16 activations above 65504 overflow: try bf16 or fp32)"
                            : ""));
      }
      const int64_t n = batch->images.size(0);
      stats.loss_sum += step.loss * n;
      stats.distill_sum += step.distill_loss * n;
      stats.hard += step.hard_examples;
      stats.correct += step.correct;
      stats.skipped += step.skipped;
      stats.seen += n;
      ++stats.batches;
      ++global_step_;
      ++steps_this_run_;
      memory_.after_step();
      if (b % tc_.print_freq == 0) {
        if (progress) progress->clear();
        log_->info("Epoch [{}/{}] Batch [{}/{}] Loss: {:.4f} {}", epoch + 1, tc_.max_epoch, b,
                   batches, step.loss,
                   teacher_only()
                       ? fmt::format("Teacher cosine: {:.4f}", teacher_cosine(step.distill_loss))
                       : fmt::format("Acc: {:.4f}", static_cast<double>(step.correct) / n));
      }
      ++b;
      if (progress) {
        const double mean_loss = stats.loss_sum / stats.seen;
        progress->update(b, teacher_only()
                                ? fmt::format("loss {:.4f} cos {:.3f}", mean_loss,
                                              teacher_cosine(stats.distill_sum / stats.seen))
                                : fmt::format("loss {:.4f} acc {:.3f}", mean_loss,
                                              static_cast<double>(stats.correct) / stats.seen));
      }
      bool stop = stop_requested || steps_this_run_ == options_.max_steps;
      if (ranks_) stop = ranks_->sum({stop ? 1.0 : 0.0})[0] > 0;  // all ranks stop together
      if (stop) {
        stats.seconds += since(epoch_start);
        if (progress) progress->clear();
        if (ranks_) stats = summed(stats, *ranks_);
        stop_mid_epoch(epoch, b, stats);
        return false;
      }
    }
    stats.seconds += since(epoch_start);
    if (progress) progress->finish();
    if (ranks_) stats = summed(stats, *ranks_);
    nlohmann::json record = summarise_epoch(epoch, lr, stats, allreduce_before);
    if (writer_ && !val_targets_.empty() &&
        ((epoch + 1) % c_.val.interval == 0 || epoch + 1 == tc_.max_epoch)) {
      record["val"] = validate();
    }
    result_.history.push_back(record);
    save_epoch(epoch, record);
    return true;
  }

  void stop_mid_epoch(int64_t epoch, int64_t batch, const EpochStats& stats) {
    result_.last_checkpoint = dir_ / "last.pt";
    if (writer_) save_checkpoint(make_checkpoint(epoch, batch, stats), result_.last_checkpoint);
    log_->info("Stopped at epoch {} batch {}: saved {} (continue with --resume {})", epoch + 1,
               batch, result_.last_checkpoint.string(), result_.last_checkpoint.string());
    result_.interrupted = true;
    result_.stop_requested = stop_requested;
    result_.epochs_done = epoch;
  }

  nlohmann::json summarise_epoch(int64_t epoch, double lr, const EpochStats& stats,
                                 double allreduce_before) {
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
                             {"peak_rss_mib", peak_rss_mib()},
                             {"images", loader_->size()},
                             {"bad_images_skipped", images_.skipped.size()},
                             {"free_memory_releases", memory_.releases()}};
    if (auto* scaler = learner_->loss_scaler()) {
      record["loss_scale"] = scaler->value();
      record["overflow_steps_skipped"] = stats.skipped;
      log_->info("Loss scale {:g}; {} steps skipped for overflowing gradients", scaler->value(),
                 stats.skipped);
    }
    if (ranks_) {
      const double waited = ranks_->wait_seconds() - allreduce_before;
      record["world_size"] = options_.distributed.world_size;
      record["allreduce_wait_seconds"] = waited;
      log_->info("Data parallel over {} ranks: {:.1f}s waiting for gradient all-reduces",
                 options_.distributed.world_size, waited);
    }
    if (teacher_.defined()) {
      const double seen = std::max<int64_t>(1, stats.seen);
      record["distill_loss"] = stats.distill_sum / seen;
      record["hard_fraction"] = stats.hard / seen;
      log_->info("Distillation term {:.4f}, hard examples {:.1f}%", stats.distill_sum / seen,
                 100 * stats.hard / seen);
      if (teacher_only()) {
        record["teacher_cosine"] = teacher_cosine(stats.distill_sum / seen);
        log_->info("Mean cosine to the teacher: {:.4f}", record["teacher_cosine"].get<double>());
      }
    }
    log_->info("============================================================");
    log_->info("Epoch {}/{} complete - Time: {:.1f}s", epoch + 1, tc_.max_epoch, stats.seconds);
    log_->info("Average Loss: {:.4f}", mean_loss);
    if (!teacher_only()) log_->info("Average Acc: {:.4f} ({:.2f}%)", accuracy, 100 * accuracy);
    log_->info("Learning rate: {:.6f}", lr);
    log_->info(
        "Throughput: {:.1f} images/s ({:.1f} GFLOP/s), {:.1f}s waiting for data, peak RSS "
        "{:.0f} MiB",
        images_per_s, images_per_s * 6 * macs_ / 1e9, stats.wait_seconds, peak_rss_mib());
    if (memory_.releases() > 0) {
      log_->info(
          "Free memory handed back to the system {} times so far (the process had grown "
          "by 1 GiB; now {:.0f} MiB)",
          memory_.releases(), rss_mib());
    }
    return record;
  }

  // The validation targets through the backbone as it is now, in the training's precision. The
  // first target's metrics stay at the top (as with one target); with more, "targets" holds
  // each by name and "mean_accuracy" their mean.
  nlohmann::json validate() {
    backbone()->eval();
    Embedder embedder(backbone(), preprocess_);
    embedder.precision(learner_->precision());
    EvalOptions eo;
    eo.flip = parse_flip_mode(c_.val.flip);
    eo.batch_size = c_.val.batch_size;
    eo.workers = c_.data.workers;
    eo.progress = options_.progress;
    nlohmann::json each = nlohmann::json::object();
    double sum = 0;
    for (const auto& t : val_targets_) {
      const auto val = evaluate_pairs(embedder, t.pairs, t.root, eo);
      const auto& m = val.metrics;
      const int32_t folds = t.pairs.num_folds;
      log_->info(
          "Validation on {} ({} pairs, {} folds): {}-fold {:.4f} ± {:.4f}, best-threshold "
          "{:.4f}, AUC {:.4f} ({:.1f}s)",
          t.name, m.pairs, folds, folds, m.accuracy_10fold_mean, m.accuracy_10fold_std,
          m.accuracy_best, m.roc_auc, val.seconds);
      each[t.name] = {{"pairs", m.pairs},
                      {"folds", folds},
                      {"accuracy_10fold_mean", m.accuracy_10fold_mean},
                      {"accuracy_10fold_std", m.accuracy_10fold_std},
                      {"accuracy_best", m.accuracy_best},
                      {"threshold_best", m.threshold_best},
                      {"roc_auc", m.roc_auc},
                      {"seconds", val.seconds}};
      sum += folds > 1 ? m.accuracy_10fold_mean : m.accuracy_best;
    }
    learner_->train();
    nlohmann::json out = each[val_targets_.front().name];
    out["mean_accuracy"] = sum / static_cast<double>(val_targets_.size());
    if (val_targets_.size() > 1) {
      out["targets"] = each;
      log_->info("Validation mean over {} targets: {:.4f}", val_targets_.size(),
                 out["mean_accuracy"].get<double>());
    }
    return out;
  }

  // The checkpoint policy: last.pt every epoch, epoch_NNN.pt every save_interval, best.pt
  // (and best_lfw.json) when the epoch beats the best by beats().
  void save_epoch(int64_t epoch, const nlohmann::json& record) {
    nlohmann::json candidate = {
        {"metric", "train_accuracy"}, {"value", record["accuracy"]}, {"epoch", epoch + 1}};
    // Without labels the training measure is how close the student came to its teacher.
    if (teacher_only()) {
      candidate["metric"] = "train_teacher_cosine";
      candidate["value"] = record["teacher_cosine"];
    }
    if (record.contains("val")) {
      // val.select: the first target (today's names), another target by name, or the mean.
      const auto& v = record["val"];
      const std::string& select = c_.val.select;
      if (select == "mean") {
        candidate["metric"] = "val_mean_accuracy";
        candidate["value"] = v["mean_accuracy"];
      } else {
        const bool first = select.empty() || select == c_.val.name;
        const auto& t = first ? v : v["targets"][select];
        const bool folds = t["folds"].get<int32_t>() > 1;
        candidate["metric"] =
            fmt::format("val_{}accuracy_{}", first ? "" : select + "_", folds ? "10fold" : "best");
        candidate["value"] = folds ? t["accuracy_10fold_mean"] : t["accuracy_best"];
      }
    }
    const bool improved = beats(candidate, best_);
    if (improved) best_ = candidate;
    result_.last_checkpoint = dir_ / "last.pt";
    result_.epochs_done = epoch + 1;
    if (!writer_) return;
    const Checkpoint ck = make_checkpoint(epoch + 1, 0, {});
    save_checkpoint(ck, result_.last_checkpoint);
    if ((epoch + 1) % tc_.save_interval == 0) {
      save_checkpoint(ck, dir_ / fmt::format("epoch_{:03d}.pt", epoch + 1));
    }
    if (improved) {
      save_checkpoint(ck, dir_ / "best.pt");
      log_->info("Saved best model: {} ({} {:.4f})", (dir_ / "best.pt").string(),
                 candidate["metric"].get<std::string>(), candidate["value"].get<double>());
      if (record.contains("val")) {
        nlohmann::json best_lfw = record["val"];
        best_lfw["epoch"] = epoch + 1;
        best_lfw["checkpoint"] = "best.pt";
        best_lfw["pairs_file"] = c_.val.pairs;
        write_file_atomic(dir_ / "best_lfw.json", best_lfw.dump(2) + "\n");
      }
    }
    write_file_atomic(dir_ / "history.json", result_.history.dump(2) + "\n");
    log_->info("============================================================");
  }

  const TrainConfig& c_;
  const TrainingConfig& tc_;
  const TrainOptions& options_;
  const fs::path dir_;
  const Preprocess preprocess_;
  const LrSchedule schedule_;
  int threads_ = 0;
  c10::Device device_{c10::kCPU};
  std::optional<Learner> learner_;
  TrainingImages images_;
  std::vector<ValTarget> val_targets_;
  std::shared_ptr<DataParallel> ranks_;
  bool writer_ = true;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Loader> loader_;
  at::Tensor teacher_;
  double macs_ = 0;
  // Where the run stands.
  int64_t start_epoch_ = 0, first_batch_ = 0, global_step_ = 0, steps_this_run_ = 0;
  MemoryGrowthLimit memory_;
  EpochStats partial_;
  nlohmann::json best_ = nlohmann::json::object();
  TrainResult result_;
};

}  // namespace

TrainResult train(const TrainConfig& config, const TrainOptions& options) {
  check_config(config);
  stop_requested = false;
  return Run(config, options).run();
}

}  // namespace arcface
