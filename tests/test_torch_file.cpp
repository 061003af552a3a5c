#include <torch/torch.h>

#include <fstream>

#include "arcface/error.h"
#include "arcface/torch_file.h"
#include "test_util.h"

namespace arcface {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return test::source_dir() / "tests" / "data" / name; }

// The object of tests/data/make_torch_files.py, read from either format.
void expect_content(const Py& v) {
  ASSERT_EQ(v->kind, PyValue::Kind::Dict);
  EXPECT_EQ(v->get("epoch")->integer, 12);
  EXPECT_EQ(v->get("negative")->integer, -300000);
  EXPECT_DOUBLE_EQ(v->get("lr")->real, 0.1);
  EXPECT_EQ(v->get("name")->text, "ir18");
  const auto& flags = v->get("flags")->items;
  ASSERT_EQ(flags.size(), 3u);
  EXPECT_TRUE(flags[0]->boolean);
  EXPECT_FALSE(flags[1]->boolean);
  EXPECT_EQ(flags[2]->kind, PyValue::Kind::None);
  EXPECT_EQ(v->get("shape")->kind, PyValue::Kind::Tuple);
  EXPECT_EQ(v->get("shape")->items[1]->integer, 112);
  EXPECT_TRUE(torch::equal(v->get("param")->tensor, torch::ones(3)));
  EXPECT_EQ(v->get("missing"), nullptr);

  const StateDict state = to_state_dict(v->get("state_dict"), "fixture");
  ASSERT_EQ(state.size(), 6u);
  EXPECT_EQ(state[0].first, "conv.weight");
  EXPECT_TRUE(
      torch::equal(state[0].second, torch::arange(24, torch::kFloat32).reshape({2, 3, 2, 2}) / 8));
  EXPECT_TRUE(torch::equal(state[1].second, torch::tensor({-1.5f, 2.25f})));
  EXPECT_EQ(state[2].second.scalar_type(), torch::kLong);
  EXPECT_EQ(state[2].second.item<int64_t>(), 7);
  const auto base = torch::arange(6, torch::kFloat64).reshape({2, 3});
  EXPECT_EQ(state[3].first, "fc.weight");
  EXPECT_TRUE(torch::equal(state[3].second, base.t()));
  EXPECT_TRUE(torch::equal(state[4].second, base));
  EXPECT_EQ(state[5].second.scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::equal(state[5].second.to(torch::kFloat32), torch::tensor({0.5f, -2.0f})));
}

TEST(TorchFile, ReadsTheLegacyFormat) {
  expect_content(read_torch_file(fixture("torch_file_legacy.pt")));
}

TEST(TorchFile, ReadsTheZipFormat) {
  expect_content(read_torch_file(fixture("torch_file_zip.pt")));
}

TEST(TorchFile, ReadsFacenetPytorchMtcnnWeights) {
  REQUIRE_SHARED_DATA();
  const auto pnet = read_state_dict_file(test::shared_data() / "models" / "mtcnn" / "pnet.pt");
  ASSERT_EQ(pnet.size(), 13u);  // 5 convs with bias, 3 PReLUs
  EXPECT_EQ(pnet[0].first, "conv1.weight");
  EXPECT_EQ(pnet[0].second.sizes(), (std::vector<int64_t>{10, 3, 3, 3}));
  EXPECT_TRUE(torch::isfinite(pnet[0].second).all().item<bool>());
  EXPECT_GT(pnet[0].second.abs().sum().item<float>(), 0);
  const auto onet = read_state_dict_file(test::shared_data() / "models" / "mtcnn" / "onet.pt");
  bool found = false;
  for (const auto& [name, t] : onet) {
    if (name == "dense5.weight") {
      found = true;
      EXPECT_EQ(t.sizes(), (std::vector<int64_t>{256, 1152}));
    }
  }
  EXPECT_TRUE(found);
}

TEST(TorchFile, BadFilesAreClearErrors) {
  const auto dir = test::temp_dir("torch_file");
  EXPECT_THROW(read_torch_file(dir / "absent.pt"), Error);
  { std::ofstream(dir / "text.pt") << "not a checkpoint\n"; }
  try {
    read_torch_file(dir / "text.pt");
    FAIL() << "a text file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text.pt"), std::string::npos) << e.what();
  }
  // The legacy file cut in the middle of its storages.
  std::ifstream in(fixture("torch_file_legacy.pt"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  for (size_t cut : {bytes.size() - 5, bytes.size() / 2, size_t{40}}) {
    std::ofstream(dir / "cut.pt", std::ios::binary) << bytes.substr(0, cut);
    EXPECT_THROW(read_torch_file(dir / "cut.pt"), Error) << "cut at " << cut;
  }
  // A dict with a non-tensor entry is not a state dict.
  EXPECT_THROW(read_state_dict_file(fixture("torch_file_zip.pt")), Error);
}

}  // namespace
}  // namespace arcface
