#!/usr/bin/env bash
# Runs the benchmarks and prints one table: the machine line, then training throughput of the
# C++ toolkit and of the same step in PyTorch eager Python (as shipped, and at its best with
# jemalloc keeping freed memory), with ratios and fractions of the peak. The peak is measured by
# the C++ side in the same run, for the row's precision: the best of OpenBLAS and oneDNN (and a
# bf16 GEMM for bf16 rows); every row of a line is divided by that one figure.
# Then inference latency and throughput per backbone, evaluation of LFW images against Python
# (seed 000's test.py way and at its best), and the face detectors on raw LFW.
#   bench/run.sh [train] [infer] [eval] [detect]        (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${*:-train infer eval detect}
if ! /usr/bin/python3 -c "import torch, cv2" 2>/dev/null; then
  echo "the Python side needs Debian's python3-torch and python3-opencv (comparison only):" >&2
  echo "  sudo apt-get install python3-torch python3-opencv" >&2
  exit 1
fi
cmake --build build --target bench -j"$(nproc)" >/dev/null
threads=$(nproc)
jemalloc=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2)
jemalloc_conf="dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0"
out=$(mktemp -d)
# bf16 rows where the CPU computes bf16 natively (BF16=1 forces them: emulated, slow).
bf16=${BF16:-0}
grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo && bf16=1

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
      f"{100 * p['gflops'] / c['peak_gflops']:7.1f}% | {j['images_per_s']:8.2f} "
      f"{100 * j['gflops'] / c['peak_gflops']:7.1f}% | "
      f"{c['images_per_s'] / p['images_per_s']:6.2f} {c['images_per_s'] / j['images_per_s']:6.2f} | "
      f"{c['peak_rss_mib']:8.0f}")
print(f"  (fp32 peak {c['peak_gflops']:.0f} GFLOP/s by {c['peak_source']}; "
      f"{c['gflop_per_image']:.2f} GFLOP per training image)")
PY
    if ((bf16)); then
      build/bench/bench_train $c --threads "$threads" --steps 6 --precision bf16 > "$out/bf16.json"
      LD_PRELOAD=$jemalloc MALLOC_CONF=$jemalloc_conf \
        /usr/bin/python3 bench/bench_train.py $c --threads "$threads" --steps 6 --bf16 > "$out/pybf16.json"
      /usr/bin/python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
c, b, p = (json.load(open(f"{d}/{n}.json")) for n in ("cpp", "bf16", "pybf16"))
print(f"  C++ bf16: {b['images_per_s']:.2f} images/s = {b['images_per_s'] / c['images_per_s']:.2f} x fp32, "
      f"{b['gflops']:.1f} GFLOP/s = {100 * b['fraction_of_peak']:.1f}% of the bf16 peak "
      f"({b['peak_gflops']:.0f} GFLOP/s by {b['peak_source']}), RSS {b['peak_rss_mib']:.0f} MiB; "
      f"py+je bf16 (autocast): {p['images_per_s']:.2f} images/s "
      f"({100 * p['gflops'] / b['peak_gflops']:.1f}%), C++ bf16 = {b['images_per_s'] / p['images_per_s']:.2f} x that")
PY
    fi
  done
fi
if [[ " $what " == *" infer "* ]]; then
  # Batch-1 latency and batched throughput as eval/verify run the network (BatchNorm folded).
  printf "\n%-20s %-10s %7s | %9s %9s %8s | %8s %8s %6s %5s | %8s\n" backbone input GFLOP \
    "b1 ms" "b1 p90 ms" "b1 GF/s" "b64 i/s" "GFLOP/s" "%peak" peak "RSS MiB"
  for c in "--backbone resnet_face18 --input-size 128 --channels 1" \
    "--backbone iresnet18 --input-size 112 --channels 3" \
    "--backbone mobilefacenet --input-size 112 --channels 3" \
    "--backbone inception_resnet_v1 --input-size 160 --channels 3"; do
    build/bench/bench_infer $c --threads "$threads" > "$out/infer.json"
    /usr/bin/python3 - "$out" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/infer.json"))
print(f"{r['backbone']:<20} {r['input']:<10} {r['gflop_per_image']:7.2f} | "
      f"{r['latency_ms_median']:9.1f} {r['latency_ms_p90']:9.1f} {r['batch1_gflops']:8.1f} | "
      f"{r['images_per_s']:8.1f} {r['batched_gflops']:8.1f} {100 * r['batched_fraction_of_peak']:5.1f}% "
      f"{r['peak_gflops']:5.0f} | "
      f"{r['peak_rss_mib']:8.0f}")
PY
  done
  echo "  (GFLOP per forward image; b1 = batch 1; peak = the best fp32 GEMM of OpenBLAS and oneDNN, measured in each run)"
