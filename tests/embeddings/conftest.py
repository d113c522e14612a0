"""Fixtures of the embedding tests: a small real ONNX image encoder, demo data, a real ``chroma run`` server.

The encoder is a seeded random conv net exported to ONNX and run by ONNX Runtime through dsgen's
ONNX encoder: real loading, real inference, and fast enough to embed a few hundred crops per test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsgen_core.demo.synth import generate_demo_dataset
from support import _free_port, tiny_onnx_encoder

CHROMA = str(Path(sys.executable).with_name("chroma"))


@pytest.fixture(scope="session")
def onnx_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-d ONNX image encoder at 32x32 px."""
    return tiny_onnx_encoder(tmp_path_factory.mktemp("encoder") / "tiny16.onnx", 16, 0)


@pytest.fixture(scope="session")
def onnx_encoder_24d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another encoder: 24-d, other weights."""
    return tiny_onnx_encoder(tmp_path_factory.mktemp("encoder24") / "tiny24.onnx", 24, 1)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 demo images (with two short tracked sequences), as a CVAT COCO export."""
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=16, seed=5).root


class ChromaServer:
    """A real ``chroma run`` on 127.0.0.1 and a free port; stop() and start() keep its data."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.path.parent / f"chroma-{self.port}.log"
        with open(log, "ab") as out:  # the server holds its own copy of the descriptor
            self.proc = subprocess.Popen([CHROMA, "run", "--path", str(self.path), "--host", "127.0.0.1",
                                          "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"chroma run exited {self.proc.returncode}; see {log}") from None
                time.sleep(0.2)
        raise RuntimeError("chroma run did not answer within 60 s")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    if not Path(CHROMA).exists() and shutil.which("chroma") is None:
        pytest.fail("the chroma command (package chromadb) is not installed in this environment", pytrace=False)
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    try:
        yield server
    finally:
        server.stop()
