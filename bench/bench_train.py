#!/usr/bin/env python3
"""The same training step as bench/bench_train.cpp, in PyTorch eager Python (Debian's
python3-torch, the same 1.13 backend): backbone, ArcFace head of N classes, focal loss, SGD with
momentum. Prints one line of JSON. A comparison tool, never a dependency of the toolkit.

Run it as shipped, or at its best with jemalloc keeping freed memory:
  LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0
--bf16 runs the forward pass and the loss under torch.autocast("cpu", dtype=torch.bfloat16).
"""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

import os as _os, sys as _sys
_sys.path.insert(0, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "..", "python"))
import arcface_models as am  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="iresnet18")
    p.add_argument("--input-size", type=int, default=112)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--bf16", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = am.build_backbone(a.backbone, a.input_size, a.channels, 512)
    head = am.ArcMargin(512, a.classes)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.SGD([q for q in params if q.requires_grad], lr=0.01, momentum=0.9,
                          weight_decay=5e-4)
    x = torch.randn(a.batch_size, a.channels, a.input_size, a.input_size)
    y = torch.randint(a.classes, (a.batch_size,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = head(net(x), y).float()
            logp = F.log_softmax(logits, 1).gather(1, y.view(-1, 1)).squeeze(1)
            loss = -((1 - logp.exp()) ** 2 * logp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    net.train()
    for _ in range(a.warmup):
        step()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - t
    macs = forward_macs(net, a)
    gflop = 3 * 2 * (macs + 512 * a.classes) / 1e9
    ips = a.batch_size * a.steps / seconds
    preload = os.environ.get("LD_PRELOAD", "")
    print(json.dumps({"side": "Python eager", "backbone": a.backbone,
                      "input": f"{a.channels}x{a.input_size}x{a.input_size}",
                      "batch": a.batch_size, "classes": a.classes, "threads": torch.get_num_threads(),
                      "allocator": "jemalloc" if "jemalloc" in preload else "glibc malloc",
                      "precision": "bf16" if a.bf16 else "fp32",
                      "images_per_s": ips, "gflop_per_image": gflop, "gflops": ips * gflop}))


def forward_macs(net, a):
    """Convolution and linear MACs of one image, from forward hooks."""
    total = [0.0]

    def conv(m, inp, out):
        total[0] += out.numel() / out.size(0) * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, inp, out):
        total[0] += m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks += [m.register_forward_hook(linear) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, a.channels, a.input_size, a.input_size))
    for h in hooks:
        h.remove()
    net.train()
    return total[0]


if __name__ == "__main__":
    main()
