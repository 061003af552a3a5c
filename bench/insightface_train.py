#!/usr/bin/env python3
"""insightface's own arcface_torch trainer (the loop of its train_v2.py) on one of our train
lists, on the CPU. Their backbone, CombinedMarginLoss, PartialFC_V2, SGD, PolynomialLRWarmup,
seeded sampler and training transforms are imported from an exported copy of
recognition/arcface_torch (--insightface DIR); none of their code is kept here.
Writes OUT/backbone.pth (a plain state dict `arcface eval --backbone iresnet18` reads) and
OUT/history.json. See bench/insightface_train.md.
"""
import argparse
import functools
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
from PIL import Image
from torch import distributed
from torch.utils.data import DataLoader, Dataset


class TrainList(Dataset):
    """`relative/path.jpg label` lines (`arcface select`'s output) under root."""

    def __init__(self, list_path, root, transform, load_size, input_size, random_crop):
        self.samples = []
        with open(list_path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    path, label = line.rsplit(None, 1)
                    self.samples.append((os.path.join(root, path), int(label)))
        self.transform, self.load, self.size = transform, load_size, input_size
        self.random_crop = random_crop

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        with open(path, "rb") as f:  # decoded as their ImageFolder does (PIL, RGB)
            rgb = Image.open(f).convert("RGB")
        img = cv2.resize(  # resized as our loader does: cv::resize, INTER_AREA when shrinking
            np.asarray(rgb), (self.load, self.load),
            interpolation=cv2.INTER_AREA if rgb.height > self.load else cv2.INTER_LINEAR)
        extra = self.load - self.size
        if extra:
            y, x = (torch.randint(extra + 1, (2,)).tolist() if self.random_crop
                    else (extra // 2, extra // 2))
            img = img[y:y + self.size, x:x + self.size]
        return self.transform(Image.fromarray(img)), label


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--insightface", required=True,
                   help="exported recognition/arcface_torch folder (see the .md)")
    p.add_argument("--list", required=True, help="train list: `path label` lines")
    p.add_argument("--root", required=True, help="folder the list's paths are relative to")
    p.add_argument("--out", required=True, help="folder for backbone.pth and history.json")
    p.add_argument("--num-classes", type=int, default=0, help="0: largest label + 1")
    p.add_argument("--network", default="r18", help="their get_model name")
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--resize", type=int, default=0,
                   help="resize to this, then crop input-size (0: resize to input-size)")
    p.add_argument("--random-crop", action="store_true",
                   help="random crop after --resize (else the centre), as our recipe")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=int, default=0,
                   help="their single-node configs use 0; config/grown-ir18.yaml uses 1")
    p.add_argument("--margin-list", type=float, nargs=3, default=[1.0, 0.5, 0.0],
                   help="CombinedMarginLoss m1 m2 m3 (their default: ArcFace m=0.5)")
    p.add_argument("--scale", type=float, default=64.0, help="train_v2.py's fixed s")
    p.add_argument("--sample-rate", type=float, default=1.0, help="PartialFC_V2 sample rate")
    p.add_argument("--embedding-size", type=int, default=512)
    p.add_argument("--seed", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    p.add_argument("--print-freq", type=int, default=50)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke)")
    return p.parse_args()


