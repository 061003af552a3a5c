#!/usr/bin/env bash
# `arcface pack` and training from the .rec it writes; a damaged .rec is refused by record.
set -uo pipefail
bin=$1 sample=$2 tests=$3 out=$4
rm -rf "$out" && mkdir -p "$out"
source "$(dirname "$0")/cli_lib.sh"
expect pack 0 "$bin" pack --root "$sample/train" --out "$out/rec/train.rec"
grep -q "Packed 283 images of 24 classes" "$out/pack.txt" || fail "pack counts"
grep -q "^24,112,112$" "$out/rec/property" || fail "property: $(cat "$out/rec/property")"
# Read back by a reader written from the format's description, not ours.
expect read_back 0 python3 "$tests/data/make_recordio_fixture.py" --read "$out/rec/train.rec"
grep -q "283 images, 24 classes, ranges agree" "$out/read_back.txt" || fail "independent read"
expect train 0 "$bin" train --config "$tests/fixture_model.yaml" --no-progress \
  --set data.train_rec="$out/rec/train.rec" --set training.max_epoch=2 \
  --set paths.checkpoints_path="$out/model"
grep -q "record file" "$out/train.txt" || fail "training did not read the record file"
grep -q "Epoch \[2/2\]" "$out/train.txt" || fail "training did not run"
[ -f "$out/model/last.pt" ] || fail "no checkpoint"
# A selection of the records: 8 of its 24 people, relabelled, trained from the same file.
expect select 0 "$bin" select --rec "$out/rec/train.rec" --min-images 1 --classes 8 \
  --max-per-class 0 --order random --out "$out/rec_list.txt"
[ "$(cut -d' ' -f2 "$out/rec_list.txt" | sort -u | wc -l)" = 8 ] || fail "select --rec: not 8 people"
grep -qv "^train.rec#[0-9]* [0-7]$" "$out/rec_list.txt" && fail "select --rec: $(head -2 "$out/rec_list.txt")"
n=$(wc -l < "$out/rec_list.txt")
expect train_selection 0 "$bin" train --config "$tests/fixture_model.yaml" --no-progress \
  --set data.train_rec="$out/rec/train.rec" --set data.train_list="$out/rec_list.txt" \
  --set model.num_classes=8 --set training.max_epoch=1 --set paths.checkpoints_path="$out/model8"
grep -q "8 classes, $n images" "$out/train_selection.txt" || fail "selection not trained"
echo "train.rec#99999 0" > "$out/stray_list.txt"
expect stray 1 "$bin" train --config "$tests/fixture_model.yaml" --no-progress \
  --set data.train_rec="$out/rec/train.rec" --set data.train_list="$out/stray_list.txt" \
  --set paths.checkpoints_path="$out/stray_model"
grep -q "stray_list.txt.* entry 1: 'train.rec#99999' is not a record" "$out/stray.txt" || fail "stray record"
mkdir -p "$out/bad" && cp "$tests/data/recordio/"* "$out/bad/"
head -c 1 /dev/zero | dd of="$out/bad/train.rec" bs=1 seek=10280 conv=notrunc status=none
expect bad 1 "$bin" train --config "$tests/fixture_model.yaml" --no-progress \
  --set data.train_rec="$out/bad/train.rec" --set model.num_classes=3 \
  --set paths.checkpoints_path="$out/bad_model"
grep -q "record 3 of .*bad magic" "$out/bad.txt" || { cat "$out/bad.txt"; fail "bad magic not named"; }
echo "pack OK"
