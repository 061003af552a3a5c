#!/usr/bin/env bash
# Runs the whole test suite (GoogleTest, command-line and Python tests, through CTest), after the
# torch-free tests of the parsers of outside bytes (pair lists, CFP's protocol, .bin, YAML
# configs, reports) and their fuzz corpora, built with AddressSanitizer and
# UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON \
  -DARCFACE_SANITIZE=address,undefined -DARCFACE_WITH_JEMALLOC=OFF > /dev/null
fuzz=(pairs cfp config decision)
cmake --build build-asan -j"$(nproc)" --target test_core "${fuzz[@]/#/fuzz_}"
export ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$PWD/tests/sanitizer/lsan.supp"
build-asan/tests/test_core --gtest_brief=1
# The fuzz corpora and the inputs that once found a defect, under the same sanitizers.
for t in "${fuzz[@]}"; do build-asan/tests/fuzz/fuzz_$t tests/fuzz/corpus/$t; done
unset ASAN_OPTIONS LSAN_OPTIONS
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
