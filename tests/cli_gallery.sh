#!/usr/bin/env bash
# A gallery as a user makes one: create, enrol a folder per person, identify, rename, remove,
# export, and the refusals (another model, a damaged photo, an existing file).
set -uo pipefail
bin=$1 sample=$2 model=$3 onnx=$4 out=$5
rm -rf "$out" && mkdir -p "$out/people"
source "$(dirname "$0")/cli_lib.sh"
for p in Alvaro_Uribe Andre_Agassi Bill_Gates Colin_Powell David_Beckham; do
  mkdir -p "$out/people/$p"
  cp "$sample/train/$p/${p}_0001.jpg" "$sample/train/$p/${p}_0002.jpg" "$sample/train/$p/${p}_0003.jpg" \
    "$out/people/$p/"
done
g=$out/g.db
expect create 0 "$bin" gallery create --gallery "$g" --model "$model"
expect create_again 1 "$bin" gallery create --gallery "$g" --model "$model"
grep -q "exists already" "$out/create_again.txt" || fail "an existing gallery was not refused"
expect add 0 "$bin" gallery add --gallery "$g" --root "$out/people" --no-progress
grep -q "Enrolled 15 faces of 5 people from 15 photos (0 without a face)" "$out/add.txt" ||
  fail "enrolment counts"
# An enrolled photo finds its own person first, with the score of identical descriptors.
expect identify 0 "$bin" identify --gallery "$g" --k 2 --aggregation best \
  "$out/people/Bill_Gates/Bill_Gates_0002.jpg" --json "$out/identify.json"
grep -qE "Bill_Gates_0002.jpg +aligned crop +Bill_Gates +1\.0000" "$out/identify.txt" ||
  { cat "$out/identify.txt"; fail "identify did not find the enrolled face first"; }
grep -q '"subject": "Bill_Gates"' "$out/identify.json" || fail "identify JSON"
# By default a subject scores by its mean descriptor, below 1 for one of its faces.
expect identify_mean 0 "$bin" identify --gallery "$g" --k 1 "$out/people/Bill_Gates/Bill_Gates_0002.jpg"
grep -qE "Bill_Gates_0002.jpg +aligned crop +Bill_Gates +0\.[0-9]{4}" "$out/identify_mean.txt" ||
  { cat "$out/identify_mean.txt"; fail "mean aggregation"; }
expect add_one 0 "$bin" gallery add --gallery "$g" --subject Bill_Gates "$sample/train/Bill_Gates/Bill_Gates_0004.jpg"
grep -q "Added 1 faces to 'Bill_Gates'" "$out/add_one.txt" || fail "add to a subject"
expect rename 0 "$bin" gallery rename --gallery "$g" Bill_Gates William_Gates
expect remove 0 "$bin" gallery remove --gallery "$g" --subject Colin_Powell
expect list 0 "$bin" gallery list --gallery "$g"
grep -q "4 subjects, 13 faces" "$out/list.txt" || { cat "$out/list.txt"; fail "list counts"; }
grep -q "William_Gates .* 4 faces" "$out/list.txt" || fail "the rename or the added face"
expect identify_renamed 0 "$bin" identify --gallery "$g" --k 1 "$out/people/Bill_Gates/Bill_Gates_0002.jpg"
grep -q "William_Gates" "$out/identify_renamed.txt" || fail "identify after the rename"
expect export 0 "$bin" gallery export --gallery "$g" --out "$out/g.json" --embeddings
grep -q '"name": "William_Gates"' "$out/g.json" || fail "export"
# Refusals, each naming what is wrong.
expect wrong_model 1 "$bin" identify --gallery "$g" --model "$onnx" --input-size 64 \
  "$out/people/Bill_Gates/Bill_Gates_0002.jpg"
grep -q "holds descriptors of another model" "$out/wrong_model.txt" || fail "another model accepted"
head -c 700 "$sample/train/Bill_Gates/Bill_Gates_0005.jpg" >"$out/cut.jpg"
expect damaged 1 "$bin" identify --gallery "$g" "$out/cut.jpg"
grep -q "cut.jpg' is damaged" "$out/damaged.txt" || fail "a damaged photo was not named"
expect unknown_subject 1 "$bin" gallery remove --gallery "$g" --subject Nobody
grep -q "unknown subject 'Nobody'" "$out/unknown_subject.txt" || fail "unknown subject"
# Another model can take the gallery over from the stored crops.
expect reembed 0 "$bin" gallery reembed --gallery "$g" --model "$onnx" --input-size 64
grep -q "Re-embedded 13 faces: onnx" "$out/reembed.txt" || fail "reembed"
expect identify_reembedded 0 "$bin" identify --gallery "$g" --k 1 --aggregation best \
  "$out/people/Andre_Agassi/Andre_Agassi_0001.jpg"
grep -qE "Andre_Agassi +1\.0000" "$out/identify_reembedded.txt" || fail "identify after reembed"
echo "gallery OK"
