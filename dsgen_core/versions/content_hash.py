"""The content hash of a frozen dataset version, and the check that what is stored still matches it.

Exports, training and evaluation read a version only through its frozen copies (members, classes,
annotation snapshot, mask files). Triggers refuse every change to those rows, but a session can
drop a trigger, delete with foreign keys off or edit a mask file, and nothing would notice. So
every reader calls :func:`require_intact` first, and ``dsgen version verify TAG`` runs the same check.

    result = verify_version(session, v, storage)
    result.ok, result.content_hash, result.computed

The hash is independent of row ids and row order, so the same data frozen in another registry (or
on the other database) hashes the same. What it covers depends on the version's ``hash_version``:

- 1 (versions frozen before migration 0003): the ontology's class keys and skeletons, the split
  config, seed and query, each member's content (sha256, else file name) and split, and each
  annotation's class key, geometry, mask content, caption, crowd flag, attributes and track flag;
- 2: also each member's source key, file name, size, source id, extra fields and file header,
  each class's name, supercategory, source id and extra fields, and every other snapshot column of
  each annotation (ids, area, score, provenance): everything an export writes.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, VersionTampered
from dsgen_core.registry.bulk import iter_rows
from dsgen_core.registry.schema import (
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAnnotation,
    DatasetVersionAsset,
    DatasetVersionClass,
    ImportBatch,
)
from dsgen_core.storage.base import Storage

HASH_VERSION = 2  # what a freeze computes now
_V2_ANNOTATION_COLUMNS = ("num_keypoints", "area", "extra", "source", "confidence", "external_id", "source_key")


@dataclass(frozen=True)
class VersionVerification:
    """What ``dsgen version verify`` reports."""

    tag: str
    ok: bool
    content_hash: str | None  # recorded when the version froze
    computed: str  # from what is stored now
    hash_version: int
    images: int
    annotations: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scan_version(session: Session, v: DatasetVersion, storage: Storage | None) -> tuple[str, dict[str, dict[str, int]], int]:
    """The content hash, the annotations per class key and split counted on the way, and the image count.

    Mask files are hashed by content when ``storage`` is given.
    """
    v2 = (v.hash_version or 1) >= 2
    loads, dumps, sha = orjson.loads, orjson.dumps, hashlib.sha256
    sort_keys = orjson.OPT_SORT_KEYS
    h = sha()

    c = DatasetVersionClass
    classes = session.execute(
        select(c.label_class_id, c.key, c.display_name, c.supercategory, cast(c.keypoint_spec, Text), c.external_id,
               cast(c.extra, Text), c.in_ontology).where(c.dataset_version_id == v.id)
    ).all()
    key_of = {r[0]: r[1] for r in classes}
    # JSON parsed and re-dumped with sorted keys: JSONB and SQLite JSON text differ, the content does not.
    preamble: dict[str, Any] = {
        "ontology": sorted(([r[1], _json(r[4])] for r in classes if r[7]), key=lambda e: e[0]),
        "split": v.split_config, "seed": v.seed, "query": v.query,
    }
    if v2:
        preamble["classes"] = sorted(([r[1], r[2], r[3], _json(r[4]), r[5], _json(r[6]), bool(r[7])] for r in classes),
                                     key=lambda e: e[0])
    h.update(dumps(preamble, option=sort_keys))

    m = DatasetVersionAsset
    members = session.execute(
        select(m.asset_id, m.source_key, m.file_name, m.sha256, m.width, m.height, m.external_id, cast(m.extra, Text),
               m.import_batch_id, DatasetSplit.split)
        .join(DatasetSplit, DatasetSplit.id == m.split_id).where(m.dataset_version_id == v.id)
    ).all()
    member_of: dict[int, tuple[str | None, str]] = {}
    lines: list[bytes] = []
    headers = _header_digests(session, {r[8] for r in members if r[8] is not None}) if v2 else {}
    for asset_id, source_key, file_name, sha256, width, height, external_id, extra, batch_id, split in members:
        content = sha256 or f"name:{file_name}"
        if v2:
            member_of[asset_id] = (source_key, split)
            lines.append(dumps([source_key, content, split, file_name, width, height, external_id, _json(extra),
                                headers.get(batch_id, "missing") if batch_id is not None else None], option=sort_keys))
        else:
            member_of[asset_id] = (content, split)
            lines.append(f"{content}\0{split}\n".encode())
    for line in sorted(lines):
        h.update(line)

    t = DatasetVersionAnnotation.__table__
    json_text = ("polygon", "keypoints", "attributes", "extra")
    names = ("asset_id", "label_class_id", "geometry_type", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "polygon",
             "mask_uri", "keypoints", "caption", "iscrowd", "attributes", "track_id",
             *(_V2_ANNOTATION_COLUMNS if v2 else ()))
    cols = [cast(t.c[n], Text).label(n) if n in json_text else t.c[n] for n in names]
    mask_cache: dict[str, str] = {}
    digests: list[bytes] = []
    counted: Counter[tuple[str, str]] = Counter()
    for row in iter_rows(session, select(*cols).where(t.c.dataset_version_id == v.id)):
        (asset_id, class_id, gtype, bx, by, bw, bh, polygon, mask_uri, kps, caption, crowd, attrs, track) = row[:14]
        member, split = member_of.get(asset_id, (None, "(not a member)"))
        label = key_of.get(class_id) if class_id is not None else None
        counted[label or "(none)", split] += 1
        mask = None
        if mask_uri and storage is not None:
            mask = mask_cache.get(mask_uri)
            if mask is None:
                mask = mask_cache[mask_uri] = _mask_digest(storage, mask_uri)
        fields = [member, split, label, gtype, bx, by, bw, bh, polygon and loads(polygon), mask, kps and loads(kps),
                  caption, bool(crowd), attrs and loads(attrs), track is not None]
        if v2:
            num_kps, area, extra, source, confidence, external_id, source_key = row[14:]
            fields += [num_kps, area, extra and loads(extra), source, confidence, external_id, source_key]
        digests.append(sha(dumps(fields, option=sort_keys)).digest())
    for d in sorted(digests):
        h.update(d)
    per_class: dict[str, dict[str, int]] = {}
    for (label, split), n in counted.items():
        per_class.setdefault(label, {})[split] = n
    return h.hexdigest(), per_class, len(members)


def verify_version(session: Session, v: DatasetVersion, storage: Storage | None = None) -> VersionVerification:
    """Recompute a frozen version's hash from what is stored now and compare it with the recorded one."""
    if not v.is_frozen:
        raise DsgenError(f"version {v.version_tag!r} is a draft; only a frozen version has a content hash to verify")
    t0 = time.perf_counter()
    computed, per_class, images = scan_version(session, v, storage)
    return VersionVerification(
        tag=v.version_tag, ok=computed == v.content_hash, content_hash=v.content_hash, computed=computed,
        hash_version=v.hash_version or 1, images=images,
        annotations=sum(n for per_split in per_class.values() for n in per_split.values()),
        seconds=round(time.perf_counter() - t0, 3),
    )


