"""Sync against a real ``chroma run`` server: stopped mid-sync, and the sync process killed with SIGKILL.

Either way nothing is lost (every object ends in Chroma once the sync runs again) and nothing is
duplicated (one record per object id, and the count equals the registry's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from dsgen_core.embeddings.store import open_store
from dsgen_core.embeddings.versions import get_version
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, EmbeddingOutbox
from support import dsgen_executable, import_file


def _synced(reg: Registry) -> int:
    with reg.session() as s:
        return s.scalar(select(func.count()).select_from(EmbeddingOutbox).where(EmbeddingOutbox.status == "synced")) or 0


def _start_sync(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    # Batches of 2 rows: many commits, so the test can act between them.
    return subprocess.Popen([dsgen_executable(), "embed", "sync", "--project", "p", "--batch-size", "2"], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def _wait_for_progress(reg: Registry, proc: subprocess.Popen[str], at_least: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        n = _synced(reg)
        if n >= at_least:
            return n
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the sync made no progress in 120 s")


def _chroma_ids(reg: Registry, url: str) -> list[int]:
    store = open_store(reg.settings, url=url)
    with reg.session() as s:
        ev = get_version(s, get_project(s, "p"), "vis", level="object")
    return [i for ids, _m, _v in store.scan(store.collection(ev)) for i in ids]


def _expected(reg: Registry) -> list[int]:
    with reg.session() as s:
        return sorted(s.scalars(select(Annotation.id).where(Annotation.bbox_w.is_not(None))))


def _setup(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path, url: str) -> dict[str, str]:
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    env = {**cli.env, "DSGEN_CHROMA_URL": url}
    cli.env.update(env)
    proc = cli("embed", "create", "vis", "--project", "p", "--encoder", "onnx", "--weights", onnx_encoder,
               "--level", "object")
    assert proc.returncode == 0, proc.stderr
    return env


def test_server_stopped_mid_sync_then_back(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path,
                                           chroma_server: Any, tmp_path: Path) -> None:
    env = _setup(registry, cli, demo_data, onnx_encoder, chroma_server.url)
    expected = _expected(registry)
    proc = _start_sync(env, tmp_path)
    _wait_for_progress(registry, proc, 6)
    chroma_server.stop()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert err.strip().splitlines()[-1].startswith("error: cannot reach Chroma at")
    synced_before = _synced(registry)
    assert 6 <= synced_before < len(expected)
    # Status still answers, from the registry.
    status = cli("embed", "status", "--project", "p", "--json")
    assert status.returncode == 0
    assert orjson.loads(status.stdout)["versions"][0]["chroma_count"] is None

    chroma_server.start()
    again = cli("embed", "sync", "--project", "p", "--json")
    assert again.returncode == 0, again.stderr
    ids = _chroma_ids(registry, chroma_server.url)
    assert sorted(ids) == expected  # nothing lost, nothing twice
    rec = cli("embed", "reconcile", "--project", "p", "--json")
    assert orjson.loads(rec.stdout)[0]["in_step"] is True


def test_sync_killed_with_sigkill_then_rerun(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path,
                                             chroma_server: Any, tmp_path: Path) -> None:
    env = _setup(registry, cli, demo_data, onnx_encoder, chroma_server.url)
    expected = _expected(registry)
    proc = _start_sync(env, tmp_path)
    _wait_for_progress(registry, proc, 6)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = _synced(registry)
    assert killed_at < len(expected)
    # Chroma may hold a batch the registry never marked: the rerun writes it again under the same ids.
    held = _chroma_ids(registry, chroma_server.url)
    assert len(held) >= killed_at and len(set(held)) == len(held)
    again = cli("embed", "sync", "--project", "p", "--json")
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)[0]["pending"] == 0
    assert sorted(_chroma_ids(registry, chroma_server.url)) == expected
    with registry.session() as s:
        assert s.scalar(select(func.count()).select_from(EmbeddingOutbox).where(
            EmbeddingOutbox.status != "synced")) == 0
