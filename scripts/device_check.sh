#!/usr/bin/env bash
# One run on a machine with an NVIDIA GPU, a PyTorch wheel (its libtorch) and no other packages:
# the core build against the wheel and .deps/ (scripts/device_deps.sh, made beforehand where
# apt-get works), the CUDA tests, training throughput on the GPU, and the sample's pipeline:
# packed into a .rec, trained on the GPU (auto precision, then fp16 with loss scaling),
# evaluated on the CPU. Results go to $OUT (or out/device): gpu.txt, configure.txt, build.txt,
# cuda_tests.txt, bench_train.jsonl, bench_loader.txt, pipeline/.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-out/device}"
mkdir -p "$out"
[ -d .deps ] || { echo "no .deps/: run scripts/device_deps.sh first (where apt-get works)"; exit 1; }
. scripts/device_deps.sh --env
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu.txt" 2>&1
torch_dir="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch"
# Debian's packages in .deps use the C++11 ABI; a wheel built with the old one cannot link them.
python3 -c 'import torch, sys; sys.exit(0 if torch.compiled_with_cxx11_abi() else 1)' ||
  { echo "this PyTorch uses the pre-C++11 ABI: .deps (Debian) cannot link with it"; exit 1; }
command -v nvcc >/dev/null || echo "no nvcc on the PATH: a CUDA libtorch's CMake needs the toolkit"
python3 -c 'import torch; print(torch.__version__, torch.version.cuda)' >>"$out/gpu.txt"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build-cuda "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$torch_dir" \
  -DARCFACE_WITH_OPENCV=OFF -DARCFACE_WITH_DLIB=OFF -DARCFACE_WITH_PLPLOT=OFF \
  -DARCFACE_WITH_SERVICE=OFF -DARCFACE_WITH_ONEDNN=OFF -DARCFACE_WITH_JEMALLOC=OFF \
  >"$out/configure.txt" 2>&1 || { tail -40 "$out/configure.txt"; exit 1; }
cmake --build build-cuda -j"$(nproc)" >"$out/build.txt" 2>&1 || { grep -m20 -A5 error "$out/build.txt"; exit 1; }
ctest --test-dir build-cuda -R '^Cuda\.' -FA model --output-on-failure >"$out/cuda_tests.txt" 2>&1
tail -5 "$out/cuda_tests.txt"
cmake --build build-cuda --target bench_train bench_loader -j"$(nproc)" >>"$out/build.txt" 2>&1
for net in "iresnet18 112 256" "iresnet50 112 256" "mobilefacenet 112 256"; do
  set -- $net
  build-cuda/bench/bench_train --device cuda --backbone "$1" --input-size "$2" \
    --batch-size "$3" --precision bf16 --steps 20 --warmup 3 | tee -a "$out/bench_train.jsonl"
done
for extra in "--precision fp16" "--precision bf16 --channels-last"; do
  build-cuda/bench/bench_train --device cuda --backbone iresnet18 --input-size 112 \
    --batch-size 256 $extra --steps 20 --warmup 3 | tee -a "$out/bench_train.jsonl"
done

# The whole pipeline on the sample: a .rec trained on the GPU, its model judged on the CPU.
p="$out/pipeline"
mkdir -p "$p"
build-cuda/arcface select --root data/sample/train --classes 24 --max-per-class 12 \
  --out "$p/train_list.txt" >"$p/log.txt" 2>&1 || { tail -5 "$p/log.txt"; exit 1; }
build-cuda/arcface pack --root data/sample/train --list "$p/train_list.txt" \
  --out "$p/train.rec" >>"$p/log.txt" 2>&1 || { tail -5 "$p/log.txt"; exit 1; }
# Batches of 32: the 283 images make 8 a epoch, enough for several workers at once.
build-cuda/bench/bench_loader --rec "$p/train.rec" --size 112 --batch-size 32 \
  --workers 1,2,4,8 --batches 200 | tee "$out/bench_loader.txt"
for precision in auto fp16; do
  build-cuda/arcface train --config config/demo.yaml --no-progress --set training.device=cuda \
    --set training.precision=$precision --set data.train_rec="$p/train.rec" \
    --set data.train_list= --set data.train_root= --set paths.checkpoints_path="$p/$precision" \
    >>"$p/log.txt" 2>&1 ||
    { tail -20 "$p/log.txt"; exit 1; }
  build-cuda/arcface eval --model "$p/$precision/last.pt" --device cpu --root data/sample/lfw \
    --pairs data/sample/pairs.txt --out "$p/$precision-eval" --no-progress 2>&1 |
    tee -a "$p/log.txt" | grep -E '10-fold|AUC|error' || echo "eval of $precision failed"
done
grep -h 'device cuda\|Loss scale\|Throughput' "$p/log.txt"
