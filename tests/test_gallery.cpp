#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "arcface/error.h"
#include "arcface/gallery.h"
#include "arcface/identification.h"
#include "test_util.h"

namespace arcface {
namespace {

GalleryModel model_of(int64_t dim, const std::string& hash = "0123456789abcdef") {
  GalleryModel m;
  m.network = "iresnet18";
  m.input = "112x112 rgb";
  m.weights_hash = hash;
  m.dim = dim;
  m.flip = "sum";
  return m;
}

std::vector<float> unit(std::mt19937& rng, int64_t dim) {
  std::normal_distribution<float> normal;
  std::vector<float> v(dim);
  double norm = 0;
  for (auto& x : v) norm += (x = normal(rng)) * x;
  for (auto& x : v) x /= static_cast<float>(std::sqrt(norm));
  return v;
}

// A face near `centre`: the same person seen again.
std::vector<float> near(std::mt19937& rng, const std::vector<float>& centre, float noise) {
  auto v = unit(rng, static_cast<int64_t>(centre.size()));
  double norm = 0;
  for (size_t i = 0; i < v.size(); ++i) norm += (v[i] = centre[i] + noise * v[i]) * v[i];
  for (auto& x : v) x /= static_cast<float>(std::sqrt(norm));
  return v;
}

NewFace face(std::vector<float> e, const std::string& source) {
  NewFace f;
  f.embedding = std::move(e);
  f.source = source;
  return f;
}

TEST(Gallery, AddSearchRemoveRenameAndReopen) {
  const auto dir = test::temp_dir("gallery_basic");
  std::mt19937 rng(1);
  std::vector<std::vector<float>> people;
  {
    Gallery g = Gallery::create(dir / "g.db", model_of(64));
    for (int p = 0; p < 20; ++p) {
      people.push_back(unit(rng, 64));
      const int64_t s = g.add_subject("person" + std::to_string(p), {{"team", p % 2}});
      g.add_faces(s, {face(near(rng, people[p], 0.3f), "a.jpg"),
                      face(near(rng, people[p], 0.3f), "b.jpg")});
    }
    EXPECT_EQ(g.face_count(), 40);
    const auto m = g.search(near(rng, people[7], 0.3f), 3);
    ASSERT_EQ(m.size(), 3u);
    EXPECT_EQ(m[0].name, "person7");
    EXPECT_GT(m[0].score, m[1].score);
    EXPECT_NE(m[1].name, "person7");  // one line per subject, not per face
    EXPECT_THROW(g.add_subject("person7"), Error);
    g.remove_subject("person7");
    EXPECT_NE(g.search(people[7], 1)[0].name, "person7");
    g.rename_subject("person3", "Ada");
    EXPECT_EQ(g.search(people[3], 1)[0].name, "Ada");
    // A threshold leaves out what scores below it.
    EXPECT_TRUE(g.search(unit(rng, 64), 5, 0.9).empty());
  }
  Gallery g = Gallery::open(dir / "g.db", model_of(64));
  EXPECT_EQ(g.face_count(), 38);
  EXPECT_EQ(g.subjects().size(), 19u);
  EXPECT_EQ(g.search(people[3], 1)[0].name, "Ada");
  EXPECT_EQ(g.search(people[5], 1)[0].name, "person5");
  const auto faces = g.faces(g.subject_id("person5"));
  ASSERT_EQ(faces.size(), 2u);
  g.remove_face(faces[0].id);
  EXPECT_EQ(g.face_count(), 37);
  EXPECT_THROW(g.remove_face(faces[0].id), Error);
  EXPECT_THROW(g.rename_subject("nobody", "x"), Error);
  EXPECT_THROW(g.add_faces(g.subject_id("Ada"), {face(unit(rng, 32), "short.jpg")}), Error);
  EXPECT_THROW(Gallery::create(dir / "g.db", model_of(64)), Error);  // never overwritten
}

TEST(Gallery, SubjectNamesAreBoundedAndPrintable) {
  EXPECT_EQ(subject_name_problem("Ada Lovelace"), "");
  EXPECT_EQ(subject_name_problem("Zoë Šťastná 王菲 🙂"), "");
  EXPECT_NE(subject_name_problem(""), "");
  EXPECT_NE(subject_name_problem(std::string(100000, 'x')).find("100000 bytes"), std::string::npos);
  EXPECT_EQ(subject_name_problem(std::string(kMaxSubjectName, 'x')), "");
  EXPECT_NE(subject_name_problem(std::string("a\0b", 3)).find("0x00 at byte 1"), std::string::npos);
  EXPECT_NE(subject_name_problem("a\nb"), "");
  EXPECT_NE(subject_name_problem("a\x7f"), "");
  for (const char* bad :
       {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\x80"}) {
    EXPECT_NE(subject_name_problem(bad).find("UTF-8"), std::string::npos) << bad;
  }
  const auto dir = test::temp_dir("gallery_names");
  Gallery g = Gallery::create(dir / "g.db", model_of(8));
  EXPECT_THROW(g.add_subject(std::string("a\0b", 3)), Error);
  EXPECT_THROW(g.subject_id(std::string(300, 'y'), true), Error);
  g.add_subject("Ada");
  EXPECT_THROW(g.rename_subject("Ada", "A\tda"), Error);
  EXPECT_EQ(g.subjects().size(), 1u);
}

TEST(Gallery, AnotherModelIsRefusedByName) {
  const auto dir = test::temp_dir("gallery_model");
  Gallery::create(dir / "g.db", model_of(64));
  try {
    Gallery::open(dir / "g.db", model_of(64, "ffffffffffffffff"));
    FAIL() << "a gallery opened with another model";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("another model"), std::string::npos) << message;
    EXPECT_NE(message.find("ffffffffffffffff"), std::string::npos) << message;
    EXPECT_NE(message.find("reembed"), std::string::npos) << message;
  }
  std::ofstream(dir / "not.db") << "hello";
  EXPECT_THROW(Gallery::open(dir / "not.db"), Error);
  EXPECT_THROW(Gallery::open(dir / "absent.db"), Error);
}

// HNSW answers like the exact index on well separated people; both agree with SQLite.
TEST(Gallery, HnswFindsWhatExactSearchFinds) {
  const auto dir = test::temp_dir("gallery_hnsw");
  std::mt19937 rng(2);
  GalleryOptions hnsw;
  hnsw.hnsw_from = 100;
  hnsw.aggregation = Aggregation::BestFace;  // face by face, through the index itself
  std::vector<std::vector<float>> people;
  {
    Gallery g = Gallery::create(dir / "g.db", model_of(32));
    for (int p = 0; p < 300; ++p) {
      people.push_back(unit(rng, 32));
      g.add_faces(g.add_subject("p" + std::to_string(p)), {face(people.back(), "x.jpg")});
    }
  }
  GalleryOptions flat;
  flat.aggregation = Aggregation::BestFace;
  Gallery exact = Gallery::open(dir / "g.db", {}, flat);
  Gallery approximate = Gallery::open(dir / "g.db", {}, hnsw);
  EXPECT_EQ(exact.index_kind(), "exact (IndexFlatIP)");
  EXPECT_NE(approximate.index_kind().find("HNSW"), std::string::npos);
  int agree = 0;
  for (int p = 0; p < 300; ++p) {
    const auto probe = near(rng, people[p], 0.2f);
    agree += exact.search(probe, 1)[0].name == approximate.search(probe, 1)[0].name;
  }
  EXPECT_GE(agree, 297);
  approximate.remove_subject("p0");  // HNSW rebuilds from SQLite
  EXPECT_EQ(approximate.face_count(), 299);
}

TEST(Gallery, MeanAggregationScoresTheMeanDescriptor) {
  const auto dir = test::temp_dir("gallery_mean");
  std::mt19937 rng(3);
  GalleryOptions mean;
  mean.aggregation = Aggregation::Mean;
  Gallery g = Gallery::create(dir / "g.db", model_of(16), mean);
  const auto a = unit(rng, 16), b = unit(rng, 16);
  g.add_faces(g.add_subject("two"), {face(a, "a"), face(b, "b")});
  std::vector<float> m(16);
  double norm = 0;
  for (int i = 0; i < 16; ++i) norm += (m[i] = a[i] + b[i]) * m[i];
  for (auto& x : m) x /= static_cast<float>(std::sqrt(norm));
  const auto found = g.search(m, 1);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NEAR(found[0].score, 1.0, 1e-5);
}

// Killed mid-enrolment, a gallery keeps every face it acknowledged, and its index agrees with
// SQLite when opened again.
TEST(Gallery, SigkillDuringEnrolmentLosesNoAcknowledgedFace) {
  const auto dir = test::temp_dir("gallery_kill");
  Gallery::create(dir / "g.db", model_of(128));
  int ack[2];
  ASSERT_EQ(pipe(ack), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(ack[0]);
    Gallery g = Gallery::open(dir / "g.db");
    std::mt19937 rng(4);
    const int64_t s = g.add_subject("someone");
    for (int i = 0;; ++i) {
      const auto ids = g.add_faces(s, {face(unit(rng, 128), std::to_string(i))});
      const int64_t id = ids[0];
      if (write(ack[1], &id, sizeof id) != sizeof id) _exit(1);
    }
  }
  close(ack[1]);
  std::vector<int64_t> acknowledged;
  int64_t id = 0;
  while (acknowledged.size() < 200 && read(ack[0], &id, sizeof id) == sizeof id) {
    acknowledged.push_back(id);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  while (read(ack[0], &id, sizeof id) == sizeof id) acknowledged.push_back(id);
  close(ack[0]);
  ASSERT_GE(acknowledged.size(), 200u);

  Gallery g = Gallery::open(dir / "g.db");
  const auto faces = g.faces(g.subject_id("someone"));
  std::set<int64_t> stored;
  for (const auto& f : faces) stored.insert(f.id);
  for (int64_t a : acknowledged) EXPECT_TRUE(stored.count(a)) << "face " << a << " was lost";
  EXPECT_EQ(g.face_count(), static_cast<int64_t>(faces.size()));
}

TEST(Identification, MetricsByHand) {
  // Three genuine probes: right first, right second, wrong; four impostors.
  const std::vector<Ranking> genuine = {
      {{0, 1}, {0.9, 0.2}}, {{2, 1}, {0.6, 0.5}}, {{0, 2}, {0.4, 0.3}}};
  const std::vector<int64_t> truth = {0, 1, 1};
  const std::vector<double> impostors = {0.1, 0.7, 0.3, 0.2};
  const auto m = identification_metrics(genuine, truth, impostors, 3, {0.25, 0.0});
  EXPECT_NEAR(m.rank1, 1.0 / 3, 1e-12);
  EXPECT_NEAR(m.rank5, 2.0 / 3, 1e-12);
  ASSERT_EQ(m.at_far.size(), 2u);
  // FAR 0.25: one impostor of four may pass (0.7), the threshold sits just above 0.3.
  EXPECT_GT(m.at_far[0].threshold, 0.3);
  EXPECT_LT(m.at_far[0].threshold, 0.3001);
  EXPECT_NEAR(m.at_far[0].dir, 1.0 / 3, 1e-12);  // the 0.9 probe
  // FAR 0: above every impostor, 0.7: the same probe alone.
  EXPECT_GT(m.at_far[1].threshold, 0.7);
  EXPECT_NEAR(m.at_far[1].dir, 1.0 / 3, 1e-12);
}

TEST(Identification, LfwSplit) {
  REQUIRE_SHARED_DATA();
  const auto split = identification_split(test::lfw_root());
  EXPECT_EQ(split.people.size(), 1680u);
  EXPECT_EQ(split.gallery.size(), 1680u);
  EXPECT_EQ(split.impostors.size(), 4069u);
  EXPECT_EQ(split.gallery.size() + split.genuine.size() + split.impostors.size(), 13233u);
}

}  // namespace
}  // namespace arcface
