"""`arcface serve` end to end on raw LFW photos: the API, every refusal, the key, the limits,
a drain on SIGTERM, and a SIGKILL during enrolment that loses no acknowledged face.

usage: serve_api.py ARCFACE MODEL.onnx LFW_RAW_DIR OUT_DIR
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from serve_lib import (Server, multipart, photo, post_json, post_photos, raw_request,  # noqa: E402
                       request)

binary, model, raw, out = sys.argv[1:5]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
gallery = os.path.join(out, "g.db")
KEY = "s3cret-key"
H = {"X-API-Key": KEY}
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


def refused(name, answer, status, code):
    got_status, body = answer
    ok = got_status == status and isinstance(body, dict) and body["error"]["code"] == code
    check(name, ok, f"got {got_status} {body}")


def lfw(person, n):
    return os.path.join(raw, person, f"{person}_{n:04d}.jpg")


def png(width, height, pixels=True):
    """A uniform grey PNG (no face), or only its header declaring a size."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if not pixels:
        return head
    rows = b"".join(b"\x00" + bytes([128]) * width for _ in range(height))
    return head + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


subprocess.run([binary, "gallery", "create", "--gallery", gallery, "--model", model,
                "--mean", "0.49804", "--std", "0.50196"], check=True, stdout=subprocess.DEVNULL)
images_root = os.path.join(out, "images")
os.makedirs(os.path.join(images_root, "people"))
shutil.copy(lfw("Jennifer_Garner", 3), os.path.join(images_root, "people", "jg3.jpg"))
with open(os.path.join(out, "secret.jpg"), "wb") as f:
    f.write(photo(lfw("Jennifer_Garner", 4)))
os.symlink(os.path.join(out, "secret.jpg"), os.path.join(images_root, "people", "link.jpg"))

server = Server(binary, gallery, "--detector", "dlib", "--api-key", KEY, "--images-root",
                images_root, "--max-upload-mb", "1", "--verify-threshold", "0.3")
url = server.url

# The key: /health and the page are open, the API is not.
check("health without a key", request(url + "/health")[0] == 200)
check("page without a key", "<title>arcface</title>" in request(url + "/")[1])
refused("no key", request(url + "/v1/subjects"), 401, "unauthorized")
refused("wrong key", request(url + "/v1/subjects", headers={"X-API-Key": "s3cret-kez"}), 401,
        "unauthorized")
refused("metrics need the key", request(url + "/metrics"), 401, "unauthorized")

# Enrolment and search with the right answers.
status, body = post_photos(url + "/v1/subjects/Hugo_Chavez/faces",
                           [lfw("Hugo_Chavez", 2), lfw("Hugo_Chavez", 27)], headers=H)
check("enrol two photos", status == 201 and len(body["faces"]) == 2, body)
check("enrolled faces have boxes", status == 201 and all(len(f["box"]) == 4 for f in body["faces"]))
status, body = post_photos(url + "/v1/subjects/Jennifer_Garner/faces",
                           [lfw("Jennifer_Garner", 1), lfw("Jennifer_Garner", 5)], headers=H)
check("enrol another person", status == 201, body)
status, body = post_json(url + "/v1/subjects/Jennifer_Garner/faces", {"path": "people/jg3.jpg"},
                         headers=H)
check("enrol from a server path", status == 201 and body["faces"][0]["source"] == "people/jg3.jpg",
      body)
status, body = post_photos(url + "/v1/search?k=2", [lfw("Hugo_Chavez", 33)], headers=H)
top = body["faces"][0]["matches"] if status == 200 else []
check("search finds the right person first", top and top[0]["subject"] == "Hugo_Chavez" and
      top[0]["score"] > top[1]["score"], body)
status, body = request(url + "/v1/search?k=1&threshold=0.99", "POST",
                       photo(lfw("Hugo_Chavez", 33)), {"Content-Type": "image/jpeg", **H})
check("a raw body, and the threshold", status == 200 and body["faces"][0]["matches"] == [], body)
status, body = post_photos(url + "/v1/embed", [lfw("Hugo_Chavez", 33)], headers=H)
descriptor = body["photos"][0]["faces"][0]["embedding"] if status == 200 else []
check("embed", len(descriptor) == 512, body)
status, body = request(url + "/v1/search", "POST", json.dumps({"embedding": descriptor, "k": 1})
                       .encode(), {"Content-Type": "application/json; charset=utf-8", **H})
check("search by descriptor", status == 200 and
      body["faces"][0]["matches"][0]["subject"] == "Hugo_Chavez", body)
