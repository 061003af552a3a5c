#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "arcface/dataset.h"
#include "arcface/error.h"
#include "test_util.h"

namespace arcface {
namespace {

using test::lfw_root;
using test::sample_dir;

// Every image of every person below `root`.
SelectOptions everything(const fs::path& root) {
  SelectOptions o;
  o.root = root;
  o.min_images = 1;
  o.classes = 0;
  o.max_per_class = 0;
  return o;
}

TEST(Select, SeedCountsOnRealLfwInNameOrder) {
  REQUIRE_SHARED_DATA();
  SelectOptions o;
  o.root = lfw_root();
  const auto r = select_balanced(o);
  EXPECT_EQ(r.total_persons, 5749);
  EXPECT_EQ(r.qualified, 158);
  EXPECT_EQ(r.selected, 100);
  EXPECT_EQ(r.at_cap, 43);
  EXPECT_EQ(r.samples.size(), 1638u);
}

TEST(Select, CountOrderTakesTheLargestPeople) {
  REQUIRE_SHARED_DATA();
  SelectOptions o;
  o.root = lfw_root();
  o.order = SelectOrder::Count;
  const auto r = select_balanced(o);
  EXPECT_EQ(r.samples.size(), 1868u);
  EXPECT_EQ(r.at_cap, 62);
  EXPECT_EQ(r.class_names.front(), "George_W_Bush");
}

// Random people for a curve of accuracy against people: with one seed the smaller draws are
// subsets of the larger, labelled in name order; another seed draws others.
TEST(Select, RandomOrderDrawsNestedSubsets) {
  SelectOptions o;
  o.root = sample_dir() / "train";
  o.min_images = 1;
  o.max_per_class = 0;
  o.order = SelectOrder::Random;
  o.classes = 6;
  const auto small = select_balanced(o);
  o.classes = 12;
  const auto large = select_balanced(o);
  ASSERT_EQ(small.class_names.size(), 6u);
  ASSERT_EQ(large.class_names.size(), 12u);
  EXPECT_TRUE(std::is_sorted(small.class_names.begin(), small.class_names.end()));
  for (const auto& name : small.class_names) {
    EXPECT_NE(std::find(large.class_names.begin(), large.class_names.end(), name),
              large.class_names.end())
        << name;
  }
  o.order = SelectOrder::Name;
  EXPECT_NE(select_balanced(o).class_names, large.class_names);  // not simply the first 12
  o.order = SelectOrder::Random;
  o.seed = 7;
  EXPECT_NE(select_balanced(o).class_names, large.class_names);
}

// The disjoint training set: two source trees, one label space, everything taken.
TEST(Select, SourcesMakeOneLabelSpace) {
  REQUIRE_SHARED_DATA();
  auto o = everything(test::shared_data() / "train");
  o.sources = {"celeba-align-112", "celeba-nikhil4902-align-112"};
  const auto r = select_balanced(o);
  EXPECT_EQ(r.total_persons, 666);
  EXPECT_EQ(r.selected, 666);
  EXPECT_EQ(r.samples.size(), 17382u);
  EXPECT_EQ(r.class_names.front().rfind("celeba-align-112/", 0), 0u);
  EXPECT_EQ(r.class_names.back().rfind("celeba-nikhil4902-align-112/", 0), 0u);
  for (const auto& s : r.samples) {
    ASSERT_EQ(s.path.rfind(r.class_names[s.label] + "/", 0), 0u) << s.path;
    ASSERT_TRUE(fs::exists(o.root / s.path)) << s.path;
  }
  o.sources.push_back("no-such-source");
  EXPECT_THROW(select_balanced(o), Error);
}

// The grown training set without the images its README marks as probably mislabelled.
TEST(Select, SuspectImagesOfTheTrainingSetAreLeftOut) {
  REQUIRE_SHARED_DATA();
  auto o = everything(test::shared_data() / "train");
  o.sources = {"celeba-align-112", "celeba-nikhil4902-align-112", "celeba-test-align-112"};
  o.exclude = o.root / "suspect_images.tsv";
  const auto r = select_balanced(o);
  EXPECT_EQ(r.excluded, 455);
  EXPECT_EQ(r.samples.size(), 31547u - 455u);
  EXPECT_EQ(r.selected, 1418);  // three people had no other images
  // The same list serves a selection of two of the folders.
  o.sources.pop_back();
  const auto two = select_balanced(o);
  EXPECT_EQ(two.excluded, 281);
  EXPECT_EQ(two.samples.size(), 17382u - 281u);
}

TEST(Select, ExcludedImagesAreLeftOutBeforeCounting) {
  auto o = everything(sample_dir() / "train");
  const auto all = select_balanced(o);
  std::map<int64_t, std::vector<std::string>> images;
  for (const auto& s : all.samples) images[s.label].push_back(s.path);
  // All of one person's images (as a TSV) and one of another's (space-separated).
  const auto& gone = images.at(0);
  const auto& one = images.at(1).front();
  const auto dir = test::temp_dir("select_exclude");
  o.exclude = dir / "exclude.tsv";
  {
    std::ofstream out(o.exclude);
    out << "path\tcosine\n# probably mislabelled\n\n";
    for (const auto& path : gone) out << path << "\t0.1\r\n";
    out << "  " << one << " 0.2\n";
  }
  const auto r = select_balanced(o);
  EXPECT_EQ(r.excluded, static_cast<int64_t>(gone.size()) + 1);
  EXPECT_EQ(r.selected, all.selected - 1);
  EXPECT_EQ(r.samples.size(), all.samples.size() - gone.size() - 1);
  for (const auto& s : r.samples) {
    ASSERT_NE(s.path, one);
    ASSERT_EQ(std::find(gone.begin(), gone.end(), s.path), gone.end()) << s.path;
  }

  // A line naming none of the images, even a file under the root spelt another way, is an error
  // that names the file and the line.
  const auto line = std::to_string(gone.size() + 5);
  for (const std::string& bad : std::vector<std::string>{"Nobody/Nobody_0001.jpg", "./" + one}) {
    auto wrong = o;
    wrong.exclude = dir / "wrong.tsv";
    fs::copy_file(o.exclude, wrong.exclude, fs::copy_options::overwrite_existing);
    { std::ofstream(wrong.exclude, std::ios::app) << bad << "\t0.1\n"; }
    try {
      select_balanced(wrong);
      FAIL() << "no error for " << bad;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("wrong.tsv:" + line + ":"), std::string::npos) << what;
      EXPECT_NE(what.find(bad), std::string::npos) << what;
    }
  }
}

TEST(Select, CapsShufflesAndLabelsTheSample) {
  SelectOptions o;
  o.root = sample_dir() / "train";
  o.min_images = 10;
  o.classes = 5;
  o.max_per_class = 11;
  const auto r = select_balanced(o);
  EXPECT_EQ(r.total_persons, 24);
  EXPECT_EQ(r.selected, 5);
  std::map<int64_t, int> per_class;
  for (const auto& s : r.samples) {
    ++per_class[s.label];
    EXPECT_EQ(s.path.substr(0, s.path.find('/')), r.class_names[s.label]);
  }
  EXPECT_EQ(per_class.size(), 5u);
  for (const auto& [label, n] : per_class) EXPECT_LE(n, 11);
  // Shuffled: labels are not in blocks.
  int changes = 0;
  for (size_t i = 1; i < r.samples.size(); ++i)
    changes += r.samples[i].label != r.samples[i - 1].label;
  EXPECT_GT(changes, 20);
}

TEST(Select, SameSeedSameListOtherSeedOtherOrder) {
  SelectOptions o;
  o.root = sample_dir() / "train";
  o.classes = 8;
  o.max_per_class = 10;
  auto paths = [&](uint64_t seed) {
    o.seed = seed;
    std::vector<std::string> p;
    for (const auto& s : select_balanced(o).samples) p.push_back(s.path);
    return p;
  };
  EXPECT_EQ(paths(7), paths(7));
  EXPECT_NE(paths(7), paths(8));
}

TEST(Select, MissingRootIsAClearError) {
  SelectOptions o;
  o.root = "/nonexistent/faces";
  try {
    select_balanced(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/faces"), std::string::npos);
  }
}

TEST(TrainList, RoundTripsAndReportsBadLines) {
  auto dir = test::temp_dir("train_list");
  std::vector<Sample> samples{{"a/a_0001.jpg", 0}, {"b b/with space.jpg", 1}};
  write_train_list(dir / "list.txt", samples);
  auto data = read_train_list(dir / "list.txt", dir);
  ASSERT_EQ(data.samples.size(), 2u);
  EXPECT_EQ(data.samples[1].path, "b b/with space.jpg");
  EXPECT_EQ(data.num_classes(), 2);

  std::ofstream(dir / "bad.txt") << "a/a_0001.jpg 0\na/a_0002.jpg x\n";
  try {
    read_train_list(dir / "bad.txt", dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.txt:2"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "empty.txt") << "\n# nothing\n";
  EXPECT_THROW(read_train_list(dir / "empty.txt", dir), Error);
}

// Training on a teacher alone reads a list of paths; labels, where a line has one, are dropped.
TEST(TrainList, WithoutLabelsALineIsAPath) {
  auto dir = test::temp_dir("train_list_unlabelled");
  std::ofstream(dir / "list.txt") << "a/a_0001.jpg 7\nb b/with space.jpg\nc/noext\nd/d.jpg x\n";
  const auto data = read_train_list(dir / "list.txt", dir, Labels::Ignored);
  ASSERT_EQ(data.samples.size(), 4u);
  EXPECT_EQ(data.samples[0].path, "a/a_0001.jpg");
  EXPECT_EQ(data.samples[1].path, "b b/with space.jpg");
  EXPECT_EQ(data.samples[2].path, "c/noext");
  EXPECT_EQ(data.samples[3].path, "d/d.jpg x");
  for (const auto& s : data.samples) EXPECT_EQ(s.label, 0) << s.path;
  // The same list with labels required names its first unlabelled line.
  try {
    read_train_list(dir / "list.txt", dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("list.txt:2"), std::string::npos) << e.what();
  }
}

TEST(TrainList, UnlabelledImagesAreEveryImageBelowTheRoot) {
  const auto data = unlabelled_images(sample_dir() / "train");
  const auto people = dataset_from_folders(sample_dir() / "train");
  ASSERT_EQ(data.samples.size(), people.samples.size());
  EXPECT_TRUE(std::is_sorted(data.samples.begin(), data.samples.end(),
                             [](const Sample& a, const Sample& b) { return a.path < b.path; }));
  for (const auto& s : data.samples) EXPECT_EQ(s.label, 0) << s.path;
  auto dir = test::temp_dir("unlabelled_empty");
  std::ofstream(dir / "notes.txt") << "no images\n";
  EXPECT_THROW(unlabelled_images(dir), Error);
  EXPECT_THROW(unlabelled_images(dir / "missing"), Error);
}

TEST(TrainList, LabelBeyondClassesAndMissingImagesAreNamed) {
  Dataset data{sample_dir() / "train", {{"Alvaro_Uribe/Alvaro_Uribe_0001.jpg", 3}}};
  try {
    validate_dataset(data, 3, "train list 'x.txt'");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 3 >= model.num_classes 3"), std::string::npos)
        << e.what();
  }
  data.samples = {{"Nobody/Nobody_0001.jpg", 0}};
  try {
    validate_dataset(data, 3, "train list 'x.txt'");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Nobody_0001.jpg"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace arcface
