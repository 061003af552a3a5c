#pragma once

// Paths of the real data the tests use.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace arcface::test {

namespace fs = std::filesystem;

inline fs::path source_dir() { return ARCFACE_SOURCE_DIR; }
inline fs::path sample_dir() { return source_dir() / "data" / "sample"; }
inline fs::path shared_data() { return ARCFACE_SHARED_DATA; }
inline fs::path lfw_root() { return shared_data() / "lfw" / "lfw-align-112"; }

/// A fresh, empty directory for one test.
inline fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("arcface_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace arcface::test

/// Skips the test when the shared real data is not on this machine.
#define REQUIRE_SHARED_DATA()                                                     \
  do {                                                                            \
    if (!std::filesystem::exists(arcface::test::lfw_root()))                      \
      GTEST_SKIP() << "real LFW data not found at " << arcface::test::lfw_root(); \
  } while (0)
