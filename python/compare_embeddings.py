#!/usr/bin/env python3
"""Checks that Python PyTorch and `arcface embed` see a model the same way: loads a state dict
(`arcface export`, facenet-pytorch, insightface, seed 000) strictly into python/arcface_models.py's
network, embeds the images `arcface embed` wrote, and prints the largest difference between the
unit embeddings. Needs Python PyTorch and OpenCV (Debian: python3-torch, python3-opencv); the
toolkit itself never does.

    arcface embed --model irv1.pth --backbone inception_resnet_v1 --input-size 96 \\
        --mean 0.5 --std 0.50196 --root lfw/ --list some_images.txt --out emb.npy
    python3 python/compare_embeddings.py irv1.pth emb.npy --backbone inception_resnet_v1 \\
        --input-size 96 --mean 0.5 --std 0.50196 --root lfw/

A facenet-pytorch `logits` classifier in the file is dropped, as `arcface` drops it.
"""
import argparse
import os
import sys

import numpy as np
import torch

import arcface_models as am


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", help="a plain PyTorch state dict (.pt/.pth)")
    ap.add_argument("embeddings", help="the .npy `arcface embed` wrote (its .paths.txt beside it)")
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--input-size", type=int, default=112)
    ap.add_argument("--gray", action="store_true")
    ap.add_argument("--mean", type=float, default=0.5)
    ap.add_argument("--std", type=float, default=0.5)
    ap.add_argument("--root", default="", help="the --root given to arcface embed")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()

    state = torch.load(a.weights, map_location="cpu")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()
             if not k.startswith("logits.")}
    model = am.build_backbone(a.backbone, a.input_size, 1 if a.gray else 3)
    model.load_state_dict(state, strict=True)
    model.eval()

    expected = np.load(a.embeddings)
    with open(a.embeddings + ".paths.txt") as f:
        paths = [line.rstrip("\n") for line in f if line.strip()]
    if len(paths) != len(expected):
        sys.exit(f"error: {len(paths)} paths for {len(expected)} embeddings in '{a.embeddings}'")
    worst = 0.0
    with torch.no_grad():
        for start in range(0, len(paths), 32):
            batch = paths[start:start + 32]
            x = torch.stack([am.preprocess_image(os.path.join(a.root, p), a.input_size, a.gray,
                                                 a.mean, a.std) for p in batch])
            ours = torch.nn.functional.normalize(model(x)).numpy()
            worst = max(worst, float(np.abs(ours - expected[start:start + len(batch)]).max()))
    ok = worst <= a.tolerance
    print(f"{len(paths)} images, largest |Python - arcface| over unit embeddings: {worst:.2e} "
          f"({'within' if ok else 'above'} {a.tolerance:g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
