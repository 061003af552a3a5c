"""The Python module against the command line, on the shipped sample and the shared data.

Run by ctest (which sets PYTHONPATH to the built module and names the command, the fixture model
and the shared data) or by hand:
  PYTHONPATH=build/python ARCFACE_BINARY=build/arcface ARCFACE_TEST_MODEL=... python3 -m pytest
"""
import json
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import arcface

SOURCE = Path(__file__).resolve().parents[2]
SAMPLE = SOURCE / "data" / "sample"
BINARY = os.environ.get("ARCFACE_BINARY", str(SOURCE / "build" / "arcface"))
MODEL = os.environ.get("ARCFACE_TEST_MODEL", "")
SHARED = Path(os.environ.get("ARCFACE_SHARED_DATA", SOURCE.parent / "shared" / "data"))


def cli(*args):
    run = subprocess.run([BINARY, *map(str, args)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.fixture(scope="module")
def model():
    if not MODEL or not Path(MODEL).exists():
        pytest.skip("no fixture model (ARCFACE_TEST_MODEL): run through ctest")
    return arcface.Model(MODEL, precision="fp32")


FR_FEATURE = SHARED / "models" / "fr_feature" / "fr_feature.onnx"


def reference_model():
    """The shared pretrained ONNX model (RGB 112x112), or a skip."""
    if not FR_FEATURE.exists():
        pytest.skip("shared data (models/fr_feature) not present")
    return arcface.Model(FR_FEATURE, precision="fp32", color="rgb", mean=0.49804, std=0.50196)


def crops(person, n=3):
    return sorted((SAMPLE / "lfw" / person).glob("*.jpg"))[:n]


def test_descriptors_from_paths_equal_the_commands(model, tmp_path):
    files = crops("Abdullah_Gul") + crops("Abel_Pacheco")
    cli("embed", "--model", MODEL, "--precision", "fp32", "--flip", "sum", "--out",
        tmp_path / "e.npy", *files)
    expected = np.load(tmp_path / "e.npy")
    got = model.embed([str(f) for f in files], flip="sum")
    assert got.dtype == np.float32 and got.shape == expected.shape
    # The same loader and network: the same bits.
    assert np.array_equal(got, expected)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_descriptors_from_arrays_follow_the_paths(model):
    files = crops("Abdullah_Gul")
    from_paths = model.embed(files)
    bgr = [arcface.read_image(f) for f in files]
    rgb = [arcface.read_image(f, color="rgb") for f in files]
    assert np.array_equal(bgr[0][..., ::-1], rgb[0])
    from_bgr = model.embed(bgr)
    from_rgb = model.embed(rgb, color="rgb")
    from_batch = model.embed(np.stack(bgr))
    assert np.array_equal(from_bgr, from_rgb) and np.array_equal(from_bgr, from_batch)
    # The fixture model is grey: a path is decoded straight to JPEG's luma, an array is turned
    # grey from BGR, and the two differ by a grey level here and there.
    assert np.abs(from_bgr - from_paths).max() < 1e-3


def test_colour_descriptors_from_arrays_equal_those_from_paths():
    model = reference_model()
    files = crops("Abdullah_Gul")
    assert np.array_equal(model.embed([arcface.read_image(f) for f in files], flip="sum"),
                          model.embed(files, flip="sum"))


def test_threads_share_a_model(model):
    files = crops("Abdullah_Gul", 6)
    alone = model.embed(files)
    results = [None] * 4

    def work(i):
        results[i] = model.embed(files)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert np.array_equal(r, alone)


def test_evaluate_gives_the_commands_metrics(model, tmp_path):
    pairs = SAMPLE / "pairs.txt"
    root = SAMPLE / "lfw"
    cli("eval", "--model", MODEL, "--precision", "fp32", "--pairs", pairs, "--root", root,
        "--no-progress", "--out", tmp_path / "cli")
    expected = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    got = arcface.evaluate(model, pairs, root, out=tmp_path / "py")
    for key in ("accuracy_10fold_mean", "accuracy_best", "threshold_best", "roc_auc", "eer"):
        assert got[key] == expected[key], key
    assert json.loads((tmp_path / "py" / "metrics.json").read_text())["roc_auc"] == got["roc_auc"]
    # 1:1 at the report's thresholds.
    a, b = model.embed(crops("Abdullah_Gul", 2))
    best = arcface.verify(a, b, report=tmp_path / "py" / "metrics.json")
    assert best["threshold"] == got["threshold_best"]
    assert best["same"] == (arcface.match(a, b) >= best["threshold"])
    at_far = arcface.verify(a, b, report=tmp_path / "py" / "metrics.json", far=1e-2)
    assert at_far["far"] == 1e-2 and "FAR" in at_far["meaning"]


def test_a_gallery_made_here_is_read_by_the_command_and_back(model, tmp_path):
    path = tmp_path / "g.db"
    people = ["Abdullah_Gul", "Abel_Pacheco", "Aaron_Peirsol"]
    with arcface.Gallery.create(path, model) as g:
        for person in people:
            ids = g.add(person, crops(person, 2))
            assert len(ids) == 2
        assert len(g) == 6
        probe = crops("Abdullah_Gul", 3)[2]
        matches = g.search(str(probe), k=3)
        assert [m["name"] for m in matches][:1] == ["Abdullah_Gul"]
        d = model.embed([probe], flip="sum")[0]
        assert g.search(d, k=1)[0]["name"] == "Abdullah_Gul"
    listed = cli("gallery", "list", "--gallery", path)
    for person in people:
        assert person in listed
    # The command enrols, Python reads with the gallery's own model.
    cli("gallery", "add", "--gallery", path, "--subject", "Adam_Sandler",
        *crops("Adam_Sandler", 2))
    g = arcface.Gallery.open(path, precision="fp32")
    names = {s["name"]: s["faces"] for s in g.subjects()}
    assert names["Adam_Sandler"] == 2 and len(names) == 4
    g.remove("Abel_Pacheco")
    assert "Abel_Pacheco" not in {s["name"] for s in g.subjects()}
    assert g.model["flip"] == "sum"
    g.close()
    assert "Abel_Pacheco" not in cli("gallery", "list", "--gallery", path)


def test_bad_input_raises_with_the_file_named(model, tmp_path):
    with pytest.raises(arcface.Error, match="missing.jpg"):
        arcface.read_image(tmp_path / "missing.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(crops("Abdullah_Gul", 1)[0].read_bytes()[:300])
    with pytest.raises(arcface.Error, match="broken.jpg"):
        model.embed([broken])
    with pytest.raises(arcface.Error, match="nothing.pt"):
        arcface.Model(tmp_path / "nothing.pt")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t2\nAbdullah_Gul\t1\n")
    with pytest.raises(arcface.Error, match="pairs.txt"):
        arcface.evaluate(model, pairs, SAMPLE / "lfw")
    with pytest.raises(arcface.Error, match="uint8 array"):
        model.embed(np.zeros((4, 112, 112, 4), np.uint8)[0])
    with pytest.raises(arcface.Error, match="mean"):
        arcface.Model(MODEL, mean=127.5, std=128)
    with pytest.raises(arcface.Error, match="subject|name"):
        g = arcface.Gallery.create(tmp_path / "h.db", model)
        g.add("bad\x00name", crops("Abdullah_Gul", 1))


def test_a_gallery_refuses_another_model(model, tmp_path):
    path = tmp_path / "g.db"
    arcface.Gallery.create(path, model).close()
    other = reference_model()
    with pytest.raises(arcface.Error, match=str(path)):
        arcface.Gallery.open(path, model=other)


def test_raw_photos_are_detected_and_aligned(model):
    yunet = SHARED / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
    raw = SHARED / "lfw" / "raw"
    photos = sorted(raw.glob("Abel_Pacheco/*.jpg"))[:2] if raw.exists() else []
    if not yunet.exists() or not photos:
        pytest.skip("shared data (raw LFW, YuNet) not present")
    detector = arcface.Detector("yunet", str(yunet))
    image = arcface.read_image(photos[0])
    faces = detector.detect(image)
    assert faces, f"no face in {photos[0]}"
    face = arcface.main_face(faces, image)
    assert len(face["landmarks"]) == 5 and 0 < face["score"] <= 1
    crop = arcface.align(image, face)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    assert model.embed([crop]).shape == (1, model.dim())
