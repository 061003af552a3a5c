"""Starts `arcface serve` on a free port and talks to it with the standard library only."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid


class Server:
    def __init__(self, binary, gallery, *args, env=None):
        self.log = open(gallery + ".serve.log", "a")
        self.proc = subprocess.Popen(
            [binary, "serve", "--gallery", gallery, "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        line = self.proc.stdout.readline()
        found = re.search(r"http://[0-9.]+:[0-9]+", line)
        if not found:
            raise RuntimeError("the server did not start: " + line + self.tail())
        self.url = found.group(0)

    def tail(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-2000:]

    def stop(self, sig=signal.SIGTERM, timeout=60):
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out


def request(url, method="GET", body=None, headers=None, timeout=120):
    """(status, parsed JSON or text) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, data, kind = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, data, kind = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, json.loads(data) if kind.startswith("application/json") else data.decode()


def multipart(files):
    """A multipart/form-data body from (field, filename, bytes) triples."""
    boundary = uuid.uuid4().hex
    parts = []
    for field, name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                     f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def photo(path):
    with open(path, "rb") as f:
        return f.read()


def post_photos(url, paths, field="image", headers=None):
    body, h = multipart([(field, os.path.basename(p), photo(p)) for p in paths])
    return request(url, "POST", body, {**h, **(headers or {})})


def post_json(url, value, method="POST", headers=None):
    return request(url, method, json.dumps(value).encode(),
                   {"Content-Type": "application/json", **(headers or {})})


def raw_request(url, data):
    """(status, parsed JSON) of a request written byte for byte (for what urllib won't send)."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(65536)
        head, body = answer.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"Content-Length: *([0-9]+)", head, re.I).group(1))
        while len(body) < length:
            body += s.recv(65536)
    return int(head.split()[1]), json.loads(body[:length])