verify_body, verify_headers = multipart([("a", "a.jpg", photo(lfw("Hugo_Chavez", 33))),
                                         ("b", "b.jpg", photo(lfw("Hugo_Chavez", 2)))])
status, body = request(url + "/v1/verify", "POST", verify_body, {**verify_headers, **H})
check("verify the same person", status == 200 and body["same"] is True, body)

# Subjects: create, list, rename, delete, and their refusals.
check("create a subject", post_json(url + "/v1/subjects", {"name": "Nobody Yet",
                                    "metadata": {"team": "a"}}, headers=H)[0] == 201)
refused("an existing subject", post_json(url + "/v1/subjects", {"name": "Nobody Yet"}, headers=H),
        409, "subject_exists")
refused("a subject without a name", post_json(url + "/v1/subjects", {"metadata": {}}, headers=H),
        400, "bad_request")
refused("a name of 100,000 characters", post_json(url + "/v1/subjects", {"name": "x" * 100000},
                                                headers=H), 400, "bad_request")
refused("a name holding a NUL", post_json(url + "/v1/subjects", {"name": "a\u0000b"}, headers=H),
        400, "bad_request")
refused("a name holding a newline (enrolling)",
        post_photos(url + "/v1/subjects/a%0Ab/faces", [lfw("Hugo_Chavez", 33)], headers=H), 400,
        "bad_request")
check("rename", post_json(url + "/v1/subjects/Nobody%20Yet", {"name": "Somebody"}, "PATCH",
                          headers=H)[0] == 200)
status, body = request(url + "/v1/subjects", headers=H)
names = [s["name"] for s in body["subjects"]]
check("list", names == ["Hugo_Chavez", "Jennifer_Garner", "Somebody"], names)
check("delete a subject", request(url + "/v1/subjects/Somebody", "DELETE", headers=H)[0] == 200)
refused("unknown subject (delete)", request(url + "/v1/subjects/Somebody", "DELETE", headers=H),
        404, "unknown_subject")
refused("unknown subject (faces)", request(url + "/v1/subjects/Nobody/faces", headers=H), 404,
        "unknown_subject")
refused("unknown subject (no create)",
        post_photos(url + "/v1/subjects/Nobody/faces?create=0", [lfw("Hugo_Chavez", 33)], headers=H),
        404, "unknown_subject")
status, body = request(url + "/v1/subjects/Jennifer_Garner/faces", headers=H)
face_id = body["faces"][-1]["id"]
check("delete a face", request(url + f"/v1/faces/{face_id}", "DELETE", headers=H)[0] == 200)
refused("unknown face", request(url + f"/v1/faces/{face_id}", "DELETE", headers=H), 404,
        "unknown_face")
refused("a face id that is not a number", request(url + "/v1/faces/x1", "DELETE", headers=H), 400,
        "bad_request")

# Bad photos and bad requests, each refused with its own status and code.
with open(os.path.join(out, "notes.txt"), "w") as f:
    f.write("not a photo\n")
refused("not an image", post_photos(url + "/v1/search", [os.path.join(out, "notes.txt")],
                                    headers=H), 415, "not_an_image")
cut = os.path.join(out, "cut.jpg")
with open(cut, "wb") as f:
    f.write(photo(lfw("Hugo_Chavez", 33))[:3000])
refused("a truncated image", post_photos(url + "/v1/search", [cut], headers=H), 422,
        "damaged_image")
blank = os.path.join(out, "blank.png")
with open(blank, "wb") as f:
    f.write(png(200, 200))
refused("no face (search)", post_photos(url + "/v1/search", [blank], headers=H), 422, "no_face")
refused("no face (enrol adds nothing)", post_photos(
    url + "/v1/subjects/Hugo_Chavez/faces", [lfw("Hugo_Chavez", 33), blank], headers=H), 422,
    "no_face")
check("nothing added by a refused enrolment",
      len(request(url + "/v1/subjects/Hugo_Chavez/faces", headers=H)[1]["faces"]) == 2)
huge = os.path.join(out, "huge.png")
with open(huge, "wb") as f:
    f.write(png(100000, 100000, pixels=False))
refused("too many pixels", post_photos(url + "/v1/search", [huge], headers=H), 413,
        "too_many_pixels")
refused("too many bytes", request(url + "/v1/search", "POST", b"\xff\xd8\xff" + b"0" * (1 << 21),
                                  {"Content-Type": "image/jpeg", **H}), 413, "too_large")
refused("a body over the server's limit", request(url + "/v1/search", "POST", b"0" * (5 << 20),
                                                  {"Content-Type": "image/jpeg", **H}), 413,
        "too_large")
refused("malformed JSON", request(url + "/v1/subjects", "POST", b'{"name": "x"',
                                  {"Content-Type": "application/json", **H}), 400,
        "malformed_json")
