#include <fstream>

#include <nlohmann/json.hpp>

#include "arcface/decision.h"
#include "arcface/error.h"
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
  EXPECT_NE(text.find("Decision thresholds at a false-accept rate"), std::string::npos);

  // verify, identify and serve decide from this file: at a FAR it holds, or the best accuracy.
  const auto best = read_decision(dir / "metrics.json");
  EXPECT_DOUBLE_EQ(best.threshold, m.threshold_best);
  EXPECT_EQ(best.far, 0);
  EXPECT_EQ(best.flip, "concat");
  EXPECT_TRUE(best.one_to_one);
  const auto at_far = read_decision(dir / "metrics.json", 1e-2);
  EXPECT_DOUBLE_EQ(at_far.threshold, m.at_far[0].threshold);
  // 60 negatives cannot show 1e-2: the meaning says so.
  EXPECT_NE(at_far.meaning.find("only 60 different-person pairs"), std::string::npos)
      << at_far.meaning;
  try {
    read_decision(dir / "metrics.json", 5e-3);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("no threshold for FAR 0.005 (it has: 0.01, 0.001, 0.0001)"),
        std::string::npos)
        << e.what();
  }
}

TEST(Report, DecisionFromAnIdentificationReport) {
  const auto dir = test::temp_dir("decision");
  std::ofstream(dir / "ident.json") << R"({"flip": "sum", "root": "lfw", "runs": [
    {"aggregation": "mean", "enrolled": 10, "impostor_probes": 400,
     "at_far": [{"far": 0.01, "threshold": 0.5, "dir": 0.9}]}]})";
  const auto d = read_decision(dir / "ident.json", 1e-2);
  EXPECT_FALSE(d.one_to_one);
  EXPECT_DOUBLE_EQ(d.threshold, 0.5);
  EXPECT_THROW(read_decision(dir / "ident.json"), Error);  // 1:N decides at a FAR only
  EXPECT_THROW(read_decision(dir / "ident.json", 1e-2, "best"), Error);
  std::ofstream(dir / "other.json") << R"({"a": 1})";
  EXPECT_THROW(read_decision(dir / "other.json"), Error);
  EXPECT_THROW(read_decision(dir / "missing.json"), Error);
}

}  // namespace
}  // namespace arcface
