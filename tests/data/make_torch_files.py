#!/usr/bin/env python3
"""Writes tests/data/torch_file_{legacy,zip}.pt: the same small object saved by torch.save in
the legacy format and in the zip format. Its values are simple functions of their position,
so the C++ test checks them without a reference file.

    /usr/bin/python3 tests/data/make_torch_files.py tests/data
"""
import collections
import os
import sys

import torch


def content():
    state = collections.OrderedDict()
    state["conv.weight"] = torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 8
    state["conv.bias"] = torch.tensor([-1.5, 2.25])
    state["bn.num_batches_tracked"] = torch.tensor(7)
    # A transposed view shares its storage with the tensor above.
    base = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    state["fc.weight"] = base.t()
    state["fc.base"] = base
    state["half"] = torch.tensor([0.5, -2.0], dtype=torch.float16)
    state._metadata = {"": {"version": 1}}
    return {
        "state_dict": state,
        "epoch": 12,
        "negative": -300000,
        "lr": 0.1,
        "name": "ir18",
        "flags": [True, False, None],
        "shape": (112, 112),
        "param": torch.nn.Parameter(torch.ones(3)),
    }


def main(out):
    value = content()
    torch.save(value, os.path.join(out, "torch_file_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(value, os.path.join(out, "torch_file_zip.pt"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__))