def main():
    a = parse_args()
    sys.path.insert(0, os.path.abspath(a.insightface))
    from backbones import get_model
    from backbones.iresnet import IResNet
    from losses import CombinedMarginLoss
    from lr_scheduler import PolynomialLRWarmup
    from partial_fc_v2 import PartialFC_V2
    from torchvision import transforms
    from utils.utils_distributed_sampler import DistributedSampler, setup_seed, worker_init_fn
    from utils.utils_logging import AverageMeter

    torch.set_num_threads(a.threads)
    if not torch.cuda.is_available():
        # PartialFC_V2.forward allocates its all_gather buffers with .cuda(), which raises on a
        # CPU-only build: make it the identity (the one change to their code path).
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
    # PartialFC_V2 asserts an initialised process group; a single-process gloo one.
    pg_dir = tempfile.mkdtemp(prefix="insightface_pg_")
    distributed.init_process_group("gloo", init_method=f"file://{pg_dir}/init", rank=0,
                                   world_size=1)
    setup_seed(seed=a.seed, cuda_deterministic=False)

    # dataset.py's image-folder transform (that module needs mxnet, so it is rebuilt here).
    transform = transforms.Compose([
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
    ])
    data = TrainList(a.list, a.root, transform, a.resize or a.input_size, a.input_size,
                     a.random_crop)
    num_classes = a.num_classes or 1 + max(label for _, label in data.samples)
    init_fn = (functools.partial(worker_init_fn, num_workers=a.workers, rank=0, seed=a.seed)
               if a.workers else None)
    loader = DataLoader(data, batch_size=a.batch_size, num_workers=a.workers, drop_last=True,
                        sampler=DistributedSampler(data, num_replicas=1, rank=0, shuffle=True,
                                                   seed=a.seed),
                        worker_init_fn=init_fn)

    # Their iresnet sizes fc for a 7x7 map (112 input); the map is input/16 on a side.
    assert a.input_size % 16 == 0, "iresnet needs an input size divisible by 16"
    IResNet.fc_scale = (a.input_size // 16) ** 2
    backbone = get_model(a.network, dropout=0.0, fp16=False, num_features=a.embedding_size)
    backbone.train()
    margin_loss = CombinedMarginLoss(a.scale, *a.margin_list, 0)
    pfc = PartialFC_V2(margin_loss, a.embedding_size, num_classes, a.sample_rate, False)
    pfc.train()
    opt = torch.optim.SGD(
        params=[{"params": backbone.parameters()}, {"params": pfc.parameters()}],
        lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    steps_per_epoch = len(data) // a.batch_size
    total_step = steps_per_epoch * a.epochs
    scheduler = PolynomialLRWarmup(optimizer=opt, warmup_iters=steps_per_epoch * a.warmup_epochs,
                                   total_iters=total_step)

    os.makedirs(a.out, exist_ok=True)
    commit_file = os.path.join(a.insightface, "COMMIT")
    run = {
        "args": vars(a), "num_images": len(data), "num_classes": num_classes,
        "steps_per_epoch": steps_per_epoch, "total_steps": total_step,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        "malloc_conf": os.environ.get("MALLOC_CONF", ""),
        "insightface_commit": (open(commit_file).read().strip()
                               if os.path.exists(commit_file) else None),
        "epochs": [],
    }
    print(f"{len(data)} images, {num_classes} classes, {steps_per_epoch} steps/epoch, "
          f"{total_step} steps, input {a.input_size} (load {a.resize or a.input_size}, "
          f"{'random' if a.random_crop else 'centre'} crop), {torch.get_num_threads()} threads",
          flush=True)

    step, start = 0, time.perf_counter()
    for epoch in range(a.epochs):
        loader.sampler.set_epoch(epoch)
        loss_am, images, t0 = AverageMeter(), 0, time.perf_counter()
        t_print, images_print = t0, 0
        for img, labels in loader:
            step += 1
            loss = pfc(backbone(img), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(backbone.parameters(), 5)
            opt.step()
            opt.zero_grad()
            scheduler.step()
            loss_am.update(loss.item(), 1)
            images += img.size(0)
            if step % a.print_freq == 0 or step == a.max_steps:
                now = time.perf_counter()
                print(f"epoch {epoch + 1} step {step}/{total_step} loss {loss_am.avg:.4f} "
                      f"lr {scheduler.get_last_lr()[0]:.5f} "
                      f"{(images - images_print) / (now - t_print):.2f} img/s", flush=True)
                t_print, images_print = now, images
            if step == a.max_steps:
                break
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "steps": step, "loss": loss_am.avg,
                  "lr": scheduler.get_last_lr()[0], "images": images, "seconds": seconds,
                  "images_per_s": images / seconds, "wall_s": time.perf_counter() - start}
        run["epochs"].append(record)
        print(json.dumps(record), flush=True)
        # Saved every epoch, as train_v2.py saves model.pt; the names are ours (no mapping).
        torch.save(backbone.state_dict(), os.path.join(a.out, "backbone.pth"))
        with open(os.path.join(a.out, "history.json"), "w") as f:
            json.dump(run, f, indent=1)
        if step == a.max_steps:
            break
    distributed.destroy_process_group()
    print(f"done: {step} steps in {time.perf_counter() - start:.1f} s; "
          f"{os.path.join(a.out, 'backbone.pth')}", flush=True)


if __name__ == "__main__":
    main()
