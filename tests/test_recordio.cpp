#include <fstream>

#include <nlohmann/json.hpp>

#include "arcface/error.h"
#include "arcface/image.h"
#include "arcface/recordio.h"
#include "test_util.h"

namespace arcface {
namespace {

fs::path fixture() { return test::source_dir() / "tests" / "data" / "recordio"; }

std::vector<uint8_t> hex_bytes(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// Copies the fixture to `dir` so that a test can damage it.
fs::path copy_fixture(const fs::path& dir) {
  for (const char* f : {"train.rec", "train.idx", "property"})
    fs::copy_file(fixture() / f, dir / f);
  return dir / "train.rec";
}

void expect_error(const fs::path& rec, const std::string& wanted) {
  try {
    RecordFile::open(rec);
    ADD_FAILURE() << "no error; expected one with '" << wanted << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(wanted), std::string::npos) << e.what();
  }
}

TEST(RecordIO, ReadsAFileWrittenFromTheFormatsDescription) {
  // tests/data/make_recordio_fixture.py wrote it, one record split around the magic number.
  const auto rec = RecordFile::open(fixture() / "train.rec");
  std::ifstream in(fixture() / "expected.json");
  const auto expected = nlohmann::json::parse(in);
  ASSERT_EQ(rec->images().size(), expected.size());
  EXPECT_EQ(rec->num_classes(), 3);
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& e = expected[i];
    EXPECT_EQ(rec->images()[i].key, e["key"].get<int64_t>());
    EXPECT_EQ(rec->images()[i].label, e["label"].get<int64_t>());
    auto want = read_file_bytes(test::sample_dir() / "train" / e["file"].get<std::string>());
    const auto extra = hex_bytes(e["extra_hex"].get<std::string>());
    want.insert(want.end(), extra.begin(), extra.end());
    EXPECT_EQ(rec->read(i), want) << "record " << e["key"];
  }
  EXPECT_EQ(rec->name(1), "train.rec#2");
}

TEST(RecordIO, PackedFoldersRoundTripLabelsAndPixels) {
  const auto dir = test::temp_dir("recordio_pack");
  const Dataset data = dataset_from_folders(test::sample_dir() / "train");
  const PackResult r = pack_records(data, dir / "train.rec");
  EXPECT_EQ(r.images, static_cast<int64_t>(data.samples.size()));
  EXPECT_EQ(r.classes, data.num_classes());
  const auto rec = RecordFile::open(dir / "train.rec");
  ASSERT_EQ(rec->images().size(), data.samples.size());
  EXPECT_EQ(rec->num_classes(), data.num_classes());
  // Records are grouped by class in list order (dataset_from_folders lists by class already).
  for (size_t i = 0; i < data.samples.size(); ++i) {
    const auto& s = data.samples[i];
    ASSERT_EQ(rec->images()[i].label, s.label) << s.path;
    const auto bytes = rec->read(i);
    EXPECT_EQ(bytes, read_file_bytes(data.root / s.path)) << s.path;
    const Image a = decode_bytes(bytes.data(), bytes.size(), Color::BGR, s.path);
    const Image b = read_image(data.root / s.path, Color::BGR);
    EXPECT_EQ(a.pixels, b.pixels) << s.path;
  }
  std::ifstream property(dir / "property");
  std::string text;
  std::getline(property, text);
  EXPECT_EQ(text, std::to_string(data.num_classes()) + ",112,112");
}

TEST(RecordIO, DamageIsNamed) {
  {
    const auto dir = test::temp_dir("recordio_truncated");
    const auto rec = copy_fixture(dir);
    fs::resize_file(rec, 20000);  // inside record 4: records 5 on are past the end
    expect_error(rec, "train.idx line 6: record 5 at offset 21488 is past the end");
    expect_error(rec, "truncated");
  }
  {
    // Cut inside record 6, the last image, with an index of the image records only: the
    // record itself runs past the end.
    const auto dir = test::temp_dir("recordio_truncated_record");
    const auto rec = copy_fixture(dir);
    fs::resize_file(rec, 30000);
    std::ofstream(dir / "train.idx", std::ios::trunc)
        << "0\t0\n1\t40\n2\t5424\n3\t10280\n4\t16432\n5\t21488\n6\t27096\n";
    expect_error(rec, "record 6 of");
    expect_error(rec, "run past the end");
  }
  {
    const auto dir = test::temp_dir("recordio_magic");
    const auto rec = copy_fixture(dir);
    std::fstream f(rec, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10280);  // record 3 starts here (train.idx)
    f.put('\x00');
    f.close();
    expect_error(rec, "record 3 of");
    expect_error(rec, "bad magic");
  }
  {
    const auto dir = test::temp_dir("recordio_idx");
    const auto rec = copy_fixture(dir);
    std::ofstream(dir / "train.idx", std::ios::app) << "99\t1000000\n";
    expect_error(rec, "train.idx line 11: record 99 at offset 1000000 is past the end");
  }
  {
    const auto dir = test::temp_dir("recordio_property");
    const auto rec = copy_fixture(dir);
    std::ofstream(dir / "property", std::ios::trunc) << "2,112,112\n";
    expect_error(rec, "record 5 of");
    expect_error(rec, "label 2 is outside 0..1");
  }
  {
    const auto dir = test::temp_dir("recordio_noidx");
    const auto rec = copy_fixture(dir);
    fs::remove(dir / "train.idx");
    expect_error(rec, "train.idx' not found");
  }
}

}  // namespace
}  // namespace arcface
