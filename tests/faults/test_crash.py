"""kill -9 at points spread over an import (ZIP images, masks), a freeze and a YOLO export, on both
databases (issue 9): every kill leaves nothing or everything, the database passes its integrity
checks, a re-run gives exactly what an uninterrupted run gives (same content hash, same bytes), and
``dsgen gc`` then leaves no file without a row.

The kill points are spread evenly over the window in which each command works: from the moment
its process opens the database (the SQLite file, or a socket to PostgreSQL) to its exit, as
measured on an uninterrupted run first. Python's start-up before that window is not worth killing.
``DSGEN_CRASH_POINTS`` (default 5) sets the number of points per command and database; the
long mode of ``benchmarks/bench_faults.py`` runs many more.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    DatasetVersionAnnotation,
    DatasetVersionAsset,
    DatasetVersionClass,
    ImportBatch,
    Project,
)
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.content_hash import verify_content_hash
from dsgen_core.versions.lifecycle import create_version, freeze_version, get_version
from support import dsgen_executable, import_file, tree_digest

POINTS = int(os.environ.get("DSGEN_CRASH_POINTS", "5"))
SEED = 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """160 images (masks, tracks) and their images as a ZIP: the import unpacks, writes masks and rows."""
    root = generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=160, seed=8).root
    images = root.parent / "images.zip"
    with zipfile.ZipFile(images, "w") as zf:
        for p in sorted((root / "images").rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return root / "annotations" / "instances_default.json", images


class Killer:
    """Runs one ``dsgen`` command to its end (the reference) or kills it at a point of its working window."""

    def __init__(self, registry: Registry, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        url = registry.engine.url
        self.db_file = str(Path(url.database or "").resolve()) if registry.dialect == "sqlite" else None
        self.window = 0.0

    def _start(self, args: list[Any]) -> subprocess.Popen[bytes]:
        return subprocess.Popen([dsgen_executable(), *map(str, args)], env=self.env, cwd=self.cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def _uses_database(self, pid: int) -> bool:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return False
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target == self.db_file if self.db_file else target.startswith("socket:"):
                return True
        return False

    def _until_working(self, proc: subprocess.Popen[bytes]) -> float:
        deadline = time.monotonic() + 120
        while not self._uses_database(proc.pid):
            if proc.poll() is not None:
                break
            assert time.monotonic() < deadline, "the command never opened the database"
            time.sleep(0.001)
        return time.monotonic()

    def reference(self, *args: Any) -> None:
        proc = self._start(list(args))
        opened = self._until_working(proc)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        self.window = time.monotonic() - opened

    def kill_at(self, fraction: float, *args: Any) -> bool:
        """Kill ``fraction`` of the way through the working window; False when the command ended first."""
        proc = self._start(list(args))
        self._until_working(proc)
        time.sleep(fraction * self.window)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it exited this instant
        _, err = proc.communicate(timeout=60)
        # 0: it finished before the signal landed (a kill that came too late); anything else fails.
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        return proc.returncode == -signal.SIGKILL

    def run(self, *args: Any) -> None:
        proc = subprocess.run([dsgen_executable(), *map(str, args)], env=self.env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr


def _fractions() -> list[float]:
    # Over the first three quarters: the rest of the window is mostly the process exiting after
    # its commit, where every kill finds the work done.
    return [0.75 * (i + 0.5) / POINTS for i in range(POINTS)]


def _intact(registry: Registry) -> None:
    """The database's own consistency checks (PostgreSQL's are its WAL; nothing to ask it)."""
    if registry.dialect == "sqlite":
        with registry.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []


def _count(registry: Registry, table: Any, *where: Any) -> int:
    with registry.session() as s:
        return int(s.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def _project_counts(registry: Registry, project: str) -> tuple[int, int, int]:
    """Images, objects and import batches of ``project`` (which a killed import may not have created)."""
    with registry.session() as s:
        pid = s.scalar(select(Project.id).where(Project.name == project))
    if pid is None:
        return (0, 0, 0)
    return (_count(registry, Asset, Asset.project_id == pid),
            _count(registry, Annotation, Annotation.asset_id.in_(select(Asset.id).where(Asset.project_id == pid))),
            _count(registry, ImportBatch, ImportBatch.project_id == pid))


def _content_hash(registry: Registry, storage: LocalStorage, project: str, tag: str = "check") -> str:
    with registry.session() as s:
        p = get_project(s, project)
        create_version(s, p, tag, seed=SEED)
        v = freeze_version(s, p, tag, storage=storage)
        assert v.content_hash is not None
        return v.content_hash


def _no_orphans(registry: Registry, killer: Killer, storage: LocalStorage) -> None:
    """gc removes what the kills left; afterwards nothing is left to remove and every named mask exists."""
    killer.run("gc", "--min-age", "0")
    proc = subprocess.run([dsgen_executable(), "gc", "--dry-run", "--min-age", "0", "--json"], env=killer.env,
                          cwd=killer.cwd, capture_output=True, text=True, check=True)
    left = json.loads(proc.stdout)
    assert (left["masks"], left["thumbnails"], left["source_files"], left["staging_folders"]) == (0, 0, 0, 0), left
    with registry.session() as s:
        uris = {u for u in s.scalars(select(Annotation.mask_uri)) if u is not None}
    assert uris and all(storage.exists(storage.key_of(u)) for u in uris)


def _outcomes_say_kills_landed(registry: Registry, command: str, outcomes: Counter[str]) -> None:
    # A suite whose kills all come too late proves nothing: some must have interrupted the work.
    assert outcomes["nothing"] >= 1, outcomes
    assert sum(outcomes.values()) == POINTS
    if report := os.environ.get("DSGEN_FAULT_REPORT"):  # benchmarks/bench_faults.py counts them
        with open(report, "a") as f:
            f.write(json.dumps({"command": command, "database": registry.dialect, **outcomes}) + "\n")


def test_a_killed_import_leaves_nothing_or_everything(registry: Registry, env: dict[str, str], tmp_path: Path,
                                                      demo: tuple[Path, Path]) -> None:
    ann, images = demo
    storage = LocalStorage(registry.settings.storage_root)
    killer = Killer(registry, env, tmp_path)
    killer.reference("import", "coco", ann, "--images", images, "--project", "ref")
    full = _project_counts(registry, "ref")
    assert full[0] == 160 and full[2] == 1
    reference = _content_hash(registry, storage, "ref")

    outcomes: Counter[str] = Counter()
    for k, fraction in enumerate(_fractions()):
        project = f"p{k}"
        killed = killer.kill_at(fraction, "import", "coco", ann, "--images", images, "--project", project)
        _intact(registry)
        after = _project_counts(registry, project)
        assert after in ((0, 0, 0), full), f"kill at {fraction:.2f} of the import left {after}"
        outcomes["nothing" if after == (0, 0, 0) else "everything" if killed else "finished"] += 1
        killer.run("import", "coco", ann, "--images", images, "--project", project)
        # A re-import of what is all there adds nothing but its own batch (which records that it came).
        assert _project_counts(registry, project) == (*full[:2], 1 if after == (0, 0, 0) else 2)
        assert _content_hash(registry, storage, project) == reference
    _outcomes_say_kills_landed(registry, "import", outcomes)
    _no_orphans(registry, killer, storage)


def _versions(registry: Registry, demo: tuple[Path, Path], tags: list[str]) -> LocalStorage:
    ann, images = demo
    import_file(registry, ann, images=images, project="p")
    with registry.session() as s:
        for tag in tags:
            create_version(s, get_project(s, "p"), tag, seed=SEED)
    return LocalStorage(registry.settings.storage_root)


def _copies(registry: Registry, version_id: int) -> tuple[int, int, int]:
    return (_count(registry, DatasetVersionAsset, DatasetVersionAsset.dataset_version_id == version_id),
            _count(registry, DatasetVersionAnnotation, DatasetVersionAnnotation.dataset_version_id == version_id),
            _count(registry, DatasetVersionClass, DatasetVersionClass.dataset_version_id == version_id))


def test_a_killed_freeze_leaves_a_draft_or_a_verified_version(registry: Registry, env: dict[str, str], tmp_path: Path,
                                                              demo: tuple[Path, Path]) -> None:
    tags = [f"f{k}" for k in range(POINTS)]
    storage = _versions(registry, demo, ["ref", *tags])
    killer = Killer(registry, env, tmp_path)
    killer.reference("version", "freeze", "ref", "--project", "p")

    def version(tag: str) -> Any:
        with registry.session() as s:
            return get_version(s, get_project(s, "p"), tag)

    ref = version("ref")
    outcomes: Counter[str] = Counter()
    for tag, fraction in zip(tags, _fractions(), strict=True):
        killed = killer.kill_at(fraction, "version", "freeze", tag, "--project", "p")
        _intact(registry)
        v = version(tag)
        if v.is_frozen:
            with registry.session() as s:
                assert verify_content_hash(s, v, storage)
            assert v.content_hash == ref.content_hash and _copies(registry, v.id) == _copies(registry, ref.id)
            outcomes["everything" if killed else "finished"] += 1
        else:
            assert v.content_hash is None and _copies(registry, v.id) == (0, 0, 0), f"kill at {fraction:.2f}"
            outcomes["nothing"] += 1
            killer.run("version", "freeze", tag, "--project", "p")
        assert version(tag).content_hash == ref.content_hash
    _outcomes_say_kills_landed(registry, "freeze", outcomes)
    _no_orphans(registry, killer, storage)


def test_a_killed_export_leaves_no_folder_or_the_whole_one(registry: Registry, env: dict[str, str], tmp_path: Path,
                                                            demo: tuple[Path, Path]) -> None:
    storage = _versions(registry, demo, ["v1"])
    with registry.session() as s:
        freeze_version(s, get_project(s, "p"), "v1", storage=storage)
    killer = Killer(registry, env, tmp_path)

    def export(out: str) -> list[Any]:
        return ["export", "yolo", "v1", out, "--project", "p", "--task", "segment"]

    killer.reference(*export("ref"))
    reference = tree_digest(tmp_path / "ref")

    outcomes: Counter[str] = Counter()
    for k, fraction in enumerate(_fractions()):
        out = tmp_path / f"out{k}"
        killed = killer.kill_at(fraction, *export(out.name))
        if out.exists():
            assert tree_digest(out) == reference, f"kill at {fraction:.2f} published a partial export"
            outcomes["everything" if killed else "finished"] += 1
        else:
            outcomes["nothing"] += 1
        killer.run(*export(out.name))
        assert tree_digest(out) == reference
        assert list(tmp_path.glob(f".{out.name}.tmp-*")) == []  # the re-run swept what the kill left
    _outcomes_say_kills_landed(registry, "export", outcomes)
    _no_orphans(registry, killer, storage)
