// Weights saved by Python PyTorch (tests/data/make_interop_fixtures.py): seed 002's checkpoint
// dictionary, a plain state dict with DataParallel names in the legacy format, and seed 000's
// resnet_face18 — embedded in C++ as Python embedded them.
#include <torch/torch.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "arcface/embedder.h"
#include "arcface/error.h"
#include "arcface/weights.h"
#include "test_util.h"

namespace arcface {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return test::source_dir() / "tests" / "data" / name; }

nlohmann::json expected() {
  std::ifstream in(fixture("interop_expected.json"));
  return nlohmann::json::parse(in);
}

ForeignModel foreign(const nlohmann::json& e) {
  ForeignModel f;
  f.backbone = e["backbone"];
  f.preprocess.input_size = e["input_size"];
  f.preprocess.color = parse_color(e["color"]);
  f.preprocess.mean = {e["mean"].get<double>()};
  f.preprocess.std = {e["std"].get<double>()};
  return f;
}

TEST(Interop, PythonWeightsEmbedAsInPython) {
  const auto all = expected();
  for (const auto& [file, e] : all.items()) {
    auto embedder = Embedder::load(fixture(file), "cpu", foreign(e));
    std::vector<Image> faces;
    // Decoded as Python decoded them: JPEG's own grey differs slightly from BGR -> grey.
    const Color decode = foreign(e).preprocess.color == Color::Gray ? Color::Gray : Color::BGR;
    for (const auto& image : e["images"]) {
      faces.push_back(read_image(test::sample_dir() / "lfw" / image.get<std::string>(), decode));
    }
    const auto got = embedder.embed(faces);
    double worst = 0;
    for (size_t i = 0; i < faces.size(); ++i) {
      const auto row = torch::tensor(e["embeddings"][i].get<std::vector<float>>());
      worst = std::max(worst, (got[i] - row).abs().max().item<double>());
    }
    EXPECT_LT(worst, 1e-4) << file;
    std::cout << file << ": largest difference from Python " << worst << "\n";
    // The three faces are different people: the test would pass on a constant embedding only
    // if Python's were constant too.
    EXPECT_LT(Embedder::match(got[0], got[1]), 0.999) << file;
  }
}

TEST(Interop, Seed002CheckpointNamesItsNetwork) {
  const auto w = read_backbone_weights(fixture("interop_ir18_seed002.pth"));
  ASSERT_TRUE(w.backbone.has_value());
  EXPECT_EQ(*w.backbone, "ir_resnet18");
  EXPECT_NE(w.description.find("epoch 24"), std::string::npos) << w.description;
  // Its ArcFace head, for fine-tuning on the same classes (model.pretrained_head).
  ASSERT_EQ(w.head.size(), 1u);
  EXPECT_EQ(w.head[0].first, "weight");
  EXPECT_EQ(w.head[0].second.sizes(), (std::vector<int64_t>{10, 512}));
  // DataParallel's "module." prefix is dropped.
  const auto plain = read_backbone_weights(fixture("interop_ir18_plain.pth"));
  ASSERT_EQ(plain.state.size(), w.state.size());
  EXPECT_EQ(plain.state[0].first, w.state[0].first);
  EXPECT_EQ(plain.state[0].first.rfind("module.", 0), std::string::npos);
  EXPECT_TRUE(torch::equal(plain.state[5].second, w.state[5].second));
  EXPECT_TRUE(plain.head.empty());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Interop, MismatchesAreClearErrors) {
  ForeignModel f;
  // A plain state dict does not say what network it is for.
  auto message = error_of([&] { Embedder::load(fixture("interop_resnet_face18.pth"), "cpu", f); });
  EXPECT_NE(message.find("--backbone"), std::string::npos) << message;
  // The wrong network: strict loading lists what does not fit.
  f.backbone = "iresnet18";
  message = error_of([&] { Embedder::load(fixture("interop_resnet_face18.pth"), "cpu", f); });
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
  EXPECT_NE(message.find("interop_resnet_face18.pth"), std::string::npos) << message;
  // The file names its network and the user another one.
  f.backbone = "mobilefacenet";
  message = error_of([&] { Embedder::load(fixture("interop_ir18_seed002.pth"), "cpu", f); });
  EXPECT_NE(message.find("holds weights for iresnet18 but --backbone says mobilefacenet"),
            std::string::npos)
      << message;
  // Not a torch.save file at all.
  message = error_of([&] { read_backbone_weights(fixture("interop_expected.json")); });
  EXPECT_NE(message.find("not a torch.save file"), std::string::npos) << message;
}

}  // namespace
}  // namespace arcface
