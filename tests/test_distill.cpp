#include <torch/torch.h>

#include <chrono>
#include <fstream>

#include "arcface/checkpoint.h"
#include "arcface/dataset.h"
#include "arcface/distill.h"
#include "arcface/error.h"
#include "fixture_model.h"
#include "test_util.h"

namespace arcface {
namespace {

namespace fs = std::filesystem;

TEST(Distill, MarginRuleMarksExamplesCloseToAnotherClass) {
  // Own-class cosine minus the best other: 0.8 (easy), 0.05 and -0.4 (hard at 0.1).
  const auto cosines =
      torch::tensor({0.9f, 0.1f, 0.0f, 0.5f, 0.45f, 0.0f, 0.2f, 0.6f, 0.1f}).view({3, 3});
  const auto labels = torch::tensor({0, 0, 0}, torch::kLong);
  DistillOptions o;
  o.hard_rule = HardRule::Margin;
  o.hard_margin = 0.1;
  o.hard_weight = 2.0;
  const auto w = hard_example_weights(cosines, torch::zeros({3}), labels, o);
  EXPECT_TRUE(torch::equal(w, torch::tensor({1.0f, 3.0f, 3.0f})));
  o.hard_rule = HardRule::None;
  EXPECT_TRUE(
      torch::equal(hard_example_weights(cosines, torch::zeros({3}), labels, o), torch::ones({3})));
}

TEST(Distill, HardExamplesAreCountedEvenWhenTheyWeighNoMore) {
  const auto student = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({2, 2});
  const auto logits = torch::tensor({0.9f, 0.1f, 0.5f, 0.45f}).view({2, 2});  // 2nd is hard
  const auto labels = torch::tensor({0, 0}, torch::kLong);
  DistillOptions o;
  o.hard_weight = 0.0;
  const auto terms =
      distillation_loss(student, logits, torch::zeros({2}), labels, student, {}, 1.0, o);
  EXPECT_EQ(terms.hard_examples, 1);
}

TEST(Distill, LossRuleMarksTheHighestLossFraction) {
  const auto loss = torch::tensor({0.1f, 2.0f, 0.5f, 3.0f});
  DistillOptions o;
  o.hard_rule = HardRule::Loss;
  o.hard_fraction = 0.5;
  o.hard_weight = 1.0;
  const auto w =
      hard_example_weights(torch::zeros({4, 2}), loss, torch::zeros({4}, torch::kLong), o);
  EXPECT_TRUE(torch::equal(w, torch::tensor({1.0f, 2.0f, 1.0f, 2.0f})));
}

TEST(Distill, EmbeddingTermIsTheWeightedCosineDistance) {
  // Example 0 agrees with its teacher (distance 0) and is easy; example 1 is orthogonal to it
  // (distance 1) and hard, weighing 3: (1*0 + 3*1) / (1 + 3).
  const auto student = torch::tensor({2.0f, 0.0f, 0.0f, 1.0f}).view({2, 2});
  const auto teacher = torch::tensor({1.0f, 0.0f, 1.0f, 0.0f}).view({2, 2});
  const auto logits = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({2, 2});  // scale 1
  const auto labels = torch::tensor({0, 0}, torch::kLong);
  DistillOptions o;
  o.hard_weight = 2.0;
  o.hard_margin = 0.1;
  const auto terms =
      distillation_loss(student, logits, torch::zeros({2}), labels, teacher, {}, 1.0, o);
  EXPECT_NEAR(terms.loss.item<double>(), 0.75, 1e-6);
  EXPECT_EQ(terms.hard_examples, 1);
}

TEST(Distill, LogitTermIsTemperatureScaledKl) {
  torch::manual_seed(0);
  const auto logits = torch::randn({4, 5});
  const auto labels = torch::tensor({0, 1, 2, 3}, torch::kLong);
  const auto emb = torch::randn({4, 8});
  DistillOptions o;
  o.embedding_weight = 0;
  o.logit_weight = 1;
  o.temperature = 2;
  o.hard_rule = HardRule::None;
  // Same logits: no divergence.
  auto same = distillation_loss(emb, logits, torch::zeros({4}), labels, emb, logits, 1.0, o);
  EXPECT_NEAR(same.loss.item<double>(), 0.0, 1e-6);
  // Against a reference computed by hand from the definition.
  const auto teacher_logits = torch::randn({4, 5});
  auto got = distillation_loss(emb, logits, torch::zeros({4}), labels, emb, teacher_logits, 1.0, o);
  const auto p = torch::softmax(teacher_logits / 2, 1);
  const auto q = torch::softmax(logits / 2, 1);
  const double expected = (4 * (p * (p.log() - q.log())).sum(1)).mean().item<double>();
  EXPECT_NEAR(got.loss.item<double>(), expected, 1e-5);
  EXPECT_GT(expected, 0.0);
}

TEST(Distill, GradientPullsTheStudentTowardsTheTeacher) {
  torch::manual_seed(1);
  auto student = torch::randn({8, 16}).requires_grad_(true);
  const auto teacher = torch::randn({8, 16});
  const auto labels = torch::zeros({8}, torch::kLong);
  DistillOptions o;
  auto before = distillation_loss(student, torch::zeros({8, 3}), torch::zeros({8}), labels, teacher,
                                  {}, 1.0, o);
  before.loss.backward();
  const auto moved = (student - 5.0 * student.grad()).detach();
  auto after = distillation_loss(moved, torch::zeros({8, 3}), torch::zeros({8}), labels, teacher,
                                 {}, 1.0, o);
  EXPECT_LT(after.loss.item<double>(), before.loss.item<double>());
}

TEST(Distill, TeacherTargetsComeFromTheCheckpointAndAreCached) {
  const auto model = test::fixture_model();
  const auto dir = test::temp_dir("distill_cache");
  const auto data = dataset_from_folders(test::sample_dir() / "lfw");
  ImageSource source{data.root, {}, {}, {}};
  for (const auto& s : data.samples) source.names.push_back(s.path);
  EvalOptions eo;
  eo.flip = FlipMode::Sum;
  eo.progress = false;
  const auto cache = dir / "teacher_embeddings.pt";
  const auto first = teacher_targets(model, {}, source, eo, "cpu", cache);
  ASSERT_EQ(first.embeddings.size(0), static_cast<int64_t>(source.size()));
  EXPECT_EQ(first.embeddings.size(1), 128);
  EXPECT_TRUE(torch::allclose(first.embeddings.norm(2, 1), torch::ones({first.embeddings.size(0)}),
                              1e-5, 1e-5));
  // The fixture's ArcFace head: 24 unit class centres, its scale.
  ASSERT_TRUE(first.centres.defined());
  EXPECT_EQ(first.centres.size(0), 24);
  EXPECT_DOUBLE_EQ(first.scale, load_checkpoint(model).head.scale());
  EXPECT_TRUE(fs::exists(cache));

  const auto second = teacher_targets(model, {}, source, eo, "cpu", cache);
  EXPECT_NE(second.description.find("cached"), std::string::npos) << second.description;
  EXPECT_TRUE(torch::equal(first.embeddings, second.embeddings));
  EXPECT_TRUE(torch::equal(first.centres, second.centres));

  // Another view of the images is not the cached one.
  eo.flip = FlipMode::None;
  const auto third = teacher_targets(model, {}, source, eo, "cpu", cache);
  EXPECT_EQ(third.description.find("cached"), std::string::npos);
  EXPECT_FALSE(torch::allclose(first.embeddings, third.embeddings));

  // Nor is the teacher in another precision, which gives nearly the same embeddings (a few
  // images: without native bf16 it is emulated).
  ImageSource few{source.root, {source.names.begin(), source.names.begin() + 16}, {}, {}};
  const auto fp32 = teacher_targets(model, {}, few, eo, "cpu", cache);
  const auto bf16 = teacher_targets(model, {}, few, eo, "cpu", cache, Precision::Bf16);
  EXPECT_EQ(bf16.description.find("cached"), std::string::npos);
  EXPECT_FALSE(torch::equal(bf16.embeddings, fp32.embeddings));
  EXPECT_GT((bf16.embeddings * fp32.embeddings).sum(1).min().item<double>(), 0.99);

  // Neither is another input for a teacher that does not describe itself.
  ForeignModel other;
  other.preprocess.mean = {0.4};
  EXPECT_EQ(teacher_targets(model, other, source, eo, "cpu", cache).description.find("cached"),
            std::string::npos);

  // A damaged cache is embedded again, not an error.
  { std::ofstream(cache, std::ios::trunc) << "not a tensor file"; }
  const auto fourth = teacher_targets(model, other, source, eo, "cpu", cache);
  EXPECT_EQ(fourth.description.find("cached"), std::string::npos);
  EXPECT_TRUE(torch::equal(third.embeddings, fourth.embeddings));
  EXPECT_NE(teacher_targets(model, other, source, eo, "cpu", cache).description.find("cached"),
            std::string::npos);

  // The teacher copied elsewhere with a new time stamp keeps the cache; other weights do not.
  const auto copy = dir / "copy.pt";
  fs::copy_file(model, copy);
  fs::last_write_time(copy, fs::last_write_time(model) + std::chrono::hours(1));
  EXPECT_NE(teacher_targets(copy, other, source, eo, "cpu", cache).description.find("cached"),
            std::string::npos);
  Checkpoint edited = load_checkpoint(model);
  {
    torch::NoGradGuard no_grad;
    edited.backbone_state.front().second.mul_(0.5);
  }
  save_checkpoint(edited, dir / "edited.pt");
  const auto fifth = teacher_targets(dir / "edited.pt", other, source, eo, "cpu", cache);
  EXPECT_EQ(fifth.description.find("cached"), std::string::npos);
  EXPECT_FALSE(torch::equal(fourth.embeddings, fifth.embeddings));
}

TEST(Distill, MissingTeacherIsNamed) {
  ImageSource source{test::sample_dir(), {"x.jpg"}, {}, {}};
  try {
    teacher_targets("no_such_teacher.pt", {}, source, {}, "cpu");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_teacher.pt"), std::string::npos);
  }
}

}  // namespace
}  // namespace arcface