refused("wrong descriptor length", post_json(url + "/v1/search", {"embedding": [0.5] * 128},
                                             headers=H), 422, "wrong_dimension")
refused("k out of range", post_photos(url + "/v1/search?k=0", [lfw("Hugo_Chavez", 33)], headers=H),
        400, "bad_request")
refused("k not a number", post_photos(url + "/v1/search?k=two", [lfw("Hugo_Chavez", 33)],
                                      headers=H), 400, "bad_request")
refused("no photo", request(url + "/v1/search", "POST", b"", H), 400, "no_image")
for name, path in [("parent", "../secret.jpg"), ("absolute", os.path.join(out, "secret.jpg")),
                   ("link out of the root", "people/link.jpg")]:
    refused(f"path traversal ({name})", post_json(url + "/v1/subjects/X/faces", {"path": path},
                                                  headers=H), 403, "path_outside_root")
refused("unknown route", request(url + "/v1/nothing", headers=H), 404, "not_found")
refused("a chunked body", raw_request(url, (
    "POST /v1/search HTTP/1.1\r\nHost: test\r\nX-API-Key: " + KEY + "\r\nContent-Type: "
    "image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").encode()),
        411, "length_required")
refused("a compressed body", request(url + "/v1/search", "POST", photo(lfw("Hugo_Chavez", 33)),
                                     {"Content-Type": "image/jpeg", "Content-Encoding": "gzip", **H}),
        411, "length_required")
refused("JSON that is not an object", request(url + "/v1/subjects", "POST", b"[1, 2]",
                                              {"Content-Type": "application/json", **H}), 400,
        "malformed_json")
refused("k not whole in JSON", post_json(url + "/v1/search", {"embedding": descriptor, "k": 1.5},
                                         headers=H), 400, "bad_request")
refused("too many photos", post_photos(url + "/v1/embed", [blank] * 17, headers=H), 413,
        "too_many_photos")

# The OpenAPI document names every route; the metrics counted the requests.
status, spec = request(url + "/v1/openapi.json")
check("openapi", status == 200 and {"/v1/search", "/v1/subjects/{name}/faces", "/v1/faces/{id}",
                                    "/v1/embed", "/v1/verify"} <= set(spec["paths"]), status)
status, text = request(url + "/metrics", headers=H)
check("metrics", status == 200 and 'arcface_requests_total{route="POST /v1/search",status="200"}'
      in text and "arcface_batch_size_count" in text and "arcface_request_seconds_bucket" in text,
      text[:500])

# SIGTERM while a search is in flight: it is answered, then the server ends cleanly.
answers = []
slow = threading.Thread(target=lambda: answers.append(post_photos(
    url + "/v1/embed", [lfw("Hugo_Chavez", n) for n in (2, 27, 33)] * 4, headers=H)))
slow.start()
time.sleep(0.3)
code, said = server.stop(signal.SIGTERM)
slow.join()
check("SIGTERM drains the request in flight", answers and answers[0][0] == 200 and
      len(answers[0][1]["photos"]) == 12, answers[:1])
check("SIGTERM ends cleanly", code == 0 and "Stopped" in said, f"{code} {said}")

# SIGKILL during enrolment: every acknowledged face is there after a restart, and the index
# agrees with SQLite.
server = Server(binary, gallery, "--detector", "dlib", "--api-key", KEY)
acknowledged = []


def enrol_forever():
    n = 0
    while True:
        n += 1
        try:
            status, body = post_photos(server.url + "/v1/subjects/Crash/faces",
                                       [lfw("Jennifer_Garner", (1, 5)[n % 2])], headers=H)
        except Exception:
            return
        if status != 201:
            return
        acknowledged.extend(f["id"] for f in body["faces"])


writer = threading.Thread(target=enrol_forever)
writer.start()
while len(acknowledged) < 6:
    time.sleep(0.05)
server.proc.send_signal(signal.SIGKILL)
server.proc.wait()
writer.join()
server = Server(binary, gallery, "--api-key", KEY)
status, body = request(server.url + "/v1/subjects/Crash/faces", headers=H)
stored = {f["id"] for f in body.get("faces", [])}
check(f"SIGKILL loses no acknowledged face ({len(acknowledged)} acknowledged)",
      set(acknowledged) <= stored, f"missing {set(acknowledged) - stored}")
health = request(server.url + "/health")[1]
check("the index agrees with SQLite after the crash", health["faces"] == health["indexed"], health)
server.stop()

print(f"{len(failures)} failures" if failures else "serve API OK")
sys.exit(1 if failures else 0)
