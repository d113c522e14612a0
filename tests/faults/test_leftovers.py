"""No file outlives a failure for good (issue 9, defect 7): a failed ZIP import removes what it
unpacked, a killed one is swept by the next import, a killed export by the next export, and
``dsgen gc`` removes every file no row refers to, and nothing a row (or a frozen version) still uses."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.formats import images as image_files
from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
from dsgen_core.formats.images import staging_root
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import ensure_project, get_project
from dsgen_core.registry.schema import Annotation, Asset
from dsgen_core.storage import LocalStorage, staging
from dsgen_core.versions.content_hash import verify_content_hash
from dsgen_core.versions.lifecycle import create_version, freeze_version
from support import dsgen_executable, import_file


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=12, seed=4).root


@pytest.fixture(scope="module")
def demo_zip(demo: Path) -> Path:
    path = demo.parent / "images.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted((demo / "images").rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(demo).as_posix())
    return path


def _unpacked(registry: Registry) -> list[Path]:
    root = staging_root(local_sources_dir(LocalStorage(registry.settings.storage_root), registry.settings.home))
    return sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []


def test_a_zip_import_that_runs_out_of_space_leaves_nothing(registry: Registry, demo: Path, demo_zip: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    written = []
    real = image_files._unpack_entry

    def disk_full_after_three(*args: Any) -> None:
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args)
        written.append(args[1].filename)

    monkeypatch.setattr(image_files, "_unpack_entry", disk_full_after_three)
    storage = LocalStorage(registry.settings.storage_root)
    with pytest.raises(OSError, match="No space left"), registry.session() as s:
        import_coco(s, ensure_project(s, "p"), demo / "annotations" / "instances_default.json", images=demo_zip,
                    storage=storage, sources_dir=local_sources_dir(storage, registry.settings.home))
    assert len(written) == 3 and _unpacked(registry) == []


def _popen(env: dict[str, str], cwd: Path, *args: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([dsgen_executable(), *map(str, args)], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_when(proc: subprocess.Popen[bytes], ready: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the command ended before the point it should have been killed at"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_killed_zip_import_is_swept_by_the_next_import(env: dict[str, str], registry: Registry, demo: Path,
                                                         demo_zip: Path, tmp_path: Path) -> None:
    ann = demo / "annotations" / "instances_default.json"
    proc = _popen(env, tmp_path, "import", "coco", ann, "--images", demo_zip, "--project", "p")
    _kill_when(proc, lambda: any(staging.is_marked(p) for p in _unpacked(registry)))
    (left,) = _unpacked(registry)
    assert staging.is_marked(left) and not staging.writer_alive(left)
    with registry.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 0

    subprocess.run([dsgen_executable(), "import", "coco", ann, "--images", demo_zip, "--project", "p"], env=env,
                   cwd=tmp_path, check=True, capture_output=True)
    (kept,) = _unpacked(registry)
    assert kept != left and not staging.is_marked(kept)
    with registry.session() as s:
        uris = set(s.scalars(select(Asset.storage_uri)))
    assert len(uris) == 12 and all(u.startswith(str(kept)) for u in uris)


def test_a_killed_export_is_swept_by_the_next_export(env: dict[str, str], registry: Registry, demo: Path,
                                                     tmp_path: Path) -> None:
    _freeze(registry, demo)
    out = tmp_path / "yolo"
    proc = _popen(env, tmp_path, "export", "yolo", "v1", out, "--project", "p", "--task", "segment")
    _kill_when(proc, lambda: any(staging.is_marked(p) for p in tmp_path.glob(".yolo.tmp-*")))
    assert not out.exists() and len(list(tmp_path.glob(".yolo.tmp-*"))) == 1
    subprocess.run([dsgen_executable(), "export", "yolo", "v1", out, "--project", "p"], env=env, cwd=tmp_path,
                   check=True, capture_output=True)
    assert list(tmp_path.glob(".yolo.tmp-*")) == [] and (out / "data.yaml").is_file()
    assert not (out / staging.MARKER).exists()


def test_an_export_folder_killed_outside_its_marker_is_swept_by_its_name(tmp_path: Path) -> None:
    """A kill between mkdir and the marker, or between unmark and the publishing rename, leaves an
    unmarked folder: its name names the dead writer (seen on CI: the rename window)."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = staging.transient_folder(tmp_path, ".out.tmp-")
    unmarked = staging.transient_folder(tmp_path, ".out.tmp-")
    staging.unmark(unmarked)
    killed = tmp_path / live.name.replace(f"{os.getpid()}@", f"{dead.pid}@", 1)
    killed.mkdir()  # killed before its marker
    (tmp_path / ".out.tmp-notours").mkdir()  # not a name this writer makes: left alone
    (tmp_path / ".other.tmp-1").mkdir()
    assert staging.sweep_transient(tmp_path, ".out.tmp-") == [killed]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unmarked.name, ".out.tmp-notours",
                                                                 ".other.tmp-1"])


