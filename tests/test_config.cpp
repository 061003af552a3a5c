#include "arcface/config.h"
#include "arcface/error.h"
#include "test_util.h"

namespace arcface {
namespace {

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "cfg.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultReproducesSeed000) {
  const auto c = load_config((test::source_dir() / "config" / "default.yaml").string());
  EXPECT_EQ(c.model.backbone, "resnet18");
  EXPECT_EQ(c.model.metric, "arc_margin");
  EXPECT_FALSE(c.model.use_se);
  EXPECT_EQ(c.model.num_classes, 100);
  EXPECT_EQ(c.loss.type, "focal_loss");
  EXPECT_DOUBLE_EQ(c.loss.gamma, 2);
  EXPECT_EQ(c.training.batch_size, 32);
  EXPECT_EQ(c.training.max_epoch, 100);
  EXPECT_DOUBLE_EQ(c.training.lr, 0.001);
  EXPECT_EQ(c.training.lr_step, 20);
  EXPECT_EQ(c.training.optimizer, "sgd");
  EXPECT_DOUBLE_EQ(c.training.weight_decay, 0.0005);
  EXPECT_EQ(c.data.input_size, 128);
  EXPECT_EQ(c.data.channels, 1);
}

TEST(Config, OverridesReplaceAndCreateKeys) {
  const auto c =
      parse_config("training:\n  lr: 0.1\n", "cfg.yaml",
                   {"training.lr=0.01", "model.backbone=iresnet18", "data.mean=[0.5, 0.4, 0.3]",
                    "data.channels=3", "training.lr_milestones=[3, 5]"});
  EXPECT_DOUBLE_EQ(c.training.lr, 0.01);
  EXPECT_EQ(c.model.backbone, "iresnet18");
  EXPECT_EQ(c.data.mean, (std::vector<double>{0.5, 0.4, 0.3}));
  EXPECT_EQ(c.training.lr_milestones, (std::vector<int64_t>{3, 5}));
}

TEST(Config, UnknownKeysWrongTypesAndBadValuesAreNamed) {
  auto e = error_of("training:\n  lr: 0.1\n  lrr: 0.2\n");
  EXPECT_NE(e.find("cfg.yaml:3"), std::string::npos) << e;
  EXPECT_NE(e.find("'training.lrr'"), std::string::npos) << e;
  e = error_of("trainig:\n  lr: 0.1\n");
  EXPECT_NE(e.find("'trainig'"), std::string::npos) << e;
  e = error_of("training:\n  batch_size: many\n");
  EXPECT_NE(e.find("cfg.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("expects an integer"), std::string::npos) << e;
  e = error_of("model:\n  use_se: maybe\n");
  EXPECT_NE(e.find("'model.use_se' expects true or false"), std::string::npos) << e;
  e = error_of("", {"training.nope=1"});
  EXPECT_NE(e.find("unknown config key 'training.nope'"), std::string::npos) << e;
  e = error_of("", {"training.lr"});
  EXPECT_NE(e.find("key=value"), std::string::npos) << e;
  e = error_of("training:\n  lr: -1\n");
  EXPECT_NE(e.find("'training.lr'"), std::string::npos) << e;
  e = error_of("data:\n  channels: 2\n");
  EXPECT_NE(e.find("'data.channels'"), std::string::npos) << e;
  e = error_of("data:\n  random_gray: 1.5\n");
  EXPECT_NE(e.find("'data.random_gray'"), std::string::npos) << e;
  e = error_of("training: [1, 2\n");
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
  EXPECT_THROW(load_config("/nonexistent.yaml"), Error);
}

TEST(Config, JsonRoundTrip) {
  auto c = parse_config("training:\n  lr: 0.123\nmodel:\n  num_classes: 7\n", "cfg.yaml");
  const auto j = config_to_json(c);
  EXPECT_DOUBLE_EQ(j["training"]["lr"].get<double>(), 0.123);
  const auto back = parse_config(j.dump(), "json");
  EXPECT_EQ(config_to_json(back), j);
  size_t leaves = 0;
  for (const auto& [section, keys] : j.items()) leaves += keys.size();
  EXPECT_EQ(leaves, config_keys().size());
}

TEST(Config, EveryShippedConfigParses) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() / "config")) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_config(entry.path().string())) << entry.path();
    ++n;
  }
  EXPECT_GE(n, 5);
}

TEST(Config, DistillKeysAreChecked) {
  const auto c =
      load_config((test::source_dir() / "config" / "disjoint-mbf64-distill.yaml").string());
  EXPECT_EQ(c.distill.hard_rule, "margin");
  EXPECT_DOUBLE_EQ(c.distill.logit_weight, 1.0);
  auto e = error_of("distill:\n  temperature: 0\n");
  EXPECT_NE(e.find("'distill.temperature' = 0 is invalid"), std::string::npos) << e;
  e = error_of("distill:\n  hard_fraction: 1.5\n");
  EXPECT_NE(e.find("'distill.hard_fraction'"), std::string::npos) << e;
  e = error_of("distill:\n  teacher_model: x\n");
  EXPECT_NE(e.find("unknown config key 'distill.teacher_model'"), std::string::npos) << e;
  e = error_of("distill:\n  hard_rule: hardest\n");
  EXPECT_NE(e.find("'distill.hard_rule' = hardest is invalid"), std::string::npos) << e;
  e = error_of("distill:\n  teacher_color: yuv\n");
  EXPECT_NE(e.find("'distill.teacher_color' = yuv is invalid"), std::string::npos) << e;
  // A softmax head has no cosines to measure "close to another class" with.
  e = error_of("model:\n  metric: softmax\ndistill:\n  teacher: t.pt\n");
  EXPECT_NE(e.find("'distill.hard_rule' = margin is invalid: margin needs a margin head"),
            std::string::npos)
      << e;
}

}  // namespace
}  // namespace arcface
