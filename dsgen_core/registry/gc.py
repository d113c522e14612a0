"""Removing the files no registry row refers to (``dsgen gc``, and the Dagster schedule ``storage_gc``).

Files outlive their rows when a process dies between writing the file and committing the row
(kill -9 during an import's mask writes or ZIP unpacking), and when rows go away (deleted images
leave thumbnails and unpacked sources). The registry is the truth: a mask file is kept while a live
annotation or a frozen version's snapshot names it, a thumbnail while an image names it, an
unpacked source file while an image or a frozen version's member copy names it.

    report = collect_garbage(session, storage=storage, sources_dir=home / "registry", dry_run=True)
    report.masks, report.bytes_freed

Files younger than ``min_age`` (one hour by default) are left alone: an import running now writes
its masks and unpacks its ZIP before it commits the rows that name them. Unpacked ZIPs still marked
as staging are removed only when the process that unpacked them is gone.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select, union
from sqlalchemy.orm import Session

from dsgen_core.formats.images import staging_root, sweep_staging
from dsgen_core.registry.bulk import iter_rows
from dsgen_core.registry.changes import audit
from dsgen_core.registry.schema import Annotation, Asset, DatasetVersionAnnotation, DatasetVersionAsset
from dsgen_core.storage import staging
from dsgen_core.storage.base import Storage

GC_MIN_AGE = 3600.0
EXAMPLES = 20


@dataclass
class GarbageReport:
    """What ``collect_garbage`` removed (or, with ``dry_run``, would remove)."""

    masks: int = 0
    thumbnails: int = 0
    source_files: int = 0
    staging_folders: int = 0  # unpacked ZIPs of imports that died
    bytes_freed: int = 0
    kept_young: int = 0  # unreferenced, but younger than min_age
    dry_run: bool = False
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _removed(self, what: str, size: int) -> None:
        self.bytes_freed += size
        if len(self.examples) < EXAMPLES:
            self.examples.append(what)


def collect_garbage(session: Session, *, storage: Storage, sources_dir: Path, min_age: float = GC_MIN_AGE,
                    dry_run: bool = False, actor: str | None = None) -> GarbageReport:
    """Remove masks, thumbnails and unpacked source files that no row names, older than ``min_age`` seconds."""
    t0 = time.time()
    cutoff = t0 - min_age
    report = GarbageReport(dry_run=dry_run)

    mask_uris = union(select(Annotation.mask_uri).where(Annotation.mask_uri.is_not(None)),
                      select(DatasetVersionAnnotation.mask_uri).where(DatasetVersionAnnotation.mask_uri.is_not(None)))
    masks = _keys(storage, _strings(session, mask_uris))
    report.masks = _sweep_storage(storage, "masks", masks, cutoff, report)
    thumbs = _keys(storage, _strings(session, select(Asset.thumbnail_uri).where(Asset.thumbnail_uri.is_not(None))))
    report.thumbnails = _sweep_storage(storage, "thumbnails", thumbs, cutoff, report)

    root = staging_root(sources_dir)
    if root.is_dir():
        prefix = os.path.abspath(root) + os.sep
        used = {os.path.abspath(u) for u in _strings(session, union(
            select(Asset.storage_uri).where(Asset.storage_uri.is_not(None)),
            select(DatasetVersionAsset.storage_uri).where(DatasetVersionAsset.storage_uri.is_not(None)),
        )) if os.path.abspath(u).startswith(prefix)}
        report.staging_folders, report.source_files = _sweep_sources(root, used, cutoff, report)

    report.seconds = round(time.time() - t0, 3)
    if not dry_run:
        audit(session, "storage.gc", project_id=None, detail={k: v for k, v in report.to_dict().items() if k != "examples"},
              actor=actor)
    return report


def _strings(session: Session, stmt: Any) -> Iterable[str]:
    return (row[0] for row in iter_rows(session, stmt if isinstance(stmt, Select) else select(stmt.subquery())))


def _keys(storage: Storage, uris: Iterable[str]) -> set[str]:
    keys = set()
    for uri in uris:
        with contextlib.suppress(Exception):  # a URI of another storage names nothing here
            keys.add(storage.key_of(uri))
    return keys


def _sweep_storage(storage: Storage, prefix: str, used: set[str], cutoff: float, report: GarbageReport) -> int:
    removed = 0
    for f in storage.list_files(prefix):
        if f.key in used:
            continue
        if f.modified > cutoff:
            report.kept_young += 1
            continue
        if not report.dry_run:
            storage.delete(f.key)
        report._removed(f.key, f.size)
        removed += 1
    return removed


def _sweep_sources(root: Path, used: set[str], cutoff: float, report: GarbageReport) -> tuple[int, int]:
    """Unpacked ZIPs: whole folders of dead imports, then single files no image names."""
    sizes = {f: sum(p.stat().st_size for p in f.rglob("*") if p.is_file()) for f in sweep_staging(root, dry_run=True)}
    dead = sweep_staging(root, dry_run=report.dry_run)
    for folder in dead:
        report._removed(str(folder), sizes.get(folder, 0))
    files = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p not in dead):
        if staging.is_marked(folder):
            continue  # an import is unpacking or ingesting it now
        for dirpath, _dirs, names in os.walk(folder):
            for name in names:
                path = os.path.join(dirpath, name)
                if os.path.abspath(path) in used:
                    continue
                st = os.stat(path)
                if st.st_mtime > cutoff:
                    report.kept_young += 1
                    continue
                if not report.dry_run:
                    os.unlink(path)
                report._removed(path, st.st_size)
                files += 1
        if not report.dry_run:
            _remove_empty_dirs(folder)
    return len(dead), files


def _remove_empty_dirs(folder: Path) -> None:
    for dirpath, _dirs, _files in sorted(os.walk(folder, topdown=False), key=lambda t: -len(t[0])):
        with contextlib.suppress(OSError):  # not empty
            os.rmdir(dirpath)
