#!/usr/bin/env python3
"""Exports the backbone of an arcface checkpoint to ONNX, for runtimes that take ONNX (and for
`arcface eval --model x.onnx`). Needs Python PyTorch (Debian: python3-torch); the toolkit
itself never does.

    python3 python/export_onnx.py runs/x/best.pt runs/x/best.onnx

The model takes float input [N, C, H, W] normalised as the checkpoint's `preprocess` says and
returns raw (not normalised) embeddings [N, D]. The matching eval options are printed.
"""
import sys

import torch

import arcface_models as am


def main(checkpoint, out):
    model, ck = am.load_checkpoint_backbone(checkpoint)
    p = ck["preprocess"]
    c = 1 if p["color"] == "gray" else 3
    x = torch.zeros(1, c, p["input_size"], p["input_size"])
    torch.onnx.export(model, x, out, input_names=["input"], output_names=["embedding"],
                      dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=11)
    print(f"wrote {out}; evaluate it with: --input-size {p['input_size']} --resize {p['resize']} "
          f"--color {p['color']} --mean {' '.join(str(v) for v in p['mean'])} "
          f"--std {' '.join(str(v) for v in p['std'])}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
