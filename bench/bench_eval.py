#!/usr/bin/env python3
"""Evaluation throughput in PyTorch eager Python (Debian's python3-torch, the same 1.13 backend),
on the same checkpoint and images as bench/bench_eval.cpp. Prints one line of JSON. A comparison
tool, never a dependency of the toolkit.

  --mode testpy  the way seed 000's test.py does it: each distinct image once, read with
                 cv2.imread, stacked with its mirror image, batches of 10 images (20 inputs),
                 autograd left on, the default allocator.
  --mode best    the peer at its best: inference mode, batches of 64 images (128 inputs);
                 run it with jemalloc keeping freed memory (LD_PRELOAD, see bench/run.sh).
  --bf16         the network under torch.autocast("cpu", dtype=torch.bfloat16).
"""
import argparse
import json
import os
import resource
import sys
import time

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import arcface_models as am  # noqa: E402
from bench_train import forward_macs  # noqa: E402


def distinct_images(pairs_file):
    """The distinct images of an official LFW pairs.txt, in order of first appearance."""
    seen, out = set(), []
    with open(pairs_file) as f:
        next(f)
        for line in f:
            p = line.split()
            if len(p) == 3:
                names = [f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[0]}/{p[0]}_{int(p[2]):04d}.jpg"]
            else:
                names = [f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[2]}/{p[2]}_{int(p[3]):04d}.jpg"]
            for n in names:
                if n not in seen:
                    seen.add(n)
                    out.append(n)
    return out


def load(path, pre):
    """One image as the checkpoint's preprocessing says: [C, H, W] float32."""
    gray = pre["color"] == "gray"
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    size = pre["resize"] or pre["input_size"]
    if img.shape[0] != size or img.shape[1] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    if gray:
        img = img[:, :, None]
    elif pre["color"] == "rgb":
        img = img[:, :, ::-1]
    o = (size - pre["input_size"]) // 2
    img = img[o:o + pre["input_size"], o:o + pre["input_size"]]
    x = img.astype(np.float32) / 255.0
    x = (x - np.array(pre["mean"], np.float32)) / np.array(pre["std"], np.float32)
    return x.transpose(2, 0, 1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--root", default="../shared/data/lfw/lfw-align-112")
    p.add_argument("--pairs", default="../shared/data/lfw/pairs.txt")
    p.add_argument("--images", type=int, default=0)
    p.add_argument("--mode", choices=["testpy", "best"], default="testpy")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, ck = am.load_checkpoint_backbone(a.model)
    pre = ck["preprocess"]
    names = distinct_images(a.pairs)
    if a.images:
        names = names[:a.images]
    batch = 10 if a.mode == "testpy" else 64
    o = ck["backbone_options"]
    macs = forward_macs(model, argparse.Namespace(channels=o["channels"], input_size=o["input_size"]))
    model.eval()

    def run(names):
        decode = network = 0.0
        features = []
        for i in range(0, len(names), batch):
            t = time.perf_counter()
            imgs = np.stack([load(os.path.join(a.root, n), pre) for n in names[i:i + batch]])
            both = np.concatenate([imgs, imgs[:, :, :, ::-1]])
            data = torch.from_numpy(np.ascontiguousarray(both))
            decode += time.perf_counter() - t
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                if a.mode == "testpy":
                    out = model(data).float().data.numpy()
                else:
                    with torch.inference_mode():
                        out = model(data).float().numpy()
            n = len(imgs)
            f = np.hstack([out[:n], out[n:]])
            features.append(f / np.linalg.norm(f, axis=1, keepdims=True))
            network += time.perf_counter() - t
        return decode, network

    run(names[:batch])  # warm-up
    start = time.perf_counter()
    decode, network = run(names)
    seconds = time.perf_counter() - start
    gflop_per_image = 2 * 2 * macs / 1e9
    print(json.dumps({
        "side": f"PyTorch eager ({a.mode})",
        "backbone": ck["backbone"], "images": len(names), "batch": batch,
        "threads": a.threads, "precision": "bf16" if a.bf16 else "fp32", "allocator": "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "glibc",
        "seconds": seconds, "images_per_s": len(names) / seconds,
        "network_seconds": network, "decode_seconds": decode,
        "gflop_per_image": gflop_per_image,
        "network_gflops": len(names) * gflop_per_image / network,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
