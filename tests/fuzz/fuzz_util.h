#pragma once

// Shared by the fuzz targets: outside bytes go to a file (the parsers read files, as the
// commands do), and only arcface::Error may come back. Any other exception is a defect: its
// message would not name the file or value at fault.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "arcface/error.h"

namespace arcface::fuzz {

namespace fs = std::filesystem;

/// A folder of this process's own (in memory where /dev/shm exists).
inline const fs::path& scratch() {
  static const fs::path dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("arcface_fuzz_" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

inline fs::path write_file(const fs::path& path, const uint8_t* data, size_t size) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data), size);
  return path;
}

/// Runs `parse`: an arcface::Error is a refusal and fine, anything else aborts the run.
template <class F>
void refusals_only(F&& parse) {
  try {
    parse();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "not an arcface::Error: %s\n", e.what());
    std::abort();
  }
}

}  // namespace arcface::fuzz
