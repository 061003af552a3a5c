#!/usr/bin/env bash
# Data-parallel overhead on one machine: the same global batch trained by 1 process and by
# 2 ranks (c10d/Gloo on loopback, half the cores each), one epoch over the first IMAGES images
# of the disjoint training list, no validation. Prints images/s and the time the ranks spent
# waiting for gradient all-reduces.
#   bench/bench_distributed.sh [BACKBONE] [INPUT] [GLOBAL_BATCH] [IMAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
backbone=${1:-mobilefacenet} input=${2:-112} batch=${3:-64} images=${4:-1280}
list=runs/disjoint/train_list.txt
[[ -s $list ]] || { echo "make $list first (see config/disjoint-mbf64.yaml)" >&2; exit 1; }
out=$(mktemp -d)
head -n "$images" "$list" > "$out/list.txt"
classes=$(awk '{print $2}' "$out/list.txt" | sort -un | tail -1)
common=(--config config/disjoint-mbf64.yaml --no-progress
  --set model.backbone="$backbone" --set model.num_classes=$((classes + 1))
  --set data.train_list="$out/list.txt" --set data.input_size="$input" --set data.resize="$input"
  --set training.max_epoch=1 --set val.root= --set val.pairs= --set training.warmup_epochs=0)
build/arcface train "${common[@]}" --set training.batch_size="$batch" \
  --set paths.checkpoints_path="$out/one" > "$out/one.log"
port=$((20000 + RANDOM % 20000))
for rank in 0 1; do
  build/arcface train "${common[@]}" --set training.batch_size=$((batch / 2)) \
    --set paths.checkpoints_path="$out/two" --world-size 2 --rank $rank \
    --master 127.0.0.1:$port > "$out/rank$rank.log" &
done
wait
python3 - "$out" "$backbone" "$input" "$batch" <<'PY'
import json, sys
out, backbone, size, batch = sys.argv[1:]
one = json.load(open(f"{out}/one/history.json"))[-1]
two = json.load(open(f"{out}/two/history.json"))[-1]
print(f"{backbone} {size}x{size}, global batch {batch}, {one['epoch']} epoch")
print(f"{'processes':<10} {'images/s':>9} {'epoch s':>8} {'all-reduce wait s':>18} {'per step ms':>12}")
print(f"{1:<10} {one['images_per_s']:9.2f} {one['seconds']:8.1f} {'-':>18} {'-':>12}")
n_steps = round(two["images_per_s"] * two["seconds"] / int(batch))
wait = two["allreduce_wait_seconds"]
print(f"{2:<10} {two['images_per_s']:9.2f} {two['seconds']:8.1f} {wait:18.2f} {1000 * wait / n_steps:12.1f}")
print(f"2 ranks / 1 process: {two['images_per_s'] / one['images_per_s']:.2f}")
PY
rm -rf "$out"
