"""What the folder-layout importers (YOLO, Pascal VOC, ImageNet) share: images found on disk,
probed and keyed by their path in the dataset, one ingest batch, and the source's split names.

A layout importer reads its files into a :class:`LayoutBatch` (images by relative path, classes,
objects, the split each image was listed in) and hands it to :func:`ingest_layout`, which probes
the images, ingests them in the caller's transaction and records each image's split as metadata
``source_split`` (so ``source_split:train`` selects it, and a version's query can use it).

    lb = LayoutBatch(root, "yolo", report)
    lb.image("images/train/1.jpg", split="train")
    lb.objects.append(...)
    result = ingest_layout(session, project, lb, storage=storage, actor="cli")
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.formats.coco.importer import ImportResult
from dsgen_core.formats.images import ImageInfo, ImageProblem, probe_image
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.ingest import ClassRecord, ImageRecord, IngestBatch, ObjectRecord, OnConflict, ingest
from dsgen_core.registry.schema import Asset, Project
from dsgen_core.registry.tagging import set_metadata
from dsgen_core.storage import Storage

SPLIT_KEY = "source_split"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


@dataclass
class LayoutBatch:
    root: Path
    fmt: str  # yolo | voc | imagenet
    report: ValidationReport
    classes: dict[str, ClassRecord] = field(default_factory=dict)
    objects: list[ObjectRecord] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)  # relative key -> file
    splits: dict[str, str] = field(default_factory=dict)  # relative key -> split
    infos: dict[str, ImageInfo] = field(default_factory=dict)
    hashes: list[bytes] = field(default_factory=list)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # relative key -> image extra
    given_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # sizes the source states, for images without a file

    def image(self, path: Path, *, split: str | None = None, required: bool = True) -> str | None:
        """Register an image file; returns its key (its path in the dataset), None when it cannot be used.

        ``required=False``: a listed image whose file is missing is still a sample (without a file,
        as an import without images makes), with a warning; labels that need its size cannot have it.
        """
        full = path.resolve()
        if not full.is_relative_to(self.root.resolve()):
            self.report.error(str(self.root), path.name, "image", f"{path} is outside the dataset folder; not read")
            return None
        key = full.relative_to(self.root.resolve()).as_posix()
        if key not in self.images:
            if not path.is_file() and not required:
                self.report.warning(key, key, "image", "file not found: the image is kept without its file")
                self.images[key] = full
            else:
                try:
                    self.infos[key] = probe_image(full)
                except ImageProblem as exc:
                    self.report.error(key, key, "image", str(exc))
                    return None
                self.images[key] = full
        if split:
            self.splits[key] = split
        return key

    def size(self, key: str) -> tuple[int, int]:
        info = self.infos[key]
        return info.width, info.height

    def cls(self, key: str, **kw: Any) -> str:
        if key not in self.classes:
            self.classes[key] = ClassRecord(key, key, **kw)
        return key

    def text(self, data: bytes) -> None:
        self.hashes.append(hashlib.sha256(data).digest())


def ingest_layout(session: Session, project: Project, lb: LayoutBatch, *, storage: Storage, actor: str | None = None,
                  skip_invalid: bool = False, on_conflict: OnConflict = "error") -> ImportResult:
    import time

    t0 = time.perf_counter()
    images = []
    for k in sorted(lb.images):
        info = lb.infos.get(k)
        w, h = (info.width, info.height) if info else lb.given_sizes.get(k, (None, None))
        images.append(ImageRecord(k, f"{lb.fmt}:{k}", k, w, h,
                                  extra=lb.extra.get(k), file=info, record=k))
    batch = IngestBatch(
        operation="import", audit_action=f"import.{lb.fmt}", format=f"{lb.fmt}/folder", source_uri=str(lb.root.resolve()),
        content_sha256=hashlib.sha256(b"".join(lb.hashes)).hexdigest(), namespace=lb.fmt, images=images,
        classes=list(lb.classes.values()), objects=lb.objects, report=lb.report, file=str(lb.root),
        detail={"splits": dict(sorted({s: sum(1 for v in lb.splits.values() if v == s) for s in set(lb.splits.values())}.items()))})
    result = ingest(session, project, batch, storage=storage, actor=actor, on_conflict=on_conflict,
                    skip_invalid=skip_invalid)
    by_split: dict[str, list[str]] = defaultdict(list)
    for k, s in lb.splits.items():
        by_split[s].append(f"{lb.fmt}:{k}")
    for split, keys in sorted(by_split.items()):
        ids = [i for n in range(0, len(keys), 5_000) for i in session.scalars(
            select(Asset.id).where(Asset.project_id == project.id, Asset.source_key.in_(keys[n:n + 5_000])))]
        if ids:
            set_metadata(session, project, SPLIT_KEY, split, asset_ids=ids, actor=actor)
    return ImportResult(project.name, lb.fmt, len(lb.classes), result, lb.report, seconds=time.perf_counter() - t0)


def find_image(folder: Path, stem: str) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        for e in (ext, ext.upper()):
            p = folder / f"{stem}{e}"
            if p.is_file():
                return p
    return None