def _freeze(registry: Registry, demo: Path) -> LocalStorage:
    storage = LocalStorage(registry.settings.storage_root)
    import_file(registry, demo / "annotations" / "instances_default.json", images=demo / "images", project="p")
    with registry.session() as s:
        create_version(s, get_project(s, "p"), "v1", seed=1)
        freeze_version(s, get_project(s, "p"), "v1", storage=storage)
    return storage


def _age(path: Path, seconds: float = 7200) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_gc_removes_what_no_row_names_and_keeps_the_rest(cli: Any, registry: Registry, demo: Path,
                                                         demo_zip: Path) -> None:
    storage = _freeze(registry, demo)
    import_file(registry, demo / "annotations" / "instances_default.json", images=demo_zip, project="q")
    assert cli("thumbnails", "--project", "p").returncode == 0
    root = Path(registry.settings.storage_root)
    with registry.session() as s:
        # Live objects with masks deleted: the frozen version's snapshot still names their files.
        of_p = (Annotation.mask_uri.is_not(None),
                Annotation.asset_id.in_(select(Asset.id).where(Asset.project_id == get_project(s, "p").id)))
        gone = s.scalar(select(func.count()).select_from(Annotation).where(*of_p))
        s.execute(delete(Annotation).where(*of_p))
    assert gone > 0
    used = sorted(p for p in root.rglob("*") if p.is_file())
    orphans = [root / "masks" / "00" / "00" / "999999.rle", root / "masks" / "00" / "00" / "999998.rle.tmp",
               root / "thumbnails" / "ff" / ("f" * 64 + ".jpg")]
    (unpacked,) = _unpacked(registry)
    orphans.append(unpacked / "images" / "stray.jpg")
    for p in orphans:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 100)
        _age(p)
    young = root / "masks" / "00" / "01" / "999997.rle"
    young.parent.mkdir(parents=True, exist_ok=True)
    young.write_bytes(b"y")
    dead = staging_root(root) / "deadbeef"
    (dead / "images").mkdir(parents=True)
    (dead / "images" / "half.jpg").write_bytes(b"z" * 50)
    (dead / staging.MARKER).write_text(json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename, "started": 0}))

    r = cli("gc", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    dry = json.loads(r.stdout)
    assert (dry["masks"], dry["thumbnails"], dry["source_files"], dry["staging_folders"]) == (2, 1, 1, 1)
    assert dry["kept_young"] == 1 and dry["bytes_freed"] == 4 * 100 + 50 + len(json.dumps(
        {"pid": 2**22 + 12345, "host": os.uname().nodename, "started": 0}))
    assert all(p.exists() for p in orphans) and dead.exists()

    r = cli("gc", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["masks"] == 2, r.stderr
    assert not any(p.exists() for p in orphans) and not dead.exists() and young.exists()
    assert sorted(p for p in root.rglob("*") if p.is_file()) == sorted([*used, young])
    with registry.session() as s:
        assert verify_content_hash(s, _version(s), storage)
    assert cli("export", "yolo", "v1", "out", "--project", "p", "--task", "segment").returncode == 0


def _version(s: Any) -> Any:
    from dsgen_core.versions.lifecycle import get_version

    return get_version(s, get_project(s, "p"), "v1")


def test_two_exports_into_one_folder_take_turns(tmp_path: Path) -> None:
    """A backfill and automation exporting the same version at once: the second waits for the first."""
    import threading

    from dsgen_core.formats.version_export import staged_dir

    spans: list[tuple[float, float]] = []

    def export(name: str) -> None:
        with staged_dir(tmp_path / "yolo", ("data.yaml",)) as work:
            start = time.monotonic()
            (work / "data.yaml").write_text(name)
            time.sleep(0.5)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=export, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 >= a1  # one after the other, never both at once
    assert (tmp_path / "yolo" / "data.yaml").read_text() in ("a", "b")
    assert list(tmp_path.glob(".yolo.tmp-*")) == []
