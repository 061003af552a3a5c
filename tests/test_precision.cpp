#include <torch/torch.h>

#include "arcface/config.h"
#include "arcface/dataset.h"
#include "arcface/error.h"
#include "arcface/evaluate.h"
#include "arcface/learner.h"
#include "arcface/system.h"
#include "arcface/trainer.h"
#include "fixture_model.h"
#include "test_util.h"

namespace arcface {
namespace {

TEST(Precision, NamesAndWhatAutoMeans) {
  EXPECT_EQ(parse_precision("auto"), Precision::Auto);
  EXPECT_EQ(parse_precision("fp32"), Precision::Fp32);
  EXPECT_EQ(parse_precision("bf16"), Precision::Bf16);
  EXPECT_EQ(parse_precision("fp16"), Precision::Fp16);
  EXPECT_EQ(to_string(Precision::Bf16), "bf16");
  try {
    parse_precision("half");
    FAIL() << "half accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'half'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(resolve_precision(Precision::Auto, /*cuda=*/false),
            cpu_has_native_bf16() ? Precision::Bf16 : Precision::Fp32);
  EXPECT_EQ(resolve_precision(Precision::Auto, /*cuda=*/true),
            cuda_has_native_bf16() ? Precision::Bf16 : Precision::Fp16);
  EXPECT_EQ(resolve_precision(Precision::Bf16, false), Precision::Bf16);
  EXPECT_EQ(resolve_precision(Precision::Fp16, true), Precision::Fp16);
  EXPECT_THROW(parse_config("training: {precision: half}", "test.yaml"), Error);
}

// libtorch's CPU autocast has no fp16: asking for it on the CPU is refused, not ignored.
TEST(Precision, Fp16OnTheCpuIsRefusedByName) {
  auto net = make_backbone(BackboneOptions("mobilefacenet").input_size(32).embedding_dim(64));
  Learner learner(net, MarginHead(MarginHeadOptions(64, 4)), LossOptions{}, {"sgd", 0.1, 0.9, 0},
                  torch::kCPU);
  try {
    learner.precision(Precision::Fp16);
    FAIL() << "fp16 accepted on the CPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp16 needs a CUDA device"), std::string::npos)
        << e.what();
  }
  auto embedder = Embedder::load(test::fixture_model());
  EXPECT_THROW(embedder.precision(Precision::Fp16), Error);
}

// bf16 runs on every CPU (emulated where it is not native, slowly): the descriptors of real
// faces must stay close to fp32's, and must differ from them, or bf16 did not run. (Rounding
// every layer's input to 8 bits moves a descriptor by a few degrees; on a trained model the
// LFW accuracy holds, see the README.)
TEST(Precision, Bf16DescriptorsFollowFp32OnRealFaces) {
  auto fp32 = Embedder::load(test::fixture_model());
  auto bf16 = Embedder::load(test::fixture_model());
  bf16.precision(Precision::Bf16);
  ASSERT_EQ(bf16.precision(), Precision::Bf16);
  auto images = read_pairs(test::sample_dir() / "pairs.txt").images;
  images.resize(16);
  EvalOptions o;
  o.progress = false;
  o.flip = FlipMode::Concat;
  const ImageSource source{test::sample_dir() / "lfw", images, {}, {}};
  const auto a = embed_images(fp32, source, o), b = embed_images(bf16, source, o);
  ASSERT_EQ(a.sizes(), b.sizes());
  const auto cosine = (a * b).sum(1);
  EXPECT_GT(cosine.min().item<double>(), 0.97) << "image " << cosine.argmin().item<int64_t>();
  EXPECT_FALSE(torch::equal(a, b));
}

// A bf16 training step keeps fp32 weights and gradients, and learns.
TEST(Precision, Bf16TrainingStepsLearnWithFp32Weights) {
  torch::manual_seed(0);
  auto net =
      make_backbone(BackboneOptions("mobilefacenet").input_size(32).channels(3).embedding_dim(64));
  Learner learner(net, MarginHead(MarginHeadOptions(64, 4).scale(16).margin(0.2)),
                  LossOptions().type(LossType::CrossEntropy), {"sgd", 0.1, 0.9, 0}, torch::kCPU);
  learner.precision(Precision::Bf16);
  learner.train();
  const auto images = torch::randn({16, 3, 32, 32});
  const auto labels = torch::arange(16, torch::kLong) % 4;
  const double first = learner.step(images, labels, 0.1, 0).loss;
  double last = first;
  for (int i = 1; i < 15; ++i) last = learner.step(images, labels, 0.1, i).loss;
  EXPECT_TRUE(std::isfinite(last));
  EXPECT_LT(last, 0.5 * first) << first << " -> " << last;
  for (const auto& p : learner.backbone()->parameters()) {
    EXPECT_EQ(p.scalar_type(), torch::kFloat);
    if (p.grad().defined()) EXPECT_EQ(p.grad().scalar_type(), torch::kFloat);
  }
}

// Free pages go back once the process has grown by the limit over its settled size, and only
// then; memory a release cannot return becomes the base. rss_mib() and release_free_memory()
// themselves work in this process.
TEST(Memory, GrowthLimitReleasesOnlyPastItsLimit) {
  double rss = 500, after_release = 520;
  int released = 0;
  MemoryGrowthLimit limit(
      100, 3, [&] { return rss; },
      [&] {
        ++released;
        rss = after_release;
        return true;
      });
  EXPECT_FALSE(limit.after_step());
  rss = 900;  // before settling: not counted
  EXPECT_FALSE(limit.after_step());
  rss = 510;
  EXPECT_FALSE(limit.after_step());  // settled at 510
  rss = 600;
  EXPECT_FALSE(limit.after_step());
  rss = 611;
  EXPECT_TRUE(limit.after_step());
  EXPECT_EQ(released, 1);
  EXPECT_FALSE(limit.after_step());  // back at 520
  EXPECT_EQ(limit.releases(), 1);
  // Memory in real use: a release frees little, and the next comes only 100 MiB above it.
  rss = 700, after_release = 690;
  EXPECT_TRUE(limit.after_step());
  rss = 780;
  EXPECT_FALSE(limit.after_step());
  rss = 791;
  EXPECT_TRUE(limit.after_step());
  EXPECT_EQ(released, 3);

  EXPECT_GT(rss_mib(), 10);
  EXPECT_LE(rss_mib(), peak_rss_mib() + 1);
  EXPECT_EQ(release_free_memory(), system_info().allocator == "jemalloc");
}

}  // namespace
}  // namespace arcface
