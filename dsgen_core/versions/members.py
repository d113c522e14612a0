"""What a frozen dataset version holds: its member images by split, its classes in order, and which
of its objects are real objects (not crowd regions).

Exports, training, evaluation and ONNX parity all read a version through these, so they agree on
file names, class numbering and what counts as an object. Members and classes are read from the
copies taken when the version froze (``dataset_version_assets``, ``dataset_version_classes``),
never from the live ``assets`` and ``label_classes`` rows, which keep changing.

    for m in version_members(session, v):
        m.asset.id, m.split, m.name
    [c.key for c in class_order(session, v)]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from dsgen_core.registry.schema import DatasetSplit, DatasetVersion, DatasetVersionAsset, DatasetVersionClass


@dataclass
class Member:
    asset: Any  # a row of Asset columns; ORM objects cost too much at 100k images
    split: str
    name: str  # file name inside the export, unique within the version


def version_members(session: Session, v: DatasetVersion) -> list[Member]:
    """The version's images with their split and their file name inside its exports."""
    m = DatasetVersionAsset
    rows = session.execute(
        select(m.asset_id.label("id"), m.file_name, m.source_key, m.sha256, m.storage_uri, m.width, m.height,
               m.external_id, m.extra, m.import_batch_id, DatasetSplit.split)
        .join(DatasetSplit, DatasetSplit.id == m.split_id)
        .where(m.dataset_version_id == v.id)
    ).all()
    # Names come from the file names and source keys, not row ids, so two registries export the same tree.
    rows = sorted(rows, key=lambda r: (r.file_name, r.sha256 or "", r.source_key))
    used: set[str] = set()
    out: list[Member] = []
    for asset in rows:
        name = asset.file_name.replace("\\", "/").strip("/").replace("/", "__")
        if name in used:
            stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
            for tag in ((asset.sha256 or "")[:10], hashlib.sha1(asset.source_key.encode()).hexdigest()[:10]):
                if tag and f"{stem}_{tag}{dot}{ext}" not in used:
                    name = f"{stem}_{tag}{dot}{ext}"
                    break
        used.add(name)
        out.append(Member(asset, asset.split, name))
    return out


@dataclass(frozen=True)
class VersionClass:
    """A class as the version froze it; ``id`` is the label class's id."""

    id: int
    key: str
    display_name: str  # the name the class had in the version's ontology
    supercategory: str | None
    keypoint_spec: dict[str, Any] | None
    external_id: int | None
    extra: dict[str, Any] | None
    in_ontology: bool


def version_classes(session: Session, v: DatasetVersion) -> list[VersionClass]:
    """Every class of the version: its ontology's, and any other its annotations use."""
    c = DatasetVersionClass
    rows = session.execute(
        select(c.label_class_id, c.key, c.display_name, c.supercategory, c.keypoint_spec, c.external_id, c.extra,
               c.in_ontology).where(c.dataset_version_id == v.id)
    ).all()
    return [VersionClass(id=r.label_class_id, key=r.key, display_name=r.display_name, supercategory=r.supercategory,
                         keypoint_spec=r.keypoint_spec, external_id=r.external_id, extra=r.extra,
                         in_ontology=bool(r.in_ontology)) for r in rows]


def class_order(session: Session, v: DatasetVersion) -> list[VersionClass]:
    """The classes of a version's ontology in the order exports (and the models trained on them) number them."""
    return sorted((c for c in version_classes(session, v) if c.in_ontology),
                  key=lambda c: (c.external_id is None, c.external_id or 0, c.key))


def cvat_mask_flag(attributes: Any) -> Any:
    """SQL: the object carries CVAT's attributes (``occluded`` is in every CVAT shape).

    CVAT's COCO export writes every mask as an RLE with ``iscrowd=1``; those are single objects to
    train and evaluate on, unlike COCO's crowd regions, which carry no CVAT attributes.
    """
    return cast(attributes, Text).like('%"occluded":%')  # the key (SQLite and JSONB text alike), not a value


def is_crowd_region(iscrowd: bool | int | None, attributes: dict[str, Any] | None) -> bool:
    """The same rule in Python, for rows already read."""
    return bool(iscrowd) and "occluded" not in (attributes or {})
