#!/usr/bin/env python3
"""Writes tests/data/tiny_embedder.onnx and tiny_embedder.json: a tiny random-weight
face-embedding network (64x64 RGB in, 32-D out, fixed spatial size) and the embedding Python
PyTorch computes for a synthetic test image, the reference for OpenCV's ONNX path in C++.

    python3 tests/data/make_onnx_fixture.py tests/data
"""
import json
import os
import sys

import torch
from torch import nn


def pattern(size):
    """The test image, RGB uint8 [size, size, 3]; C++ builds the same pixels."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return torch.stack([(x * 3 + y * 5 + c * 70) % 256 for c in range(3)], dim=-1).to(torch.uint8)


def main(out):
    torch.manual_seed(11)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.PReLU(8),
                        nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.PReLU(16),
                        nn.AvgPool2d(4), nn.Flatten(), nn.Linear(256, 32))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    net.eval()
    x = (pattern(64).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        e = net(x.unsqueeze(0))[0]
        flipped = net(x.flip(2).unsqueeze(0))[0]
    torch.onnx.export(net, x.unsqueeze(0), os.path.join(out, "tiny_embedder.onnx"),
                      input_names=["input"], output_names=["embedding"],
                      dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=11)
    with open(os.path.join(out, "tiny_embedder.json"), "w") as f:
        json.dump({"input_size": 64, "color": "rgb", "mean": 0.5, "std": 0.5,
                   "embedding": e.tolist(), "embedding_of_mirror": flipped.tolist()}, f)


if __name__ == "__main__":
    main(sys.argv[1])
