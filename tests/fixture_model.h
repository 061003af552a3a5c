#pragma once

// The checkpoint of tests/fixture_model.yaml: ctest trains it once (fixture.model) and passes
// its path in ARCFACE_TEST_MODEL; run by hand, the suite trains it itself.
#include <cstdlib>
#include <filesystem>

#include "arcface/config.h"
#include "arcface/dataset.h"
#include "arcface/trainer.h"
#include "test_util.h"

namespace arcface::test {

inline fs::path fixture_model() {
  static fs::path model;
  if (!model.empty()) return model;
  if (const char* given = std::getenv("ARCFACE_TEST_MODEL"); given && fs::exists(given)) {
    return model = given;
  }
  const auto dir = temp_dir("fixture_model");
  SelectOptions select;
  select.root = sample_dir() / "train";
  select.classes = 24;
  select.max_per_class = 12;
  write_train_list(dir / "train_list.txt", select_balanced(select).samples);
  const auto config = load_config((source_dir() / "tests" / "fixture_model.yaml").string(),
                                  {"data.train_root=" + (sample_dir() / "train").string(),
                                   "data.train_list=" + (dir / "train_list.txt").string(),
                                   "paths.checkpoints_path=" + dir.string()});
  TrainOptions o;
  o.progress = false;
  return model = train(config, o).last_checkpoint;
}

}  // namespace arcface::test
