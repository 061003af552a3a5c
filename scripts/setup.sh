#!/usr/bin/env bash
# Installs the Debian packages arcface builds against, then configures and builds the command.
# With --tests it also installs what the tests need (GoogleTest, a browser, load tools) and
# builds the test programs; the demo needs neither.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=OFF
[ "${1:-}" = "--tests" ] && tests=ON

packages=(
  build-essential cmake pkg-config
  libtorch-dev libgloo-dev libdnnl-dev libopenblas0-openmp libjemalloc-dev
  libopencv-dev libturbojpeg0-dev libdlib-dev libdlib-data
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libspdlog-dev
  libplplot-dev plplot-driver-cairo
  libfaiss-dev libsqlite3-dev libcpp-httplib-dev prometheus-cpp-dev
  pybind11-dev python3-dev python3-numpy  # the Python module
)
if [ "$tests" = ON ]; then
  packages+=(
    libgtest-dev libbenchmark-dev python3-pytest
    chromium chromium-driver python3-selenium wrk  # the web page test, the load bench
  )
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Every optional part insisted on: the packages above provide them all. Without --tests only
# the command is built (a build configured with the tests keeps them configured).
testing=()
if [ "$tests" = ON ]; then
  testing=(-DBUILD_TESTING=ON)
elif [ ! -f build/CMakeCache.txt ]; then
  testing=(-DBUILD_TESTING=OFF)
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${testing[@]}" \
  -DARCFACE_WITH_OPENCV=ON -DARCFACE_WITH_DLIB=ON -DARCFACE_WITH_SERVICE=ON \
  -DARCFACE_WITH_PLPLOT=ON -DARCFACE_WITH_ONEDNN=ON -DARCFACE_WITH_JEMALLOC=ON -DARCFACE_WITH_PYTHON=ON
if [ "$tests" = ON ]; then
  cmake --build build -j"$(nproc)"
else
  cmake --build build -j"$(nproc)" --target arcface_cli arcface_python
fi
# `import arcface` from Debian's python3: the build folder on its path for this user.
site=$(/usr/bin/python3 -m site --user-site)
mkdir -p "$site"
echo "$PWD/build/python" >"$site/arcface.pth"
