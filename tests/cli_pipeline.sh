#!/usr/bin/env bash
# The user's path through the command on the shipped sample, small and fast.
set -euo pipefail
bin=$1 sample=$2 out=$3
rm -rf "$out" && mkdir -p "$out"
fail() { echo "FAIL: $*"; exit 1; }

"$bin" select --root "$sample/train" --classes 6 --max-per-class 10 --out "$out/list.txt"
cat > "$out/config.yaml" <<YAML
model: {backbone: resnet_face18, num_classes: 6, embedding_size: 64}
training: {batch_size: 10, max_epoch: 2, lr: 0.05, print_freq: 2}
data: {train_root: $sample/train, train_list: $out/list.txt, input_size: 32, resize: 36, channels: 1}
val: {root: $sample/lfw, pairs: $sample/pairs.txt, folds: 2}
paths: {checkpoints_path: $out/run}
YAML
"$bin" train --config "$out/config.yaml" --no-progress | tee "$out/train.txt"
grep -q "Epoch 2/2 complete" "$out/train.txt" || fail "no second epoch"
for f in last.pt best.pt best_lfw.json history.json training_config.json training.log; do
  [ -s "$out/run/$f" ] || fail "missing $f"
done
# Resuming a finished run does nothing and fails nothing.
"$bin" train --config "$out/config.yaml" --resume "$out/run/last.pt" --no-progress >/dev/null

"$bin" eval --model "$out/run/best.pt" --root "$sample/lfw" --pairs "$sample/pairs.txt" \
  --out "$out/eval" --no-progress | tee "$out/eval.txt"
grep -q "\[4/4\]" "$out/eval.txt" || fail "eval did not finish its steps"
plots="roc.png score_hist.png"
grep -q "this build has no PLplot" "$out/eval/report.md" 2>/dev/null && plots=""
for f in metrics.json pair_scores.csv report.md $plots; do
  [ -s "$out/eval/$f" ] || fail "missing eval/$f"
done

"$bin" embed --model "$out/run/best.pt" --root "$sample/lfw" --out "$out/emb.npy" | tee "$out/embed.txt"
grep -q "Wrote 186 descriptors of 64 values" "$out/embed.txt" || fail "embed count"

a="$sample/lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg"
b="$sample/lfw/Abel_Pacheco/Abel_Pacheco_0004.jpg"
"$bin" verify --model "$out/run/best.pt" "$a" "$b" --report "$out/eval/metrics.json" | tee "$out/verify.txt"
grep -qE "^score -?[0-9.]+ \(threshold" "$out/verify.txt" || fail "verify output"

# Bad input: a missing image is named, with a non-zero exit.
if "$bin" verify --model "$out/run/best.pt" "$a" "$sample/nope.jpg" --threshold 0.3 2>"$out/err.txt"; then
  fail "verify accepted a missing image"
fi
grep -q "nope.jpg" "$out/err.txt" || fail "error does not name the missing image"
echo "pipeline OK"
