// The CUDA path against the CPU. These run only where libtorch has CUDA and sees a device; on
// other machines each skips, saying so.
#include <torch/torch.h>

#include "arcface/backbone.h"
#include "arcface/checkpoint.h"
#include "arcface/embedder.h"
#include "arcface/head.h"
#include "arcface/learner.h"
#include "arcface/loader.h"
#include "arcface/system.h"
#include "test_util.h"
#include "util/autocast.h"

namespace arcface {
namespace {

#define REQUIRE_CUDA()                                                               \
  do {                                                                               \
    if (!torch::cuda::is_available())                                                \
      GTEST_SKIP() << "no CUDA device here (or this libtorch was built without it)"; \
  } while (0)

// Full fp32 on the GPU: TF32 matrix products would differ from the CPU by design.
void exact_fp32() {
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
}

double relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

TEST(Cuda, EveryBackboneMatchesTheCpu) {
  REQUIRE_CUDA();
  exact_fp32();
  struct Case {
    const char* name;
    int64_t size, channels;
  };
  for (const Case c :
       {Case{"resnet_face18", 64, 1}, Case{"iresnet18", 112, 3}, Case{"iresnet50", 112, 3},
        Case{"mobilefacenet", 112, 3}, Case{"inception_resnet_v1", 160, 3}}) {
    torch::manual_seed(3);
    auto b = make_backbone(BackboneOptions(c.name).input_size(c.size).channels(c.channels));
    b->eval();
    torch::NoGradGuard no_grad;
    const auto x = torch::randn({2, c.channels, c.size, c.size});
    const auto cpu = b->forward(x);
    b->to(torch::kCUDA);
    const auto gpu = b->forward(x.to(torch::kCUDA)).cpu();
    EXPECT_LT(relative_difference(gpu, cpu), 1e-4) << c.name;
  }
}

TEST(Cuda, TrainingStepsLowerTheLoss) {
  REQUIRE_CUDA();
  torch::manual_seed(4);
  auto backbone = make_backbone(BackboneOptions("iresnet18").input_size(64));
  MarginHead head(MarginHeadOptions(512, 8).scale(32).margin(0.4));
  Learner learner(backbone, head, LossOptions{}, {"sgd", 0.05, 0.9, 5e-4}, torch::kCUDA);
  const auto images = torch::randn({16, 3, 64, 64});
  const auto labels = torch::arange(16, torch::kLong) % 8;
  learner.train();
  const double first = learner.step(images, labels, 0.05, 1).loss;
  double last = first;
  for (uint64_t s = 2; s <= 30; ++s) last = learner.step(images, labels, 0.05, s).loss;
  EXPECT_TRUE(learner.backbone()->parameters().front().is_cuda());
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
}

// Auto is bf16 where the GPU has it natively (compute capability 8.0 and up), fp16 below.
TEST(Cuda, AutoPrecisionIsNativeBf16OrFp16WithLossScaling) {
  REQUIRE_CUDA();
  auto backbone = make_backbone(BackboneOptions("mobilefacenet").input_size(64));
  Learner learner(backbone, MarginHead(MarginHeadOptions(512, 8)), LossOptions{},
                  {"sgd", 0.05, 0.9, 5e-4}, torch::kCUDA);
  learner.precision(Precision::Auto);
  EXPECT_EQ(learner.precision(), cuda_has_native_bf16() ? Precision::Bf16 : Precision::Fp16);
  EXPECT_EQ(learner.loss_scaler() != nullptr, learner.precision() == Precision::Fp16);
}

// fp16 everywhere a GPU runs it: the loss is scaled, the weights stay fp32, and it learns.
TEST(Cuda, Fp16TrainingStepsLowerTheLoss) {
  REQUIRE_CUDA();
  torch::manual_seed(6);
  auto backbone = make_backbone(BackboneOptions("iresnet18").input_size(64));
  Learner learner(backbone, MarginHead(MarginHeadOptions(512, 8).scale(32).margin(0.4)),
                  LossOptions{}, {"sgd", 0.05, 0.9, 5e-4}, torch::kCUDA);
  learner.precision(Precision::Fp16);
  ASSERT_NE(learner.loss_scaler(), nullptr);
  const auto images = torch::randn({16, 3, 64, 64});
  const auto labels = torch::arange(16, torch::kLong) % 8;
  learner.train();
  const double first = learner.step(images, labels, 0.05, 1).loss;
  double last = first;
  int skipped = 0;
  for (uint64_t s = 2; s <= 40; ++s) {
    const auto step = learner.step(images, labels, 0.05, s);
    last = step.loss;
    skipped += step.skipped;
  }
  EXPECT_LT(skipped, 10);
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
  for (const auto& p : learner.backbone()->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
  // fp16 really ran: the network computes in half under the step's guard.
  torch::NoGradGuard no_grad;
  AutocastGuard autocast(learner.precision(), torch::kCUDA);
  EXPECT_EQ(learner.backbone()->forward(images.to(torch::kCUDA)).scalar_type(), torch::kHalf);
}

// Batches for a GPU come in page-locked memory, so their copies overlap the computation.
TEST(Cuda, LoaderPinsBatchesForTheGpu) {
  REQUIRE_CUDA();
  const auto root = test::sample_dir() / "lfw";
  std::vector<std::string> paths;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.path().extension() == ".jpg" && paths.size() < 8) {
      paths.push_back(std::filesystem::relative(e.path(), root).string());
    }
  }
  ASSERT_EQ(paths.size(), 8u);
  Preprocess pre;
  pre.input_size = 64;
  pre.resize = 64;
  LoaderOptions o;
  o.batch_size = 4;
  o.pin_memory = true;
  o.progress = false;
  Loader loader(ImageSource{root, paths, {}, {}}, std::vector<int64_t>(8, 0), pre, o);
  loader.start_epoch(0, 0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch);
  EXPECT_TRUE(batch->images.is_pinned());
  EXPECT_TRUE(batch->labels.is_pinned());
  const auto on_gpu = batch->images.to(torch::kCUDA, /*non_blocking=*/true);
  EXPECT_TRUE(torch::equal(on_gpu.cpu(), batch->images));
}

TEST(Cuda, CheckpointFromTheGpuLoadsOnTheCpuAndBack) {
  REQUIRE_CUDA();
  exact_fp32();
  torch::manual_seed(5);
  Checkpoint c;
  c.backbone = BackboneOptions("mobilefacenet").input_size(64);
  auto backbone = make_backbone(c.backbone);
  backbone->to(torch::kCUDA);
  c.backbone_state = state_dict(*backbone);  // copies on the CPU
  c.preprocess.input_size = 64;
  c.preprocess.color = Color::BGR;
  const auto dir = test::temp_dir("cuda_checkpoint");
  save_checkpoint(c, dir / "gpu.pt");

  Image face(64, 64, 3);
  for (size_t i = 0; i < face.pixels.size(); ++i) face.pixels[i] = static_cast<uint8_t>(i * 7);
  auto on_cpu = Embedder::load(dir / "gpu.pt", "cpu");
  auto on_gpu = Embedder::load(dir / "gpu.pt", "cuda");
  const auto a = on_cpu.embed(face), b = on_gpu.embed(face);
  EXPECT_LT(relative_difference(b, a), 1e-4);
  EXPECT_NEAR(Embedder::match(a, b), 1.0, 1e-5);
}

}  // namespace
}  // namespace arcface