def verify_content_hash(session: Session, v: DatasetVersion, storage: Storage | None = None) -> bool:
    return v.content_hash is not None and verify_version(session, v, storage).ok


def require_intact(session: Session, v: DatasetVersion, storage: Storage | None, *, purpose: str) -> None:
    """Refuse to use a frozen version whose content no longer matches its hash (``purpose``: "to export it")."""
    result = verify_version(session, v, storage)
    if not result.ok:
        raise VersionTampered(
            f"dataset version {v.version_tag!r} no longer matches its content hash (recorded "
            f"{(result.content_hash or '')[:12]}, stored data gives {result.computed[:12]}): its frozen rows or mask "
            f"files were changed outside dsgen; refusing {purpose}. Restore the registry from a backup, or freeze a new "
            "version from the current data")


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _header_digests(session: Session, batch_ids: set[int]) -> dict[int, str]:
    rows = session.execute(select(ImportBatch.id, cast(ImportBatch.header, Text)).where(ImportBatch.id.in_(batch_ids)))
    return {i: hashlib.sha256(orjson.dumps(_json(text), option=orjson.OPT_SORT_KEYS)).hexdigest() for i, text in rows}


def _mask_digest(storage: Storage, uri: str) -> str:
    try:
        return hashlib.sha256(storage.read_bytes(storage.key_of(uri))).hexdigest()
    except FileNotFoundError:
        return "missing"
