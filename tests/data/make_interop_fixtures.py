#!/usr/bin/env python3
"""Writes the PyTorch interop fixtures: weights saved by Python the ways users bring them, and
the embeddings Python PyTorch computes with them for three real LFW crops of data/sample/lfw.

  interop_ir18_seed002.pth   IR-ResNet18, seed 002's checkpoint dictionary (zip format)
  interop_ir18_plain.pth     the same weights as a plain state dict, DataParallel names
                             ("module." prefix), legacy torch.save format
  interop_resnet_face18.pth  seed 000's resnet_face18 (1x128x128), plain state dict (zip)
  interop_inception_resnet_v1.pt  facenet-pytorch's InceptionResnetV1 (3x160x160) with its
                             `logits` classifier, plain state dict, legacy format
  interop_expected.json      per file: backbone, preprocessing, images, unit embeddings

The networks are python/arcface_models.py's, with random weights. Every weight tensor is a view
(offset and row stride) into one of a few small random storages, scaled for its fan-in;
torch.save writes each storage once, so the files are small, and reading them must honour
storage offsets and strides.

    /usr/bin/python3 tests/data/make_interop_fixtures.py
"""
import collections
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "python"))
import arcface_models as am  # noqa: E402

IMAGES = ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "AJ_Lamas/AJ_Lamas_0001.jpg",
          "Aaron_Guiel/Aaron_Guiel_0001.jpg"]


class Storages:
    """Random storages, one per kind of tensor, that weights are carved from as views."""

    def __init__(self, generator):
        self.g = generator
        self.pools = {}

    def view(self, kind, shape, scale, shift):
        rows, fan = shape[0], int(np.prod(shape[1:])) if len(shape) > 1 else 1
        step = 7 if len(shape) > 1 else 1
        offset = int(torch.randint(0, 500, (1,), generator=self.g))
        need = offset + (rows - 1) * step + fan
        key = (kind, scale, shift)
        if key not in self.pools or self.pools[key].numel() < need:
            size = max(need, 4096)
            self.pools[key] = torch.randn(size, generator=self.g) * scale + shift
        inner = [int(np.prod(shape[i + 1:])) for i in range(1, len(shape))]
        strides = (step, *inner)
        return self.pools[key].as_strided(shape, strides, offset)


def random_state(model, generator):
    storages = Storages(generator)
    state = collections.OrderedDict()
    for name, t in model.state_dict().items():
        shape = tuple(t.shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[name] = torch.tensor(100)
        elif leaf == "running_var":
            state[name] = storages.view("var", shape, 0.1, 1.0)  # positive: 1 +- 10 sigma
        elif leaf == "running_mean":
            state[name] = storages.view("mean", shape, 0.1, 0.0)
        elif len(shape) == 1 and "prelu" in name:
            state[name] = storages.view("prelu", shape, 0.05, 0.25)
        elif len(shape) == 1 and leaf == "weight":
            state[name] = storages.view("bn", shape, 0.1, 1.0)
        elif len(shape) == 1:
            state[name] = storages.view("bias", shape, 0.05, 0.0)
        else:
            fan = int(np.prod(shape[1:]))
            state[name] = storages.view(f"w{fan}", shape, math.sqrt(2.0 / fan), 0.0)
    return state


def embeddings(model, state, size, gray, mean, std):
    model.load_state_dict(state, strict=True)
    model.eval()
    x = torch.stack([am.preprocess_image(os.path.join(ROOT, "data", "sample", "lfw", p), size, gray, mean, std)
                     for p in IMAGES])
    with torch.no_grad():
        return torch.nn.functional.normalize(model(x)).tolist()


def main():
    g = torch.Generator().manual_seed(2)
    expected = {}

    ir18 = am.build_backbone("iresnet18", 112, 3, 512)
    state = random_state(ir18, g)
    std = 128.0 / 255.0  # facenet-pytorch's fixed_image_standardization, as seed 002
    emb = embeddings(ir18, state, 112, False, 0.5, std)
    head = Storages(g).view("head", (10, 512), 0.05, 0.0)
    torch.save({"backbone": "ir_resnet18", "backbone_state_dict": state,
                "arcface_state_dict": collections.OrderedDict(weight=head),
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9,
                                                                        "params": [0, 1]}]},
                "scheduler_state_dict": {"last_epoch": 24}, "epoch": 24, "num_classes": 10},
               os.path.join(HERE, "interop_ir18_seed002.pth"))
    plain = collections.OrderedDict(("module." + k, v) for k, v in state.items())
    torch.save(plain, os.path.join(HERE, "interop_ir18_plain.pth"), _use_new_zipfile_serialization=False)
    ir = {"images": IMAGES, "input_size": 112, "color": "rgb", "mean": 0.5, "std": std, "embeddings": emb}
    expected["interop_ir18_seed002.pth"] = dict(ir, backbone="")
    expected["interop_ir18_plain.pth"] = dict(ir, backbone="iresnet18")

    rf18 = am.build_backbone("resnet_face18", 128, 1, 512)
    state = random_state(rf18, g)
    emb = embeddings(rf18, state, 128, True, 0.5, 0.5)
    torch.save(state, os.path.join(HERE, "interop_resnet_face18.pth"))
    expected["interop_resnet_face18.pth"] = {"images": IMAGES, "input_size": 128, "color": "gray",
                                             "mean": 0.5, "std": 0.5, "embeddings": emb,
                                             "backbone": "resnet_face18"}
    # facenet-pytorch's InceptionResnetV1 at its 160x160, with the `logits` classifier its
    # published weights carry, in the legacy format.
    irv1 = am.InceptionResnetV1(num_classes=10)
    state = random_state(irv1, g)
    emb = embeddings(irv1, state, 160, False, 0.5, std)
    torch.save(state, os.path.join(HERE, "interop_inception_resnet_v1.pt"), _use_new_zipfile_serialization=False)
    expected["interop_inception_resnet_v1.pt"] = {"images": IMAGES, "input_size": 160, "color": "rgb",
                                                  "mean": 0.5, "std": std, "embeddings": emb,
                                                  "backbone": "inception_resnet_v1"}
    with open(os.path.join(HERE, "interop_expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
