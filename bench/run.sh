#!/usr/bin/env bash
# Runs the benchmarks and prints one table: the machine line, then training throughput of the
# C++ toolkit and of the same step in PyTorch eager Python (as shipped, and at its best with
# jemalloc keeping freed memory), with ratios and fractions of the GEMM peak.
#   bench/run.sh [train] [eval]        (default: train)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${*:-train}
cmake --build build --target bench -j"$(nproc)" >/dev/null
threads=$(nproc)
jemalloc=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2)
jemalloc_conf="dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0"
out=$(mktemp -d)

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), flags:" \
  "$(grep -o -w -E 'avx2|fma|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | xargs)," \
  "libblas.so.3 -> $(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu), $threads threads"

if [[ " $what " == *" train "* ]]; then
  configs=(
    "--backbone resnet_face18 --input-size 128 --channels 1 --batch-size 32"
    "--backbone iresnet18 --input-size 112 --channels 3 --batch-size 64"
    "--backbone mobilefacenet --input-size 112 --channels 3 --batch-size 64"
  )
  printf "\n%-15s %-10s %-5s | %8s %8s %6s | %8s %8s | %8s %8s | %6s %6s | %8s\n" \
    backbone input batch "C++ i/s" GFLOP/s "%peak" "py i/s" "%peak" "py+je i/s" "%peak" \
    "x py" "x py+je" "RSS MiB"
  for c in "${configs[@]}"; do
    # Interleaved, so drift on a shared machine hits all three sides alike.
    build/bench/bench_train $c --threads "$threads" --steps 6 > "$out/cpp.json"
    /usr/bin/python3 bench/bench_train.py $c --threads "$threads" --steps 6 > "$out/py.json"
    LD_PRELOAD=$jemalloc MALLOC_CONF=$jemalloc_conf \
      /usr/bin/python3 bench/bench_train.py $c --threads "$threads" --steps 6 > "$out/pyje.json"
    /usr/bin/python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
c, p, j = (json.load(open(f"{d}/{n}.json")) for n in ("cpp", "py", "pyje"))
print(f"{c['backbone']:<15} {c['input']:<10} {c['batch']:<5} | {c['images_per_s']:8.2f} "
      f"{c['gflops']:8.1f} {100 * c['fraction_of_peak']:5.1f}% | {p['images_per_s']:8.2f} "
      f"{100 * p['fraction_of_peak']:7.1f}% | {j['images_per_s']:8.2f} {100 * j['fraction_of_peak']:7.1f}% | "
      f"{c['images_per_s'] / p['images_per_s']:6.2f} {c['images_per_s'] / j['images_per_s']:6.2f} | "
      f"{c['peak_rss_mib']:8.0f}")
print(f"  (GEMM peak measured per run: C++ {c['gemm_peak_gflops']:.0f}, py {p['gemm_peak_gflops']:.0f}, "
      f"py+je {j['gemm_peak_gflops']:.0f} GFLOP/s; {c['gflop_per_image']:.2f} GFLOP per training image)")
PY
  done
fi
rm -rf "$out"
