#include <fstream>
#include <set>

#include "arcface/error.h"
#include "arcface/pairs.h"
#include "test_util.h"

namespace arcface {
namespace {

namespace fs = std::filesystem;
using test::sample_dir;
using test::shared_data;

TEST(Pairs, ReadsOfficialFormatWithFolds) {
  const auto list = read_pairs(sample_dir() / "pairs.txt");
  EXPECT_EQ(list.format, PairsFormat::Lfw);
  EXPECT_TRUE(list.folds_from_file);
  EXPECT_EQ(list.num_folds, 10);
  ASSERT_EQ(list.pairs.size(), 120u);
  EXPECT_EQ(list.positives(), 60);
  EXPECT_EQ(list.images[list.pairs[0].a], "Abel_Pacheco/Abel_Pacheco_0001.jpg");
  EXPECT_EQ(list.images[list.pairs[0].b], "Abel_Pacheco/Abel_Pacheco_0004.jpg");
  EXPECT_TRUE(list.pairs[0].same);
  EXPECT_FALSE(list.pairs[6].same);
  EXPECT_EQ(list.pairs[11].fold, 0);
  EXPECT_EQ(list.pairs[12].fold, 1);
  EXPECT_EQ(list.images.size(), 186u);  // each distinct image once
  EXPECT_TRUE(list.missing_images(sample_dir() / "lfw").empty());
}

TEST(Pairs, FullLfwListsAgreeFoldByFold) {
  REQUIRE_SHARED_DATA();
  const auto official = read_pairs(shared_data() / "lfw" / "pairs.txt");
  const auto list = read_pairs(shared_data() / "lfw" / "lfw_test_pair.txt");
  EXPECT_EQ(official.pairs.size(), 6000u);
  EXPECT_EQ(official.images.size(), 7701u);
  EXPECT_EQ(list.format, PairsFormat::List);
  EXPECT_FALSE(list.folds_from_file);
  ASSERT_EQ(list.pairs.size(), 6000u);
  // Interleaving the positives-then-negatives list gives back the official folds.
  auto by_fold = [](const PairList& l) {
    std::vector<std::set<std::tuple<std::string, std::string, bool>>> folds(10);
    for (const auto& p : l.pairs) folds[p.fold].insert({l.images[p.a], l.images[p.b], p.same});
    return folds;
  };
  EXPECT_EQ(by_fold(official), by_fold(list));
}

TEST(Pairs, MalformedLineNamesFileAndLine) {
  auto dir = test::temp_dir("pairs_bad");
  std::ofstream(dir / "pairs.txt") << "1\t1\nA\t1\t2\nB\t1\tC\n";
  try {
    read_pairs(dir / "pairs.txt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pairs.txt:3"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "short.txt") << "2\t1\nA\t1\t2\nB\t1\tC\t2\n";
  EXPECT_THROW(read_pairs(dir / "short.txt"), Error);  // header promises 4 pairs
  std::ofstream(dir / "list.txt") << "a/a_0001.jpg b/b_0001.jpg 1\na/a_0002.jpg b/b_0003.jpg 2\n";
  try {
    read_pairs(dir / "list.txt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("list.txt:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_pairs(dir / "absent.txt"), Error);
}

TEST(Pairs, InsightfaceBinFixture) {
  const auto path = shared_data() / "fixtures" / "small_lfw.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "fixture not found: " << path;
  const auto list = read_pairs(path);
  EXPECT_EQ(list.format, PairsFormat::Bin);
  ASSERT_EQ(list.encoded.size(), 20u);
  ASSERT_EQ(list.pairs.size(), 10u);
  for (const auto& p : list.pairs) EXPECT_TRUE(p.same);
  for (const auto& bytes : list.encoded) {
    ASSERT_GT(bytes.size(), 100u);
    EXPECT_EQ(bytes[0], 0xFF);
    EXPECT_EQ(bytes[1], 0xD8);
    EXPECT_EQ(bytes[bytes.size() - 2], 0xFF);
    EXPECT_EQ(bytes.back(), 0xD9);
  }
  EXPECT_EQ(list.pairs[3].a, 6);
  EXPECT_EQ(list.pairs[3].b, 7);
}

TEST(Pairs, TruncatedBinIsAnError) {
  const auto path = shared_data() / "fixtures" / "small_lfw.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "fixture not found: " << path;
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  auto dir = test::temp_dir("bin_bad");
  std::ofstream(dir / "cut.bin", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_THROW(read_pairs(dir / "cut.bin"), Error);
}

TEST(Pairs, DropImagesAndKeepFolds) {
  auto list = read_pairs(sample_dir() / "pairs.txt");
  const std::string gone = list.images[list.pairs[0].a];
  list.drop_images({gone});
  for (const auto& p : list.pairs) {
    EXPECT_NE(list.images[p.a], gone);
    EXPECT_NE(list.images[p.b], gone);
  }
  EXPECT_LT(list.pairs.size(), 120u);
  auto two = read_pairs(sample_dir() / "pairs.txt");
  two.keep_folds(2);
  EXPECT_EQ(two.pairs.size(), 24u);
  EXPECT_EQ(two.num_folds, 2);
  for (const auto& p : two.pairs) {
    EXPECT_LT(p.a, static_cast<int32_t>(two.images.size()));
    EXPECT_LT(p.b, static_cast<int32_t>(two.images.size()));
  }
}

fs::path cfp_protocol() { return shared_data() / "cfp" / "Protocol"; }

TEST(Pairs, CfpProtocolAsDistributed) {
  if (!fs::exists(cfp_protocol())) GTEST_SKIP() << "CFP not found at " << cfp_protocol();
  const auto fp = read_pairs(cfp_protocol() / "Split" / "FP");
  EXPECT_EQ(fp.format, PairsFormat::Cfp);
  EXPECT_EQ(fp.protocol, "CFP frontal-profile (FP)");
  EXPECT_TRUE(fp.folds_from_file);
  EXPECT_EQ(fp.num_folds, 10);
  ASSERT_EQ(fp.pairs.size(), 7000u);
  EXPECT_EQ(fp.positives(), 3500);
  // Split/FP/01/same.txt starts "5,1": frontal photo 5 and profile photo 1 of person 001.
  EXPECT_EQ(fp.images[fp.pairs[0].a], "001/frontal/05.jpg");
  EXPECT_EQ(fp.images[fp.pairs[0].b], "001/profile/01.jpg");
  EXPECT_TRUE(fp.pairs[0].same);
  std::vector<int> per_fold(10);
  for (const auto& p : fp.pairs) {
    ++per_fold[p.fold];
    // Every pair joins a frontal photo to a profile one.
    EXPECT_NE(fp.images[p.a].find("/frontal/"), std::string::npos);
    EXPECT_NE(fp.images[p.b].find("/profile/"), std::string::npos);
  }
  EXPECT_EQ(per_fold, std::vector<int>(10, 700));
  const fs::path root = shared_data() / "cfp" / "cfp-align-112";
  EXPECT_TRUE(fp.missing_images(root).empty());

  const auto ff = read_pairs(cfp_protocol() / "Split" / "FF", PairsFormat::Cfp);
  EXPECT_EQ(ff.protocol, "CFP frontal-frontal (FF)");
  ASSERT_EQ(ff.pairs.size(), 7000u);
  for (const auto& p : ff.pairs) EXPECT_EQ(ff.images[p.b].find("/profile/"), std::string::npos);
  EXPECT_TRUE(ff.missing_images(root).empty());
}

TEST(Pairs, DamagedCfpProtocolNamesFileAndLine) {
  if (!fs::exists(cfp_protocol())) GTEST_SKIP() << "CFP not found at " << cfp_protocol();
  const auto dir = test::temp_dir("cfp_bad") / "Protocol";
  fs::copy(cfp_protocol(), dir, fs::copy_options::recursive);
  auto expect_error = [&](const fs::path& split, const std::string& where) {
    try {
      read_pairs(split);
      FAIL() << "no error for " << where;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(where), std::string::npos) << e.what();
    }
  };
  expect_error(dir, "Protocol/Split/FF");  // the protocol folder itself: which split?
  std::ofstream(dir / "Split" / "FP" / "03" / "diff.txt", std::ios::app) << "12,2001\n";
  expect_error(dir / "Split" / "FP", "FP/03/diff.txt:351: photo number 2001 is outside 1..2000");
  std::ofstream(dir / "Split" / "FF" / "02" / "same.txt", std::ios::app) << "7;8\n";
  expect_error(dir / "Split" / "FF", "FF/02/same.txt:351");
  fs::remove(dir / "Pair_list_P.txt");
  expect_error(dir / "Split" / "FP", "Pair_list_P.txt");
  expect_error(dir / "Split" / "XX", "cannot open pairs file");
}

TEST(Pairs, TargetsNeedARootForImagePaths) {
  const auto spec = parse_pair_target("sample=" + (sample_dir() / "pairs.txt").string());
  EXPECT_EQ(spec.name, "sample");
  EXPECT_TRUE(spec.root.empty());
  try {
    read_pair_target(spec);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target sample:"), std::string::npos) << e.what();
  }
  auto rooted = spec;
  rooted.root = sample_dir() / "lfw";
  EXPECT_EQ(read_pair_target(rooted).pairs.size(), 120u);
  EXPECT_THROW(parse_pair_target("a/b=pairs.txt"), Error);
  EXPECT_THROW(parse_pair_target("=pairs.txt"), Error);
}

}  // namespace
}  // namespace arcface
