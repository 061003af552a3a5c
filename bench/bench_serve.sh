#!/usr/bin/env bash
# `arcface serve` under load: wrk keeps 32 connections busy searching with a raw LFW photo
# (detect, align, describe, search) for 60 s, once with the batcher and once without
# (--max-batch 1), and prints requests/s, latency percentiles, errors and the server's RSS at
# the start, middle and end. The gallery holds every person of ../shared/data/lfw/raw.
# INPUT=crops sends an aligned crop to a service without a detector instead: the network and
# the search alone.
#   [INPUT=photos|crops] bench/bench_serve.sh [MODEL.onnx] [SECONDS]
# An ONNX model's flags (MODEL_FLAGS) default to the pretrained recogniser's (x - 127.5) / 128;
# our checkpoints describe their own input.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-../shared/data/models/fr_feature/fr_feature.onnx}
seconds=${2:-60}
model_flags=()
[[ $model == *.onnx ]] && model_flags=(${MODEL_FLAGS:---mean 0.49804 --std 0.50196})
raw=../shared/data/lfw/raw
photo=$raw/Hugo_Chavez/Hugo_Chavez_0033.jpg
detector=(--detector dlib)
if [ "${INPUT:-photos}" = crops ]; then
  photo=../shared/data/lfw/lfw-align-112/Hugo_Chavez/Hugo_Chavez_0033.jpg
  detector=()
fi
command -v wrk >/dev/null || { echo "bench_serve needs wrk (apt-get install wrk)" >&2; exit 1; }
cmake --build build --target arcface_cli -j"$(nproc)" >/dev/null
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
bin=build/arcface

$bin gallery create --gallery "$out/g.db" --model "$model" ${model_flags[@]+"${model_flags[@]}"} >/dev/null
mkdir "$out/people"
for d in "$raw"/*/; do
  person=$(basename "$d")
  [ -z "${detector[*]}" ] && d=$(dirname "$photo")/../$person
  ln -s "$(realpath "$d")" "$out/people/$person"
done
$bin gallery add --gallery "$out/g.db" --root "$out/people" ${detector[@]+"${detector[@]}"} --no-progress
cat >"$out/search.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
local f = io.open("$photo", "rb")
wrk.body = f:read("*all")
f:close()
LUA

rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
printf "\n%-10s %9s %8s %8s %8s %8s %8s %8s  %s\n" batcher "req/s" "p50 ms" "p90 ms" "p99 ms" \
  errors "non-2xx" "batch" "RSS MiB start/mid/end"
for max_batch in 16 1; do
  $bin serve --gallery "$out/g.db" ${detector[@]+"${detector[@]}"} --port 0 --max-batch $max_batch \
    >"$out/serve.log" 2>&1 &
  server=$!
  until grep -q "http://" "$out/serve.log"; do sleep 0.2; done
  url=$(grep -o 'http://[0-9.:]*' "$out/serve.log")
  curl -s -o /dev/null --data-binary @"$photo" -H "Content-Type: image/jpeg" "$url/v1/search"
  start=$(rss $server)
  (sleep $((seconds / 2)); rss $server >"$out/mid") &
  wrk -t2 -c32 -d"${seconds}s" --timeout 30s --latency -s "$out/search.lua" "$url/v1/search" \
    >"$out/wrk.txt"
  end=$(rss $server)
  batches=$(curl -s "$url/metrics" | awk '/^arcface_batch_size_sum/ {s=$2} /^arcface_batch_size_count/ {c=$2} END {printf "%.1f", s / c}')
  kill -TERM $server && wait $server || true
  w=$out/wrk.txt
  ms() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) x=v/1000; else if (v ~ /ms$/) x=v+0; else x=v*1000; printf "%.0f", x}' "$w"; }
  errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$w")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$w")
  printf "%-10s %9s %8s %8s %8s %8s %8s %8s  %s/%s/%s\n" \
    "$([ $max_batch = 1 ] && echo off || echo "on ($max_batch)")" \
    "$(awk '/Requests\/sec/ {print $2}' "$w")" "$(ms 50%)" "$(ms 90%)" "$(ms 99%)" \
    "${errors:-0}" "${non2xx:-0}" "$batches" "$start" "$(cat "$out/mid")" "$end"
done
