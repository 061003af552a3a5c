#include <torch/torch.h>

#include <fstream>

#include "arcface/config.h"
#include "arcface/dataset.h"
#include "arcface/error.h"
#include "arcface/evaluate.h"
#include "arcface/overlap.h"
#include "arcface/trainer.h"
#include "fixture_model.h"
#include "test_util.h"

namespace arcface {
namespace {

namespace fs = std::filesystem;

class Evaluate : public ::testing::Test {
 protected:
  static fs::path checkpoint() { return test::fixture_model(); }
};

TEST_F(Evaluate, EmbedderGivesUnitDescriptors) {
  auto embedder = Embedder::load(checkpoint());
  EXPECT_EQ(embedder.preprocess().input_size, 48);
  EXPECT_EQ(embedder.dim(), 128);
  EXPECT_EQ(embedder.dim(FlipMode::Concat), 256);
  const auto root = test::sample_dir() / "lfw";
  const Image a = read_image(root / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg", Color::BGR);
  const Image b = read_image(root / "Abel_Pacheco" / "Abel_Pacheco_0004.jpg", Color::BGR);
  for (auto flip : {FlipMode::None, FlipMode::Concat, FlipMode::Sum}) {
    auto da = embedder.embed(a, flip), db = embedder.embed(b, flip);
    EXPECT_EQ(da.size(1), embedder.dim(flip));
    EXPECT_NEAR(da.norm().item<double>(), 1.0, 1e-5);
    EXPECT_NEAR(Embedder::match(da, da), 1.0, 1e-5);
    EXPECT_DOUBLE_EQ(Embedder::match(da, db), Embedder::match(db, da));
  }
  auto batch = embedder.embed(std::vector<Image>{a, b});
  EXPECT_TRUE(torch::allclose(batch[0], embedder.embed(a)[0], 1e-5, 1e-6));
}

TEST_F(Evaluate, SamplePairsEndToEnd) {
  auto embedder = Embedder::load(checkpoint());
  const auto pairs = read_pairs(test::sample_dir() / "pairs.txt");
  EvalOptions o;
  o.progress = false;
  o.batch_size = 50;
  const auto r = evaluate_pairs(embedder, pairs, test::sample_dir() / "lfw", o);
  EXPECT_EQ(r.images, 186);
  ASSERT_EQ(r.scores.size(), 120u);
  for (double s : r.scores) {
    EXPECT_GE(s, -1.0 - 1e-6);
    EXPECT_LE(s, 1.0 + 1e-6);
  }
  EXPECT_EQ(r.metrics.fold_accuracies.size(), 10u);
  EXPECT_GE(r.metrics.accuracy_best, r.metrics.accuracy_10fold_mean - 1e-12);
  // Descriptors are computed once per image: the scores do not depend on the batch size.
  o.batch_size = 7;
  const auto again = evaluate_pairs(embedder, pairs, test::sample_dir() / "lfw", o);
  for (size_t i = 0; i < r.scores.size(); ++i) EXPECT_NEAR(r.scores[i], again.scores[i], 1e-5);
}

TEST_F(Evaluate, RealLfwFoldsBeatChance) {
  REQUIRE_SHARED_DATA();
  auto embedder = Embedder::load(checkpoint());
  auto pairs = read_pairs(test::shared_data() / "lfw" / "pairs.txt");
  pairs.keep_folds(2);
  EvalOptions o;
  o.progress = false;
  const auto r = evaluate_pairs(embedder, pairs, test::lfw_root(), o);
  EXPECT_EQ(r.metrics.pairs, 1200);
  // A one-minute model of 24 people at 48x48 is weak (AUC about 0.64 here), but it has learnt
  // something about faces: chance is 0.5, with a standard error of 0.017 on 1,200 pairs.
  EXPECT_GT(r.metrics.roc_auc, 0.58);
  EXPECT_GT(r.metrics.accuracy_10fold_mean, 0.55);
}

TEST_F(Evaluate, InsightfaceBinIsEmbeddedFromMemory) {
  const auto path = test::shared_data() / "fixtures" / "small_lfw.bin";
  if (!fs::exists(path)) GTEST_SKIP() << "fixture not found: " << path;
  auto embedder = Embedder::load(checkpoint());
  EvalOptions o;
  o.progress = false;
  const auto r = evaluate_pairs(embedder, read_pairs(path), "", o);
  EXPECT_EQ(r.images, 20);
  EXPECT_EQ(r.scores.size(), 10u);
}

TEST_F(Evaluate, EmbeddingsFiles) {
  auto embedder = Embedder::load(checkpoint());
  Image colour(48, 48, 3);
  for (size_t i = 0; i < colour.pixels.size(); ++i)
    colour.pixels[i] = static_cast<uint8_t>(1 + i % 3);
  auto d = embedder.embed(std::vector<Image>{colour, Image(60, 60, 1, 9)});
  const auto dir = test::temp_dir("embeddings");
  const auto meta = embedding_meta(embedder, FlipMode::None);
  save_embeddings(dir / "e.npy", {"a.jpg", "b.jpg"}, d, meta);
  EXPECT_EQ(fs::file_size(dir / "e.npy"), 128u + 2 * 128 * 4);
  std::ifstream paths(dir / "e.npy.paths.txt");
  std::string first;
  paths >> first;
  EXPECT_EQ(first, "a.jpg");
  // The precision travels with every file: bf16 and fp32 descriptors differ by up to 5e-3.
  std::ifstream side(dir / "e.npy.meta.json");
  EXPECT_EQ(nlohmann::json::parse(side).at("precision"), to_string(embedder.precision()));
  save_embeddings(dir / "e.csv", {"a.jpg", "b.jpg"}, d, meta);
  EXPECT_TRUE(fs::exists(dir / "e.csv.meta.json"));
  save_embeddings(dir / "e.json", {"a.jpg", "b.jpg"}, d, meta);
  std::ifstream json(dir / "e.json");
  const auto j = nlohmann::json::parse(json);
  EXPECT_EQ(j.at("meta").at("precision"), to_string(embedder.precision()));
  EXPECT_EQ(j.at("embeddings").size(), 2u);
  EXPECT_THROW(save_embeddings(dir / "e.txt", {"a.jpg", "b.jpg"}, d, meta), Error);
  EXPECT_THROW(Embedder::load(dir / "missing.pt"), Error);
}

// A training person copied into the test set under another name is found first, at cosine 1,
// and select --exclude takes the list that names their images.
TEST_F(Evaluate, OverlapFindsATrainingPersonAmongTheTestPeople) {
  const auto dir = test::temp_dir("overlap");
  const fs::path train_root = test::sample_dir() / "train";
  const fs::path test_root = dir / "test";
  fs::create_directories(test_root / "Someone_Else");
  int people = 0;
  for (const auto& person : fs::directory_iterator(test::sample_dir() / "lfw")) {
    if (people++ == 12) break;
    fs::copy(person.path(), test_root / person.path().filename(), fs::copy_options::recursive);
  }
  const std::string copied = scan_identities(train_root)[3].name;
  fs::copy(train_root / copied, test_root / "Someone_Else" / "photos", fs::copy_options::recursive);

  auto embedder = Embedder::load(checkpoint());
  const People train = people_in_folders(train_root);
  const People test = people_in_folders(test_root);
  EXPECT_EQ(test.names.size(), 13u);
  OverlapOptions o;
  o.eval.progress = false;
  o.eval.flip = FlipMode::Sum;
  const OverlapResult r = find_overlap(embedder, train, test, o);
  ASSERT_FALSE(r.matches.empty());
  EXPECT_EQ(train.names[r.matches[0].train], copied);
  EXPECT_EQ(test.names[r.matches[0].test], "Someone_Else");
  EXPECT_NEAR(r.matches[0].score, 1.0, 1e-4);
  EXPECT_EQ(r.closest.front().score, r.matches.front().score);
  EXPECT_GT(r.genuine.mean, r.impostor.mean);
  EXPECT_GE(r.genuine_above, 0.99);  // the recall the threshold was chosen for

  // A threshold given instead: only the copy reaches 0.99, and select leaves it out.
  o.threshold = 0.99;
  const OverlapResult copy = find_overlap(embedder, train, test, o);
  ASSERT_EQ(copy.matches.size(), 1u);
  write_overlap(dir / "out", train, test, copy);
  SelectOptions select;
  select.root = train_root;
  select.min_images = 1;
  select.classes = 0;
  select.max_per_class = 0;
  select.exclude = dir / "out" / "exclude.txt";
  const auto kept = select_balanced(select);
  for (const auto& sample : kept.samples) {
    EXPECT_NE(fs::path(sample.path).parent_path().string(), copied) << sample.path;
  }
  EXPECT_EQ(kept.excluded, static_cast<int64_t>(train.images[copy.matches[0].train].size()));
}

}  // namespace
}  // namespace arcface
