#!/usr/bin/env bash
# Runs the whole test suite (GoogleTest through CTest, plus command-line tests), after the
# torch-free tests of the parsers of outside bytes (pair lists, CFP's protocol, .bin, YAML
# configs, reports) built with AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON \
  -DARCFACE_SANITIZE=address,undefined -DARCFACE_WITH_JEMALLOC=OFF > /dev/null
cmake --build build-asan --target test_core -j"$(nproc)"
ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$PWD/tests/sanitizer/lsan.supp" \
  build-asan/tests/test_core --gtest_brief=1
ctest --test-dir build --output-on-failure -j1 "$@"
