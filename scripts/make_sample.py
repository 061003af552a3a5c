#!/usr/bin/env python3
"""Builds data/sample/ from the full LFW crops: a small identity-per-folder training set and a
10-fold pairs list of other people, for the demo and the tests.

    python3 scripts/make_sample.py ../shared/data/lfw data/sample
"""
import os
import shutil
import sys

TRAIN_PEOPLE = 24      # people with >= 10 images, in name order, not in the sampled pairs
TRAIN_CAP = 12         # images copied per training person
PAIRS_PER_CLASS = 6    # same and different pairs taken from each official fold


def main(lfw, out):
    folds, per = (int(v) for v in open(os.path.join(lfw, "pairs.txt")).readline().split())
    lines = open(os.path.join(lfw, "pairs.txt")).read().splitlines()[1:]
    picked = []
    for f in range(folds):
        block = lines[f * 2 * per:(f + 1) * 2 * per]
        picked += block[:PAIRS_PER_CLASS] + block[per:per + PAIRS_PER_CLASS]
    eval_people, eval_images = set(), set()
    for line in picked:
        p = line.split("\t")
        named = [(p[0], p[1]), (p[0], p[2])] if len(p) == 3 else [(p[0], p[1]), (p[2], p[3])]
        for name, n in named:
            eval_people.add(name)
            eval_images.add(f"{name}/{name}_{int(n):04d}.jpg")

    root = os.path.join(lfw, "lfw-align-112")
    train = []
    for name in sorted(os.listdir(root)):
        images = sorted(os.listdir(os.path.join(root, name)))
        if len(images) >= 10 and name not in eval_people:
            train.append((name, images[:TRAIN_CAP]))
        if len(train) == TRAIN_PEOPLE:
            break

    shutil.rmtree(out, ignore_errors=True)
    for name, images in train:
        os.makedirs(os.path.join(out, "train", name))
        for image in images:
            shutil.copy(os.path.join(root, name, image), os.path.join(out, "train", name, image))
    for rel in sorted(eval_images):
        os.makedirs(os.path.join(out, "lfw", os.path.dirname(rel)), exist_ok=True)
        shutil.copy(os.path.join(root, rel), os.path.join(out, "lfw", rel))
    with open(os.path.join(out, "pairs.txt"), "w") as f:
        f.write(f"{folds}\t{PAIRS_PER_CLASS}\n")
        f.write("\n".join(picked) + "\n")
    print(f"train: {len(train)} people, {sum(len(i) for _, i in train)} images; "
          f"eval: {len(picked)} pairs, {len(eval_images)} images")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
