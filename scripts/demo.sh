#!/usr/bin/env bash
# The main job on the shipped sample: set up, select a balanced subset, train a few epochs,
# evaluate on a 10-fold LFW pair list and write the report; then a gallery of the sample's people.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=runs/demo
mkdir -p "$out"
build/arcface select --root data/sample/train --classes 24 --max-per-class 12 --out "$out/train_list.txt"
build/arcface train --config config/demo.yaml
build/arcface eval --model "$out/best.pt" --root data/sample/lfw --pairs data/sample/pairs.txt --out "$out/eval"
a=data/sample/lfw/Abel_Pacheco/Abel_Pacheco_0001.jpg
b=data/sample/lfw/Abel_Pacheco/Abel_Pacheco_0004.jpg
c=data/sample/lfw/Akhmed_Zakayev/Akhmed_Zakayev_0001.jpg
build/arcface verify --model "$out/best.pt" "$a" "$b" --report "$out/eval/metrics.json"
build/arcface verify --model "$out/best.pt" "$a" "$c" --report "$out/eval/metrics.json"
# 1:N: enrol the first photo of every sample person with two or more, then find one of them.
rm -rf "$out/people" "$out/people.db"
for d in data/sample/lfw/*/; do
  photos=("$d"*.jpg)
  if [ ${#photos[@]} -ge 2 ]; then
    mkdir -p "$out/people/$(basename "$d")" && cp "${photos[0]}" "$out/people/$(basename "$d")/"
  fi
done
build/arcface gallery create --gallery "$out/people.db" --model "$out/best.pt"
build/arcface gallery add --gallery "$out/people.db" --root "$out/people" --no-progress
build/arcface identify --gallery "$out/people.db" --k 3 "$b"
echo "Report: $out/eval/report.md"
echo "The gallery on a web page: build/arcface serve --gallery $out/people.db, then open http://127.0.0.1:8080/"
