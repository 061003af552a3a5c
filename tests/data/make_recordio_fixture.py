"""Writes tests/data/recordio/: a small insightface training set (train.rec, train.idx,
property) made from data/sample/train, written from the format's description (MXNet RecordIO
records of a 24-byte header + JPEG; record 0 and identity records as arcface_torch reads them),
and expected.json listing what each image record holds. One image carries the RecordIO magic
number at a 4-byte boundary after its JPEG data, so its record is split as MXNet's writer splits.

usage: python3 tests/data/make_recordio_fixture.py
       python3 tests/data/make_recordio_fixture.py --read DIR/train.rec
The second form reads a .rec the same way (record 0's ranges, split records, identity records)
and prints "N images, C classes, labels per class ...": an independent check of a packed file.
"""
import json
import os
import struct
import sys

MAGIC = 0xCED7230A


def read(rec_path):
    """(key, label, image bytes) of every image record, and the class ranges."""
    data = open(rec_path, "rb").read()
    idx = {}
    for line in open(os.path.splitext(rec_path)[0] + ".idx"):
        key, offset = line.split()
        idx[int(key)] = int(offset)

    def payload(at):
        out = b""
        while True:
            magic, word = struct.unpack_from("<II", data, at)
            assert magic == MAGIC, f"bad magic at {at}"
            flag, length = word >> 29, word & ((1 << 29) - 1)
            out += data[at + 8:at + 8 + length]
            at += 8 + (length + 3) // 4 * 4
            if flag in (0, 3):
                return out
            out += struct.pack("<I", MAGIC)

    def header(p):
        flag, label, _, _ = struct.unpack_from("<IfQQ", p)
        labels = struct.unpack_from(f"<{flag}f", p, 24) if flag else (label,)
        return labels, p[24 + 4 * flag:]

    (id_start, id_end), _ = header(payload(idx[0]))
    images = [(k, *header(payload(idx[k]))) for k in range(1, int(id_start))]
    ranges = [header(payload(idx[k]))[0] for k in range(int(id_start), int(id_end))]
    return [(k, int(labels[0]), img) for k, labels, img in images], ranges


if len(sys.argv) == 3 and sys.argv[1] == "--read":
    images, ranges = read(sys.argv[2])
    counts = {}
    for _, label, _ in images:
        counts[label] = counts.get(label, 0) + 1
    for c, (begin, end) in enumerate(ranges):
        assert counts.get(c, 0) == int(end) - int(begin), f"class {c}: range {begin}..{end}"
        assert all(images[k - 1][1] == c for k in range(int(begin), int(end))), f"class {c}"
    assert all(img[:2] == b"\xff\xd8" for _, _, img in images), "an image is not a JPEG"
    print(f"{len(images)} images, {len(ranges)} classes, ranges agree with the labels")
    sys.exit(0)
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..", "..", "data", "sample", "train")
out = os.path.join(here, "recordio")
os.makedirs(out, exist_ok=True)

people = sorted(os.listdir(root))[:3]
images = []  # (label, path relative to data/sample/train, extra bytes after the file)
for label, person in enumerate(people):
    for name in sorted(os.listdir(os.path.join(root, person)))[:2]:
        images.append((label, f"{person}/{name}", b""))
# The second image: padded to a 4-byte boundary, then the magic, then a tail.
label, path, _ = images[1]
size = os.path.getsize(os.path.join(root, path))
images[1] = (label, path, b"\0" * ((-size) % 4) + struct.pack("<I", MAGIC) + b"tail")


def header(flag, label, id1, labels=()):
    return struct.pack("<IfQQ", flag, label, id1, 0) + b"".join(struct.pack("<f", x) for x in labels)


def record(payload):
    """The record's bytes: split into parts where the magic appears at a 4-byte boundary."""
    parts, begin = [], 0
    for i in range(0, len(payload) // 4 * 4, 4):
        if struct.unpack_from("<I", payload, i)[0] == MAGIC:
            parts.append(payload[begin:i])
            begin = i + 4
    parts.append(payload[begin:])
    data = b""
    for n, part in enumerate(parts):
        flag = 0 if len(parts) == 1 else 1 if n == 0 else 3 if n == len(parts) - 1 else 2
        data += struct.pack("<II", MAGIC, (flag << 29) | len(part)) + part + b"\0" * ((-len(part)) % 4)
    return data


n, classes = len(images), len(people)
rec, idx, expected = b"", [], []


def add(key, payload):
    global rec
    idx.append(f"{key}\t{len(rec)}")
    rec += record(payload)


add(0, header(2, 0.0, 0, (n + 1, n + 1 + classes)))
for key, (label, path, extra) in enumerate(images, start=1):
    with open(os.path.join(root, path), "rb") as f:
        data = f.read() + extra
    add(key, header(0, float(label), key) + data)
    expected.append({"key": key, "label": label, "file": path, "extra_hex": extra.hex()})
for c in range(classes):
    keys = [k for k, (label, _, _) in enumerate(images, start=1) if label == c]
    add(n + 1 + c, header(2, 0.0, 0, (keys[0], keys[-1] + 1)))

with open(os.path.join(out, "train.rec"), "wb") as f:
    f.write(rec)
with open(os.path.join(out, "train.idx"), "w") as f:
    f.write("\n".join(idx) + "\n")
with open(os.path.join(out, "property"), "w") as f:
    f.write(f"{classes},112,112\n")
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
print(f"wrote {n} images of {classes} people to {out}")
