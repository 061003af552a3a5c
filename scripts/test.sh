#!/usr/bin/env bash
# Runs the whole test suite (GoogleTest through CTest, plus command-line tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
ctest --test-dir build --output-on-failure -j1 "$@"
