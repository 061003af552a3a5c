#!/usr/bin/env bash
# A truncated JPEG (a real LFW crop cut to its first 700 bytes, which OpenCV decodes with a grey
# remainder) must be found and named by eval, embed, verify and train, never scored as whole.
set -uo pipefail
bin=$1 sample=$2 model=$3 out=$4
rm -rf "$out" && mkdir -p "$out"
source "$(dirname "$0")/cli_lib.sh"

cp -r "$sample/lfw" "$out/lfw"
cut=Abel_Pacheco/Abel_Pacheco_0001.jpg
head -c 700 "$sample/lfw/$cut" >"$out/lfw/$cut"

expect eval 1 "$bin" eval --model "$model" --root "$out/lfw" --pairs "$sample/pairs.txt" \
  --no-progress --out "$out/eval"
grep -q "Abel_Pacheco_0001.jpg' is damaged (truncated or corrupt): Premature end of JPEG file" \
  "$out/eval.txt" || fail "eval does not name the damaged image"
[ -e "$out/eval/metrics.json" ] && fail "eval wrote metrics despite a damaged image"

expect eval_skip 0 "$bin" eval --model "$model" --root "$out/lfw" --pairs "$sample/pairs.txt" \
  --skip-missing --no-progress --out "$out/eval_skip"
grep -q "Abel_Pacheco_0001.jpg" "$out/eval_skip/report.md" || fail "report.md does not list the drop"
grep -q '"dropped_images"' "$out/eval_skip/metrics.json" || fail "metrics.json does not list the drop"
grep -q "Abel_Pacheco_0001.jpg" "$out/eval_skip/metrics.json" || fail "metrics.json does not name it"

expect embed 1 "$bin" embed --model "$model" --root "$out/lfw" --out "$out/emb.npy"
grep -q "Abel_Pacheco_0001.jpg' is damaged" "$out/embed.txt" || fail "embed does not name it"
expect verify 1 "$bin" verify --model "$model" "$out/lfw/$cut" \
  "$out/lfw/Abel_Pacheco/Abel_Pacheco_0004.jpg" --threshold 0.3
grep -q "Abel_Pacheco_0001.jpg' is damaged" "$out/verify.txt" || fail "verify does not name it"

# Training: an error naming every damaged file by default, a listed skip on request.
mkdir -p "$out/train/a" "$out/train/b"
for i in 1 2 3; do
  cp "$sample/train/Alvaro_Uribe/Alvaro_Uribe_000$i.jpg" "$out/train/a/$i.jpg"
  cp "$sample/train/Andre_Agassi/Andre_Agassi_000$i.jpg" "$out/train/b/$i.jpg"
done
head -c 700 "$sample/train/Andre_Agassi/Andre_Agassi_0004.jpg" >"$out/train/b/4.jpg"
cat >"$out/config.yaml" <<YAML
model: {backbone: mobilefacenet, num_classes: 2, embedding_size: 32}
training: {batch_size: 2, max_epoch: 1, lr: 0.01}
data: {train_root: $out/train, input_size: 32, channels: 3}
paths: {checkpoints_path: $out/run}
YAML
expect train 1 "$bin" train --config "$out/config.yaml" --no-progress
grep -q "1 images of image root .* are truncated, corrupt or unreadable" "$out/train.txt" ||
  fail "train does not count the damaged image"
grep -q "b/4.jpg' is damaged" "$out/train.txt" || fail "train does not name the damaged image"
expect train_skip 0 "$bin" train --config "$out/config.yaml" --no-progress \
  --set data.bad_images=skip
grep -q "b/4.jpg" "$out/run/bad_images.txt" || fail "bad_images.txt does not list it"
grep -q '"bad_images_skipped": 1' "$out/run/history.json" || fail "history.json does not count it"
grep -q '"images": 6' "$out/run/history.json" || fail "the run did not train on the 6 whole images"
echo "damaged images OK"
