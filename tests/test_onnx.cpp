#include <torch/torch.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "arcface/embedder.h"
#include "arcface/error.h"
#include "test_util.h"

namespace arcface {
namespace {

// tests/data/make_onnx_fixture.py: a tiny random-weight ONNX embedder and the embeddings
// Python PyTorch computes for a synthetic 64x64 image.
struct Fixture {
  std::filesystem::path model = test::source_dir() / "tests" / "data" / "tiny_embedder.onnx";
  nlohmann::json expected;
  Fixture() {
    std::ifstream in(test::source_dir() / "tests" / "data" / "tiny_embedder.json");
    expected = nlohmann::json::parse(in);
  }
};

Image pattern_bgr(int size) {
  Image image(size, size, 3);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      uint8_t* px = image.row(y) + 3 * x;
      for (int c = 0; c < 3; ++c) px[2 - c] = static_cast<uint8_t>((x * 3 + y * 5 + c * 70) % 256);
    }
  }
  return image;
}

torch::Tensor unit(const std::vector<float>& v) {
  auto t = torch::tensor(v);
  return t / t.norm();
}

TEST(Onnx, EmbeddingsMatchPythonPyTorch) {
  Fixture f;
  Preprocess p;
  p.input_size = 64;
  auto embedder = Embedder::load(f.model, "cpu", {p, ""});
  EXPECT_EQ(embedder.dim(), 32);
  const auto e = f.expected["embedding"].get<std::vector<float>>();
  const auto m = f.expected["embedding_of_mirror"].get<std::vector<float>>();
  auto got = embedder.embed(pattern_bgr(64))[0];
  EXPECT_LT((got - unit(e)).abs().max().item<double>(), 1e-4);
  std::vector<float> sum(e.size());
  for (size_t i = 0; i < e.size(); ++i) sum[i] = e[i] + m[i];
  auto summed = embedder.embed(pattern_bgr(64), FlipMode::Sum)[0];
  EXPECT_LT((summed - unit(sum)).abs().max().item<double>(), 1e-4);
  // A batch gives the same rows.
  auto batch = embedder.embed(std::vector<Image>{pattern_bgr(64), pattern_bgr(64)});
  EXPECT_LT((batch[1] - unit(e)).abs().max().item<double>(), 1e-4);
}

TEST(Onnx, InputThatDoesNotFitIsAClearError) {
  Fixture f;
  Preprocess p;
  p.input_size = 48;
  try {
    Embedder::load(f.model, "cpu", {p, ""});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not accept 3x48x48"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Embedder::load(test::source_dir() / "tests" / "data" / "absent.onnx"), Error);
}

TEST(Onnx, RunsInFp32AndRefusesBf16) {
  Fixture f;
  Preprocess p;
  p.input_size = 64;
  auto embedder = Embedder::load(f.model, "cpu", {p, ""});
  embedder.precision(Precision::Auto);
  EXPECT_EQ(embedder.precision(), Precision::Fp32);
  EXPECT_THROW(embedder.precision(Precision::Bf16), Error);
}

}  // namespace
}  // namespace arcface
