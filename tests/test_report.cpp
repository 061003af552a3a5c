#include <fstream>

#include <nlohmann/json.hpp>

#include "arcface/report.h"
#include "test_util.h"

namespace arcface {
namespace {

bool is_png(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return std::string(magic + 1, 3) == "PNG" && std::filesystem::file_size(path) > 2000;
}

TEST(Report, WritesEveryOutput) {
  const auto pairs = read_pairs(test::sample_dir() / "pairs.txt");
  std::vector<double> scores;
  std::vector<bool> same;
  std::vector<int32_t> folds;
  for (size_t i = 0; i < pairs.pairs.size(); ++i) {
    // Same-person pairs score higher, except every tenth pair, so there are errors to list.
    const bool error = i % 10 == 0;
    scores.push_back((pairs.pairs[i].same != error ? 0.5 : 0.0) +
                     0.01 * static_cast<double>(i % 37));
    same.push_back(pairs.pairs[i].same);
    folds.push_back(pairs.pairs[i].fold);
  }
  const auto m = verification_metrics(scores, same, folds, pairs.num_folds);
  EvalSummary s;
  s.model = "test model";
  s.root = "data/sample/lfw";
  s.flip = "concat";
  s.images = static_cast<int64_t>(pairs.images.size());
  const auto dir = test::temp_dir("report");
  write_eval_report(dir, pairs, scores, m, s);

  std::ifstream in(dir / "metrics.json");
  const auto j = nlohmann::json::parse(in);
  for (const char* key :
       {"pairs", "accuracy_best", "threshold_best", "accuracy_10fold_mean", "accuracy_10fold_std",
        "roc_auc", "tar_at_far_1e-3", "tar_at_far_1e-2", "eer", "pos_mean", "pos_std", "neg_mean",
        "neg_std", "margin", "seconds"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["pairs"], 120);
  EXPECT_DOUBLE_EQ(j["accuracy_best"].get<double>(), m.accuracy_best);
#ifdef ARCFACE_WITH_PLPLOT
  EXPECT_TRUE(is_png(dir / "roc.png"));
  EXPECT_TRUE(is_png(dir / "score_hist.png"));
#else
  EXPECT_FALSE(std::filesystem::exists(dir / "roc.png"));  // a build without PLplot
#endif

  std::ifstream csv(dir / "pair_scores.csv");
  int lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  EXPECT_EQ(lines, 121);

  std::ifstream md(dir / "report.md");
  std::string text((std::istreambuf_iterator<char>(md)), {});
  EXPECT_NE(text.find("Hardest false accepts"), std::string::npos);
  EXPECT_NE(text.find("Hardest false rejects"), std::string::npos);
  EXPECT_NE(text.find("10 folds of the pairs file"), std::string::npos);
}

}  // namespace
}  // namespace arcface
