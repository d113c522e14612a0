"""The whole path (import, export, both detectors, parity) runs without touching the network.

It runs in a fresh interpreter so that Ultralytics' import-time online check is covered too, with
``YOLO_OFFLINE`` unset: the package itself must keep Ultralytics offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import IMGSZ

SCRIPT = r"""
import json, os, socket, subprocess, sys

attempts, spawned = [], []

def local(host):
    return host is None or str(host) in ("localhost", "::1", "") or str(host).startswith("127.")

real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

def connect(self, address):
    if self.family != socket.AF_UNIX and not local(address[0]):
        attempts.append(f"connect {address[0]}")
        raise OSError("no network in this test")
    return real_connect(self, address)

def connect_ex(self, address):
    if self.family != socket.AF_UNIX and not local(address[0]):
        attempts.append(f"connect_ex {address[0]}")
        return 101  # ENETUNREACH
    return real_connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if not local(host):
        attempts.append(f"getaddrinfo {host}")
        raise socket.gaierror("no network in this test")
    return real_getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
real_popen_init = subprocess.Popen.__init__

def popen_init(self, args, *a, **k):
    spawned.append(args if isinstance(args, str) else " ".join(map(str, args)))
    real_popen_init(self, args, *a, **k)

subprocess.Popen.__init__ = popen_init

from pathlib import Path
from dsgen_core.inference import check_onnx_parity, export_onnx

weights, out, imgsz = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
images = [Path(p) for p in sys.argv[4:]]
info = export_onnx(weights, out, imgsz=imgsz)
report = check_onnx_parity(weights, info.path, images, imgsz=imgsz, conf=0.001)
from ultralytics.utils import ONLINE
seen = list(attempts)
try:  # the guard itself must catch a real attempt
    socket.create_connection(("example.com", 80), timeout=1)
except OSError:
    pass
print("RESULT " + json.dumps({"attempts": seen, "guard": attempts[len(seen):], "spawned": spawned,
                              "ok": report.ok, "online": ONLINE}))
"""


def test_no_network_no_install_no_download(tiny_weights: Path, sample_images: list[Path], tmp_path: Path) -> None:
    config = tmp_path / "yolo-config"
    env = {k: v for k, v in os.environ.items() if k != "YOLO_OFFLINE"}
    env["YOLO_CONFIG_DIR"] = str(config)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_weights), str(tmp_path / "m.onnx"), str(IMGSZ),
         *map(str, sample_images[:4])],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["attempts"] == []
    assert result["guard"] == ["getaddrinfo example.com"]
    assert not any("pip" in cmd or cmd.startswith("uv") for cmd in result["spawned"]), result["spawned"]
    assert result["online"] is False
    assert result["ok"] is True
    assert "AutoUpdate" not in proc.stdout + proc.stderr
    downloaded = [p.name for p in config.rglob("*") if p.suffix in (".ttf", ".pt", ".onnx")]
    assert downloaded == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "yolo-config"]
