#include "arcface/config.h"
#include "arcface/error.h"
#include "arcface/names.h"
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
  // Strings end up in JSON (training_config.json): bytes that are not UTF-8 are refused.
  e = error_of("paths:\n  checkpoints_path: \"runs/\xC3\x28\"\n");
  EXPECT_NE(e.find("cfg.yaml:2: config key 'paths.checkpoints_path' is not valid UTF-8"),
            std::string::npos)
      << e;
  e = error_of("data: {mean: 0.5, [std, 0.5]: 1}\n");
  EXPECT_NE(e.find("cfg.yaml:1: a config key must be a name"), std::string::npos) << e;
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

namespace arcface {
namespace {

// Means and stds apply to 0..1 pixels; insightface's 0..255 values are refused with the 0..1
// equivalent, in the config and for distillation teachers alike.
TEST(Config, NormalisationOnZeroTo255PixelsIsRefused) {
  auto message = error_of("data: {channels: 3, mean: [127.5, 127.5, 127.5], std: 0.5}");
  EXPECT_NE(message.find("config key 'data.mean' = 127.5,127.5,127.5 is outside [0, 1]"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("that is 0.5,0.5,0.5"), std::string::npos) << message;
  message = error_of("data: {std: 128}");
  EXPECT_NE(message.find("config key 'data.std' = 128 is outside (0, 1]"), std::string::npos)
      << message;
  EXPECT_NE(message.find("that is 0.50196"), std::string::npos) << message;
  message = error_of("data: {std: 0}");
  EXPECT_NE(message.find("outside (0, 1]"), std::string::npos) << message;
  message = error_of("distill: {teacher_mean: [-1]}");
  EXPECT_NE(message.find("distill.teacher_mean"), std::string::npos) << message;
  EXPECT_EQ(error_of("data: {channels: 3, mean: [0.485, 0.456, 0.406], std: [1, 1, 1]}"), "");
}

TEST(Config, BadImagesPolicyIsChecked) {
  EXPECT_EQ(error_of("data: {bad_images: skip}"), "");
  const auto message = error_of("data: {bad_images: ignore}");
  EXPECT_NE(message.find("data.bad_images"), std::string::npos) << message;
}

}  // namespace
}  // namespace arcface

namespace arcface {
namespace {

// Each named choice has one table: every name parses back to its value, and the config
// check names the key with the table's list.
TEST(Config, NamedChoicesComeFromOneTable) {
  for (auto v : {Color::RGB, Color::BGR, Color::Gray}) EXPECT_EQ(parse_color(to_string(v)), v);
  for (auto v : {FlipMode::None, FlipMode::Concat, FlipMode::Sum}) {
    EXPECT_EQ(parse_flip_mode(to_string(v)), v);
  }
  for (auto v : {MarginType::Arc, MarginType::Cos, MarginType::Softmax}) {
    EXPECT_EQ(parse_margin_type(to_string(v)), v);
  }
  EXPECT_EQ(parse_margin_type("cosface"), MarginType::Cos);
  EXPECT_EQ(parse_color("grey"), Color::Gray);
  EXPECT_EQ(expected_names<Precision>(), "auto, fp32, bf16 or fp16");
  EXPECT_THROW(parse_name<OptimizerType>("lbfgs"), Error);
  auto message = error_of("training: {optimizer: lbfgs}");
  EXPECT_NE(message.find("config key 'training.optimizer' = lbfgs is invalid: must be sgd or adam"),
            std::string::npos)
      << message;
  message = error_of("val: {flip: mirror}");
  EXPECT_NE(message.find("'val.flip' = mirror is invalid: must be concat, sum or none"),
            std::string::npos)
      << message;
  message = error_of("model: {backbone: alexnet}");
  EXPECT_NE(message.find("config key 'model.backbone': unknown backbone 'alexnet'"),
            std::string::npos)
      << message;
}

// The backbone's input rule is checked at load and names the key.
TEST(Config, InputSizeIsCheckedForTheBackbone) {
  auto message = error_of("model: {backbone: mobilefacenet}\ndata: {input_size: 40}");
  EXPECT_NE(message.find("config key 'data.input_size' = 40 is invalid: mobilefacenet takes an "
                         "input size that is a multiple of 16 and >= 32"),
            std::string::npos)
      << message;
  message = error_of("model: {backbone: inception_resnet_v1}\ndata: {input_size: 64}");
  EXPECT_NE(message.find(">= 80, not 64"), std::string::npos) << message;
  EXPECT_EQ(error_of("model: {backbone: inception_resnet_v1}\ndata: {input_size: 96}"), "");
}

}  // namespace
}  // namespace arcface
