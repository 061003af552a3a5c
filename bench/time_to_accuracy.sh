#!/usr/bin/env bash
# Seed 000's task against the clock: select its balanced 100-person LFW subset, train
# config/seed000-fast.yaml, then evaluate the final checkpoint on all 6,000 pairs twice: seed
# 000's own measure (best-threshold accuracy on lfw_test_pair.txt) and the honest one (10-fold
# on pairs.txt). Prints the wall time of each stage and both accuracies.
#   bench/time_to_accuracy.sh [--set key=value ...]      (overrides go to `arcface train`)
# RUN names the output folder (default runs/time-to-accuracy); it must not exist yet.
set -euo pipefail
cd "$(dirname "$0")/.."
lfw=${LFW:-../shared/data/lfw}
run=${RUN:-runs/time-to-accuracy}
for a in "$@"; do
  case $a in paths.checkpoints_path=*) echo "error: the run's folder is RUN, not $a" >&2; exit 2 ;; esac
done
if [ -e "$run" ]; then
  echo "error: $run exists; move it away or set RUN to a new folder" >&2
  exit 2
fi
cmake --build build --target arcface_cli -j"$(nproc)" >/dev/null
mkdir -p "$run"

now() { date +%s.%N; }
t0=$(now)
build/arcface select --root "$lfw/lfw-align-112" --out "$run/train_list.txt" >/dev/null
build/arcface train --config config/seed000-fast.yaml --no-progress \
  --set data.train_root="$lfw/lfw-align-112" --set data.train_list="$run/train_list.txt" \
  --set val.root="$lfw/lfw-align-112" --set val.pairs="$lfw/pairs.txt" \
  --set paths.checkpoints_path="$run" "$@" >"$run/train.txt"
t1=$(now)
build/arcface eval --model "$run/last.pt" --root "$lfw/lfw-align-112" \
  --pairs "$lfw/lfw_test_pair.txt" --out "$run/eval_test_pair" --no-progress >/dev/null
t2=$(now)
build/arcface eval --model "$run/last.pt" --root "$lfw/lfw-align-112" --pairs "$lfw/pairs.txt" \
  --out "$run/eval_pairs" --no-progress >/dev/null
t3=$(now)

/usr/bin/python3 - "$run" "$t0" "$t1" "$t2" "$t3" <<'PY'
import json, sys
run, t0, t1, t2, t3 = sys.argv[1], *map(float, sys.argv[2:])
a = json.load(open(f"{run}/eval_test_pair/metrics.json"))
b = json.load(open(f"{run}/eval_pairs/metrics.json"))
print(f"select + train: {(t1 - t0) / 60:.1f} min")
print(f"lfw_test_pair.txt, best threshold (seed 000's measure): {100 * a['accuracy_best']:.2f}% "
      f"@ {a['threshold_best']:.4f}; eval {t2 - t1:.0f} s ({a['images']} images with flips)")
print(f"pairs.txt, 10-fold: {100 * b['accuracy_10fold_mean']:.2f}% +- "
      f"{100 * b['accuracy_10fold_std']:.2f}%, AUC {b['roc_auc']:.4f}; eval {t3 - t2:.0f} s")
print(f"time to accuracy (select + train + the seed's evaluation): {(t2 - t0) / 60:.1f} min")
PY