fi
if [[ " $what " == *" eval "* ]]; then
  # The distinct LFW images of pairs.txt (the first $EVAL_IMAGES of 7,701), with mirror images,
  # through a resnet_face18 (1x128x128, seed 000) and an IR-ResNet18 (3x112x112) checkpoint.
  # Untrained ones (two steps on the sample) unless RESNET_FACE18 / IRESNET18 name trained ones:
  # the work per image does not depend on the weights.
  images=${EVAL_IMAGES:-800}
  build/arcface select --root data/sample/train --classes 24 --max-per-class 12 \
    --out "$out/list.txt" >/dev/null
  checkpoint() {
    local name=$1
    shift
    build/arcface train --config config/demo.yaml --max-steps 2 --no-progress \
      --set model.backbone="$name" --set data.train_list="$out/list.txt" \
      --set paths.checkpoints_path="$out/$name" "$@" >/dev/null
    echo "$out/$name/last.pt"
  }
  rf18=${RESNET_FACE18:-$(checkpoint resnet_face18 --set data.input_size=128 --set data.channels=1 \
    --set data.resize=128 --set "data.mean=[0.5]" --set "data.std=[0.5]")}
  ir18=${IRESNET18:-$(checkpoint iresnet18 --set data.resize=112)}
  printf "\n%-14s %-6s | %8s %8s %6s %7s | %9s %8s | %9s %8s | %6s %6s | %8s\n" \
    backbone images "C++ i/s" "net GF/s" "%peak" "wait s" "test.py i/s" "%peak" "py best" "%peak" \
    "x test" "x best" "RSS MiB"
  for model in "$rf18" "$ir18"; do
    build/bench/bench_eval --model "$model" --images "$images" --threads "$threads" > "$out/cpp.json"
    /usr/bin/python3 bench/bench_eval.py --model "$model" --images "$images" --mode testpy \
      --threads "$threads" > "$out/py.json"
    LD_PRELOAD=$jemalloc MALLOC_CONF=$jemalloc_conf /usr/bin/python3 bench/bench_eval.py \
      --model "$model" --images "$images" --mode best --threads "$threads" > "$out/pyje.json"
    /usr/bin/python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
c, p, j = (json.load(open(f"{d}/{n}.json")) for n in ("cpp", "py", "pyje"))
print(f"{c['backbone']:<14} {c['images']:<6} | {c['images_per_s']:8.2f} {c['network_gflops']:8.1f} "
      f"{100 * c['network_fraction_of_peak']:5.1f}% {c['decode_wait_seconds']:7.1f} | "
      f"{p['images_per_s']:9.2f} {100 * p['network_gflops'] / c['peak_gflops']:7.1f}% | "
      f"{j['images_per_s']:9.2f} {100 * j['network_gflops'] / c['peak_gflops']:7.1f}% | "
      f"{c['images_per_s'] / p['images_per_s']:6.2f} {c['images_per_s'] / j['images_per_s']:6.2f} | "
      f"{c['peak_rss_mib']:8.0f}")
print(f"  ({c['input']}; {c['gflop_per_image']:.2f} GFLOP per image with its mirror; fp32 peak "
      f"{c['peak_gflops']:.0f} GFLOP/s by {c['peak_source']}; Python decoding {p['decode_seconds']:.1f} s of "
      f"{p['seconds']:.1f} s (test.py), {j['decode_seconds']:.1f} s of {j['seconds']:.1f} s (best))")
bound = c['images'] * c['gflop_per_image'] / c['peak_gflops']
print(f"  C++: {c['seconds']:.1f} s for {c['images']} images ({c['network_seconds']:.1f} s network, "
      f"{c['decode_wait_seconds']:.1f} s waiting for decoding); FLOP lower bound at the peak "
      f"{bound:.1f} s = {100 * bound / c['seconds']:.0f}% of the time taken; all 7,701 LFW images "
      f"at this rate: {7701 / c['images_per_s']:.0f} s (bound {7701 * c['gflop_per_image'] / c['peak_gflops']:.0f} s)")
PY
    if ((bf16)); then
      build/bench/bench_eval --model "$model" --images "$images" --threads "$threads" \
        --precision bf16 > "$out/bf16.json"
      LD_PRELOAD=$jemalloc MALLOC_CONF=$jemalloc_conf /usr/bin/python3 bench/bench_eval.py \
        --model "$model" --images "$images" --mode best --threads "$threads" --bf16 > "$out/pybf16.json"
      /usr/bin/python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
c, b, p, j, q = (json.load(open(f"{d}/{n}.json")) for n in ("cpp", "bf16", "py", "pyje", "pybf16"))
print(f"  C++ bf16: {b['images_per_s']:.2f} images/s = {b['images_per_s'] / c['images_per_s']:.2f} x fp32 "
      f"({100 * b['network_fraction_of_peak']:.0f}% of the bf16 peak, {b['peak_gflops']:.0f} GFLOP/s by {b['peak_source']}), "
      f"{b['images_per_s'] / p['images_per_s']:.2f} x test.py, {b['images_per_s'] / j['images_per_s']:.2f} x py best; "
      f"py best bf16 (autocast): {q['images_per_s']:.2f} images/s, C++ bf16 = {b['images_per_s'] / q['images_per_s']:.2f} x that")
PY
    fi
  done
fi
if [[ " $what " == *" detect "* ]]; then
  # Detection rate, landmark error (inter-ocular units) and speed on raw LFW fold 1.
  echo
  build/bench/bench_detect --root ../shared/data/lfw/raw
fi
rm -rf "$out"
