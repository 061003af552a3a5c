#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "arcface/checkpoint.h"
#include "arcface/config.h"
#include "arcface/dataset.h"
#include "arcface/error.h"
#include "arcface/trainer.h"
#include "test_util.h"
#include "train/trainer_steps.h"

namespace arcface {
namespace {

namespace fs = std::filesystem;

/// Seed 000's network at 32x32 on 8 people of the shipped sample: a real run, in seconds.
TrainConfig tiny_config(const fs::path& dir, int64_t epochs) {
  SelectOptions select;
  select.root = test::sample_dir() / "train";
  select.classes = 8;
  select.max_per_class = 12;
  write_train_list(dir / "train_list.txt", select_balanced(select).samples);
  TrainConfig c;
  c.model.backbone = "resnet_face18";
  c.model.num_classes = 8;
  c.model.embedding_size = 128;
  c.loss.type = "focal_loss";
  c.training.batch_size = 16;
  c.training.max_epoch = epochs;
  c.training.lr = 0.05;
  c.training.lr_schedule = "step";
  c.training.lr_step = 2;
  c.training.print_freq = 100;
  c.training.save_interval = 100;
  c.training.precision = "fp32";  // exact replays, on every CPU
  c.data.train_root = (test::sample_dir() / "train").string();
  c.data.train_list = (dir / "train_list.txt").string();
  c.data.input_size = 32;
  c.data.resize = 36;
  c.data.channels = 1;
  c.paths.checkpoints_path = dir.string();
  return c;
}

TrainOptions quiet() {
  TrainOptions o;
  o.progress = false;
  return o;
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(Train, LossFallsOnRealFaces) {
  const auto dir = test::temp_dir("train_falls");
  const auto r = train(tiny_config(dir, 5), quiet());
  ASSERT_EQ(r.history.size(), 5u);
  const double first = r.history.front()["loss"], last = r.history.back()["loss"];
  EXPECT_LT(last, 0.8 * first) << "loss " << first << " -> " << last;
  for (const char* file :
       {"last.pt", "best.pt", "history.json", "training_config.json", "training.log"}) {
    EXPECT_TRUE(fs::exists(dir / file)) << file;
  }
  const auto ck = load_checkpoint(dir / "last.pt");
  EXPECT_EQ(ck.epoch, 5);
  EXPECT_EQ(ck.backbone.name(), "resnet_face18");
  EXPECT_EQ(ck.config["training"]["max_epoch"], 5);
}

// Validation every other epoch: best.pt is the best validated epoch, never an epoch whose
// only figure is its training accuracy (a different scale).
TEST(Train, BestCheckpointComparesValidatedEpochsOnly) {
  const auto dir = test::temp_dir("train_best");
  auto c = tiny_config(dir, 4);
  c.val.root = (test::sample_dir() / "lfw").string();
  c.val.pairs = (test::sample_dir() / "pairs.txt").string();
  c.val.interval = 2;
  const auto r = train(c, quiet());
  ASSERT_EQ(r.history.size(), 4u);
  int64_t best_epoch = 0;
  double best = -1;
  for (const auto& record : r.history) {
    if (!record.contains("val")) continue;
    const double v = record["val"]["accuracy_10fold_mean"];
    if (v > best) best = v, best_epoch = record["epoch"];
  }
  EXPECT_TRUE(best_epoch == 2 || best_epoch == 4) << best_epoch;
  EXPECT_EQ(load_checkpoint(dir / "best.pt").epoch, best_epoch);
  std::ifstream in(dir / "best_lfw.json");
  EXPECT_EQ(nlohmann::json::parse(in)["epoch"], best_epoch);
  EXPECT_EQ(r.best_metric_name, "val_accuracy_10fold");
  EXPECT_DOUBLE_EQ(r.best_metric, best);
}

// Several validation targets: each is logged and kept by name, and val.select chooses best.pt
// by one of them or their mean.
TEST(Train, ValidatesOnSeveralTargets) {
  const auto dir = test::temp_dir("train_targets");
  auto c = tiny_config(dir, 2);
  c.val.root = (test::sample_dir() / "lfw").string();
  c.val.pairs = (test::sample_dir() / "pairs.txt").string();
  c.val.name = "sample";
  // The same pairs again under another name (a second file would serve as well).
  c.val.targets = {"two=" + c.val.pairs + "," + c.val.root};
  c.val.select = "mean";
  c.val.folds = 10;
  const auto r = train(c, quiet());
  ASSERT_EQ(r.history.size(), 2u);
  const auto& v = r.history.back()["val"];
  ASSERT_TRUE(v.contains("targets")) << v.dump();
  for (const char* name : {"sample", "two"}) {
    EXPECT_TRUE(v["targets"].contains(name)) << name;
  }
  EXPECT_DOUBLE_EQ(v["accuracy_10fold_mean"].get<double>(),
                   v["targets"]["sample"]["accuracy_10fold_mean"].get<double>());
  EXPECT_DOUBLE_EQ(v["mean_accuracy"].get<double>(),
                   0.5 * (v["targets"]["sample"]["accuracy_10fold_mean"].get<double>() +
                          v["targets"]["two"]["accuracy_10fold_mean"].get<double>()));
  EXPECT_EQ(r.best_metric_name, "val_mean_accuracy");
  std::ifstream log(dir / "training.log");
  const std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(text.find("Validation on two"), std::string::npos);

  // A target named twice, or a choice that names none, is refused before training.
  auto bad = c;
  bad.val.targets = {"sample=" + c.val.pairs + "," + c.val.root};
  EXPECT_THROW(check_config(bad), Error);
  bad = c;
  bad.val.select = "CFP-FP";
  EXPECT_THROW(check_config(bad), Error);
  bad = c;
  bad.val.targets = {"no-equals-sign"};
  EXPECT_THROW(check_config(bad), Error);
}

// Resuming from an older epoch's checkpoint keeps the run's best.pt until an epoch beats it.
TEST(Train, ResumingFromAnOlderEpochKeepsABetterBest) {
  const auto dir = test::temp_dir("train_resume_best");
  auto c = tiny_config(dir, 2);
  c.training.save_interval = 1;
  train(c, quiet());
  const auto best = load_checkpoint(dir / "best.pt");
  // Make the kept best.pt unbeatable, then replay epoch 2 from epoch 1's checkpoint.
  Checkpoint unbeatable = best;
  unbeatable.metrics["best"]["value"] = 2.0;
  save_checkpoint(unbeatable, dir / "best.pt");
  auto options = quiet();
  options.resume = dir / "epoch_001.pt";
  const auto r = train(c, options);
  EXPECT_EQ(r.epochs_done, 2);
  EXPECT_DOUBLE_EQ(r.best_metric, 2.0);
  EXPECT_EQ(load_checkpoint(dir / "best.pt").metrics["best"]["value"], 2.0);
}

TEST(Train, ResumeMidEpochEndsWithTheSameWeights) {
  const auto straight = test::temp_dir("train_straight");
  train(tiny_config(straight, 2), quiet());

  const auto split = test::temp_dir("train_split");
  auto options = quiet();
  options.max_steps = 4;  // stops inside the first epoch (6 batches)
  const auto stopped = train(tiny_config(split, 2), options);
  ASSERT_TRUE(stopped.interrupted);
  EXPECT_EQ(load_checkpoint(split / "last.pt").batch_in_epoch, 4);
  options.max_steps = 0;
  options.resume = split / "last.pt";
  const auto resumed = train(tiny_config(split, 2), options);
  EXPECT_FALSE(resumed.interrupted);

  const auto a = load_checkpoint(straight / "last.pt"), b = load_checkpoint(split / "last.pt");
  EXPECT_EQ(a.global_step, b.global_step);
  ASSERT_EQ(a.backbone_state.size(), b.backbone_state.size());
  for (size_t i = 0; i < a.backbone_state.size(); ++i) {
    EXPECT_TRUE(torch::equal(a.backbone_state[i].second, b.backbone_state[i].second))
        << a.backbone_state[i].first;
  }
  EXPECT_TRUE(torch::equal(a.head_state[0].second, b.head_state[0].second));
  EXPECT_EQ(a.metrics["history"].size(), 2u);
  EXPECT_DOUBLE_EQ(a.metrics["history"][1]["loss"], b.metrics["history"][1]["loss"]);
}

TEST(Train, NonFiniteLossStopsAndKeepsTheLastCheckpoint) {
  const auto dir = test::temp_dir("train_nan");
  train(tiny_config(dir, 1), quiet());
  const auto before = bytes_of(dir / "last.pt");
  auto config = tiny_config(dir, 3);
  config.training.lr = 1e30;
  auto options = quiet();
  options.resume = dir / "last.pt";
  try {
    train(config, options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the loss became"), std::string::npos) << e.what();
  }
  EXPECT_EQ(before, bytes_of(dir / "last.pt"));
}

TEST(Train, ResumingIntoAnotherNetworkIsRefused) {
  const auto dir = test::temp_dir("train_other");
  train(tiny_config(dir, 1), quiet());
  auto config = tiny_config(dir, 2);
  config.data.input_size = 48;
  config.data.resize = 48;
  auto options = quiet();
  options.resume = dir / "last.pt";
  try {
    train(config, options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.input_size = 32"), std::string::npos) << e.what();
  }
}

std::string train_error(TrainConfig config) {
  try {
    train(config, quiet());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Fine-tuning on the same classes can start from the file's margin head as well as its
// backbone; a head of other classes is refused by name.
TEST(Train, FineTuningCanStartFromTheMarginHead) {
  const auto dir = test::temp_dir("train_head");
  train(tiny_config(dir / "first", 1), quiet());
  const auto first = load_checkpoint(dir / "first" / "last.pt");

  auto config = tiny_config(dir / "tuned", 1);
  config.model.pretrained = (dir / "first" / "last.pt").string();
  config.model.pretrained_head = true;
  config.training.lr = 1e-9;
  auto options = quiet();
  options.max_steps = 1;
  train(config, options);
  const auto tuned = load_checkpoint(dir / "tuned" / "last.pt");
  ASSERT_EQ(tuned.head_state.size(), 1u);
  EXPECT_TRUE(torch::allclose(tuned.head_state[0].second, first.head_state[0].second, 0, 1e-6));

  config.model.pretrained_head = false;  // a fresh head: nothing like the trained one
  config.paths.checkpoints_path = (dir / "fresh").string();
  train(config, options);
  const auto fresh = load_checkpoint(dir / "fresh" / "last.pt");
  EXPECT_FALSE(torch::allclose(fresh.head_state[0].second, first.head_state[0].second, 0, 1e-3));

  config.model.pretrained_head = true;
  config.model.num_classes = 9;
  const auto message = train_error(config);
  EXPECT_NE(message.find("margin head"), std::string::npos) << message;
  EXPECT_NE(message.find("weight"), std::string::npos) << message;
}

TEST(Train, BadInputsAreNamed) {
  const auto dir = test::temp_dir("train_bad");
  auto config = tiny_config(dir, 1);
  config.model.num_classes = 4;  // the list has labels up to 7
  EXPECT_NE(train_error(config).find(">= model.num_classes 4"), std::string::npos);

  config = tiny_config(dir, 1);
  config.data.train_list = (dir / "absent.txt").string();
  EXPECT_NE(train_error(config).find("absent.txt"), std::string::npos);

  config = tiny_config(dir, 1);
  config.data.train_root = (dir / "nowhere").string();
  EXPECT_NE(train_error(config).find("not found"), std::string::npos);

  std::ofstream(dir / "empty.txt") << "";
  config = tiny_config(dir, 1);
  config.data.train_list = (dir / "empty.txt").string();
  EXPECT_NE(train_error(config).find("is empty"), std::string::npos);

  // A corrupt image among good ones.
  fs::create_directories(dir / "root" / "a");
  fs::copy_file(test::sample_dir() / "train" / "Alvaro_Uribe" / "Alvaro_Uribe_0001.jpg",
                dir / "root" / "a" / "1.jpg");
  std::ofstream(dir / "root" / "a" / "2.jpg") << "garbage";
  std::ofstream(dir / "list2.txt") << "a/1.jpg 0\na/2.jpg 1\n";
  config = tiny_config(dir, 1);
  config.training.batch_size = 2;
  config.data.train_root = (dir / "root").string();
  config.data.train_list = (dir / "list2.txt").string();
  EXPECT_NE(train_error(config).find("2.jpg"), std::string::npos);

  config = tiny_config(dir, 1);
  config.model.backbone = "alexnet";
  EXPECT_NE(train_error(config).find("unknown backbone 'alexnet'"), std::string::npos);
  config = tiny_config(dir, 1);
  config.training.optimizer = "lbfgs";
  EXPECT_NE(train_error(config).find("training.optimizer"), std::string::npos);
}

TEST(Train, DamagedImagesAreNamedOrSkippedAndListed) {
  const auto dir = test::temp_dir("train_damaged");
  auto config = tiny_config(dir, 1);
  // One image of the list cut short, as a failed copy leaves it.
  const Dataset data = read_train_list(config.data.train_list, config.data.train_root);
  fs::create_directories(dir / "root");
  for (const auto& s : data.samples) {
    fs::create_directories((dir / "root" / s.path).parent_path());
    fs::copy_file(data.root / s.path, dir / "root" / s.path);
  }
  const std::string cut = data.samples[5].path;
  fs::resize_file(dir / "root" / cut, 700);
  config.data.train_root = (dir / "root").string();
  try {
    training_images(config);
    FAIL() << "a truncated training image was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("1 images of train list"), std::string::npos) << message;
    EXPECT_NE(message.find(cut + "' is damaged"), std::string::npos) << message;
    EXPECT_NE(message.find("data.bad_images: skip"), std::string::npos) << message;
  }
  config.data.bad_images = "skip";
  const auto images = training_images(config);
  ASSERT_EQ(images.skipped.size(), 1u);
  EXPECT_EQ(images.skipped[0].name, cut);
  EXPECT_EQ(images.names.size(), data.samples.size() - 1);
  EXPECT_EQ(images.labels.size(), images.names.size());
  EXPECT_EQ(std::count(images.names.begin(), images.names.end(), cut), 0);
  // A run without it lists and counts it.
  train(config, quiet());
  std::ifstream history(dir / "history.json");
  EXPECT_EQ(nlohmann::json::parse(history)[0].at("bad_images_skipped"), 1);
  EXPECT_NE(bytes_of(dir / "bad_images.txt").find(cut), std::string::npos);
}

// A teacher's embeddings alone train a student on images without labels: the student's
// distance to its teacher falls, and that closeness picks best.pt.
TEST(Train, TeacherAloneTrainsOnUnlabelledImages) {
  const auto dir = test::temp_dir("train_teacher_alone");
  train(tiny_config(dir / "teacher", 3), quiet());

  auto config = tiny_config(dir / "student", 4);
  config.data.train_list.clear();  // every image below the root, no identity folders read
  config.model.num_classes = 2;
  config.distill.teacher = (dir / "teacher" / "last.pt").string();
  config.distill.margin_weight = 0;
  config.distill.embedding_weight = 2;
  config.distill.hard_rule = "none";
  const auto r = train(config, quiet());
  ASSERT_EQ(r.history.size(), 4u);
  const double first = r.history.front()["distill_loss"], last = r.history.back()["distill_loss"];
  EXPECT_LT(last, 0.7 * first) << "1 - cos(student, teacher) " << first << " -> " << last;
  EXPECT_EQ(r.best_metric_name, "train_teacher_cosine");
  const double cosine = r.history.back()["teacher_cosine"];
  EXPECT_NEAR(cosine, 1 - last / 2, 1e-9);
  const auto images = unlabelled_images(config.data.train_root).samples.size();
  EXPECT_EQ(r.history.back()["images"].get<size_t>(), images);

  // What needs labels is refused by name.
  config.distill.hard_rule = "margin";
  EXPECT_NE(train_error(config).find("distill.hard_rule"), std::string::npos);
  config.distill.hard_rule = "none";
  config.distill.logit_weight = 1;
  EXPECT_NE(train_error(config).find("distill.logit_weight"), std::string::npos);
  config.distill.logit_weight = 0;
  config.distill.teacher.clear();
  EXPECT_NE(train_error(config).find("distill.teacher"), std::string::npos);
}

TEST(Train, BestCheckpointPolicy) {
  auto epoch = [](const std::string& metric, double value, int epoch) {
    return nlohmann::json{{"metric", metric}, {"value", value}, {"epoch", epoch}};
  };
  EXPECT_TRUE(beats(epoch("train_accuracy", 0.1, 1), nlohmann::json::object()));
  EXPECT_TRUE(beats(epoch("train_accuracy", 0.5, 2), epoch("train_accuracy", 0.4, 1)));
  EXPECT_FALSE(beats(epoch("train_accuracy", 0.4, 2), epoch("train_accuracy", 0.4, 1)));
  // A validated epoch replaces any training accuracy, and only a validated epoch replaces it.
  EXPECT_TRUE(beats(epoch("val_accuracy_10fold", 0.6, 5), epoch("train_accuracy", 0.99, 4)));
  EXPECT_FALSE(beats(epoch("train_accuracy", 0.99, 6), epoch("val_accuracy_10fold", 0.6, 5)));
  EXPECT_TRUE(beats(epoch("val_accuracy_10fold", 0.7, 10), epoch("val_accuracy_10fold", 0.6, 5)));
  // Closeness to a teacher is a training measure too.
  EXPECT_FALSE(beats(epoch("train_teacher_cosine", 0.9, 6), epoch("val_accuracy_best", 0.6, 5)));
  EXPECT_TRUE(beats(epoch("val_accuracy_best", 0.6, 5), epoch("train_teacher_cosine", 0.9, 4)));
}

TEST(Train, InterruptSignalSavesAResumableCheckpoint) {
  const auto dir = test::temp_dir("train_sigint");
  auto config = tiny_config(dir, 50);
  std::ofstream(dir / "config.yaml") << config_to_json(config).dump(2);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string config_path = (dir / "config.yaml").string();
    freopen((dir / "out.txt").c_str(), "w", stdout);
    freopen((dir / "err.txt").c_str(), "w", stderr);
    execl(ARCFACE_BINARY, ARCFACE_BINARY, "train", "--config", config_path.c_str(), "--no-progress",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until the first epoch is done, then interrupt.
  for (int i = 0; i < 600 && !fs::exists(dir / "history.json"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(fs::exists(dir / "history.json")) << "training did not get through an epoch";
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  // The signal is answered at once, though the stop waits for the step.
  std::stringstream err;
  err << std::ifstream(dir / "err.txt").rdbuf();
  EXPECT_NE(err.str().find("Stopping after the next step"), std::string::npos) << err.str();
  const auto ck = load_checkpoint(dir / "last.pt");
  EXPECT_GE(ck.epoch, 1);
  EXPECT_LT(ck.epoch, 50);
}

}  // namespace
}  // namespace arcface
