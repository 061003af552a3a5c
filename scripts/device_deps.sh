#!/usr/bin/env bash
# The core build's Debian packages (yaml-cpp, nlohmann-json, spdlog + fmt, CLI11, TurboJPEG,
# GoogleTest), downloaded and unpacked into .deps/ without installing them: a tree to take to a
# machine that has a libtorch and a compiler but no package manager. Then, there:
#   . scripts/device_deps.sh --env      # points CMake and pkg-config at .deps
#   cmake -S . -B build-cuda -DTorch_DIR=... -DARCFACE_WITH_OPENCV=OFF ... (see README, Building)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.deps"
if [ "${1:-}" = "--env" ]; then
  export CMAKE_PREFIX_PATH="$deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_PATH="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$deps"
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  return 0 2>/dev/null || exit 0
fi
set -euo pipefail
packages=(libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev
          libfmt9 libcli11-dev libturbojpeg0-dev libturbojpeg0 libgtest-dev)
rm -rf "$deps" && mkdir -p "$deps/debs"
(cd "$deps/debs" && apt-get download "${packages[@]}")
for deb in "$deps"/debs/*.deb; do dpkg -x "$deb" "$deps"; done
rm -rf "$deps/debs" "$deps/usr/share/doc"
du -sh "$deps"
