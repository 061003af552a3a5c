#include <torch/serialize.h>
#include <torch/torch.h>

#include <fstream>

#include "arcface/checkpoint.h"
#include "arcface/error.h"
#include "arcface/optim.h"
#include "test_util.h"

namespace arcface {
namespace {

Checkpoint make(const std::string& backbone_name) {
  torch::manual_seed(1);
  Checkpoint c;
  c.backbone = BackboneOptions(backbone_name).input_size(64).channels(1).dropout(0.5);
  auto backbone = make_backbone(c.backbone);
  MarginHead head(MarginHeadOptions(512, 7).scale(32).margin(0.45).easy_margin(true));
  c.head = head->options();
  // One optimizer step so there is momentum to save.
  std::vector<at::Tensor> params = backbone->parameters();
  for (auto& p : head->parameters()) params.push_back(p);
  auto opt = make_optimizer(params, {"sgd", 0.1, 0.9, 5e-4});
  auto x = torch::randn({4, 1, 64, 64});
  auto labels = torch::tensor({0, 1, 2, 3}, torch::kLong);
  head->forward(backbone->forward(x), labels).sum().backward();
  opt->step();
  c.backbone_state = state_dict(*backbone);
  c.head_state = state_dict(*head);
  c.optimizer_type = "sgd";
  c.optimizer_state = export_optimizer_state(*opt);
  c.preprocess.input_size = 64;
  c.preprocess.color = Color::Gray;
  c.scheduler = {{"type", "step"}, {"last_epoch", 3}};
  c.epoch = 3;
  c.batch_in_epoch = 5;
  c.global_step = 77;
  c.config = {{"training", {{"lr", 0.1}, {"milestones", {1, 2}}}}};
  c.metrics = {{"best", {{"value", 0.875}}}};
  return c;
}

void expect_same(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  std::map<std::string, at::Tensor> m(b.begin(), b.end());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(m.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, m[name])) << name;
    EXPECT_EQ(t.scalar_type(), m[name].scalar_type()) << name;
  }
}

TEST(Checkpoint, RoundTripIsBitExact) {
  const auto dir = test::temp_dir("checkpoint");
  const auto c = make("resnet_face18");
  save_checkpoint(c, dir / "a.pt");
  const auto d = load_checkpoint(dir / "a.pt");
  expect_same(c.backbone_state, d.backbone_state);
  expect_same(c.head_state, d.head_state);
  ASSERT_EQ(c.optimizer_state.size(), d.optimizer_state.size());
  for (const auto& [i, entry] : c.optimizer_state) {
    EXPECT_TRUE(
        torch::equal(entry.at("momentum_buffer"), d.optimizer_state.at(i).at("momentum_buffer")));
  }
  EXPECT_EQ(d.backbone.name(), "resnet_face18");
  EXPECT_EQ(d.backbone.input_size(), 64);
  EXPECT_EQ(d.backbone.channels(), 1);
  EXPECT_DOUBLE_EQ(d.backbone.dropout(), 0.5);
  EXPECT_EQ(d.head.num_classes(), 7);
  EXPECT_DOUBLE_EQ(d.head.margin(), 0.45);
  EXPECT_TRUE(d.head.easy_margin());
  EXPECT_EQ(d.preprocess.color, Color::Gray);
  EXPECT_EQ(d.epoch, 3);
  EXPECT_EQ(d.batch_in_epoch, 5);
  EXPECT_EQ(d.global_step, 77);
  EXPECT_EQ(d.config, c.config);
  EXPECT_EQ(d.metrics, c.metrics);
  // Saving what was loaded gives the same bytes.
  save_checkpoint(d, dir / "b.pt");
  auto bytes = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  EXPECT_EQ(bytes(dir / "a.pt"), bytes(dir / "b.pt"));
}

TEST(Checkpoint, StrictLoadingNamesWhatDoesNotFit) {
  const auto c = make("resnet_face18");
  auto other = make_backbone(BackboneOptions("iresnet18").input_size(64).channels(1));
  try {
    load_state_dict(*other, c.backbone_state, "file 'x.pt'");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing: "), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected: "), std::string::npos) << m;
    EXPECT_NE(m.find("layer1.0.bn0.weight"), std::string::npos) << m;
  }
  auto wider =
      make_backbone(BackboneOptions("resnet_face18").input_size(64).channels(1).embedding_dim(256));
  try {
    load_state_dict(*wider, c.backbone_state, "file 'x.pt'");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wrong shape: fc5.weight"), std::string::npos) << e.what();
  }
  auto extra = c.backbone_state;
  extra.emplace_back("bogus.weight", torch::zeros({1}));
  auto same = make_backbone(c.backbone);
  EXPECT_THROW(load_state_dict(*same, extra, "file"), Error);
  auto partial = c.backbone_state;
  partial.pop_back();
  EXPECT_THROW(load_state_dict(*same, partial, "file"), Error);
  EXPECT_NO_THROW(load_state_dict(*same, c.backbone_state, "file"));
}

TEST(Checkpoint, RejectsOtherFilesAndVersions) {
  const auto dir = test::temp_dir("checkpoint_bad");
  std::ofstream(dir / "junk.pt") << "not a checkpoint";
  EXPECT_THROW(load_checkpoint(dir / "junk.pt"), Error);
  EXPECT_THROW(load_checkpoint(dir / "absent.pt"), Error);

  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("format", std::string("arcface.checkpoint"));
  d.insert("format_version", int64_t{99});
  auto bytes = torch::pickle_save(d);
  std::ofstream(dir / "future.pt", std::ios::binary).write(bytes.data(), bytes.size());
  try {
    load_checkpoint(dir / "future.pt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("format version 99"), std::string::npos) << e.what();
  }
  c10::impl::GenericDict plain(c10::StringType::get(), c10::AnyType::get());
  plain.insert("weight", torch::zeros({2}));
  bytes = torch::pickle_save(plain);
  std::ofstream(dir / "plain.pt", std::ios::binary).write(bytes.data(), bytes.size());
  EXPECT_THROW(load_checkpoint(dir / "plain.pt"), Error);
}

TEST(Checkpoint, PlainStateDictForPython) {
  const auto dir = test::temp_dir("state_dict");
  const auto c = make("resnet_face18");
  save_state_dict(c.backbone_state, dir / "backbone.pth");
  std::ifstream in(dir / "backbone.pth", std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  const auto dict = torch::pickle_load(bytes).toGenericDict();
  ASSERT_EQ(dict.size(), c.backbone_state.size());
  for (const auto& [name, tensor] : c.backbone_state) {
    EXPECT_TRUE(torch::equal(dict.at(name).toTensor(), tensor)) << name;
  }
}

}  // namespace
}  // namespace arcface
