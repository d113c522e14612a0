"""Dataset versions: a draft (query + ontology + split config + seed) that freezes into members,
an annotation snapshot and a content hash, and never changes after that.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, select, text
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.query import compile_query
from dsgen_core.registry.bulk import insert_rows, iter_rows
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    AssetMetadata,
    Dataset,
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAnnotation,
    DatasetVersionAsset,
    DatasetVersionClass,
    Frame,
    ImportBatch,
    LabelClass,
    NearDuplicate,
    OntologyVersion,
    Project,
)
from dsgen_core.storage.base import Storage
from dsgen_core.versions.content_hash import HASH_VERSION, scan_version
from dsgen_core.versions.splits import SPLIT_NAMES, assign_splits, parse_split_config

# Every column the snapshot shares with the live annotation, so a column added later is copied too.
SNAPSHOT_COLUMNS = tuple(
    c.name for c in DatasetVersionAnnotation.__table__.columns
    if c.name not in ("dataset_version_id", "annotation_id", "asset_id")
)
# Likewise every column a member copies from its asset.
MEMBER_COLUMNS = tuple(
    c.name for c in DatasetVersionAsset.__table__.columns if c.name not in ("dataset_version_id", "asset_id", "split_id")
)


# A tag names the version's export and insight folders and its URLs: nothing that could climb out of
# them ("..", "/"), start an option ("-x") or need quoting.
TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}")


def get_version(session: Session, project: Project, tag: str) -> DatasetVersion:
    v = session.scalar(select(DatasetVersion).where(DatasetVersion.project_id == project.id, DatasetVersion.version_tag == tag))
    if v is None:
        raise NotFound(f"dataset version {tag!r} does not exist (create it with `dsgen version create {tag}`)")
    return v


def newest_frozen_version(session: Session, project: Project) -> DatasetVersion | None:
    return session.scalars(select(DatasetVersion).where(
        DatasetVersion.project_id == project.id, DatasetVersion.is_frozen.is_(True))
        .order_by(DatasetVersion.frozen_at.desc(), DatasetVersion.id.desc()).limit(1)).first()


def version_exists(session: Session, project: Project, tag: str) -> bool:
    return session.scalar(select(DatasetVersion.id).where(DatasetVersion.project_id == project.id,
                                                          DatasetVersion.version_tag == tag)) is not None


def list_versions(session: Session, project: Project) -> list[DatasetVersion]:
    return list(session.scalars(select(DatasetVersion).where(DatasetVersion.project_id == project.id).order_by(DatasetVersion.id)))


def create_version(
    session: Session,
    project: Project,
    tag: str,
    *,
    query: str = "",
    split: str | dict[str, float] | None = None,
    seed: int = 0,
    include_model: bool = False,
    fresh_splits: bool = False,
    source_splits: bool = False,
    actor: str | None = None,
) -> DatasetVersion:
    """A draft version; nothing is selected until it freezes.

    ``source_splits``: an image no earlier version split takes the split its source named
    (``source_split`` metadata of YOLO, VOC and ImageNet imports) where that is train, val or test.

    Its images keep the split earlier frozen versions of the project gave them (only new ones are
    split), so a model is never tested on what its parent trained on; ``fresh_splits`` splits all anew.
    """
    if not TAG_RE.fullmatch(tag):
        raise DsgenError(f"version tag {tag!r}: use up to 50 letters, digits, '.', '_' or '-', starting with a letter "
                         "or digit (e.g. v3); the tag names folders and URLs")
    if session.scalar(select(DatasetVersion.id).where(DatasetVersion.project_id == project.id, DatasetVersion.version_tag == tag)):
        raise DsgenError(f"dataset version {tag!r} already exists in project {project.name!r}")
    compile_query(query, project_id=project.id)  # a bad query fails now, not at freeze time
    ratios = parse_split_config(split)
    dataset = session.scalar(select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.id))
    if dataset is None:
        dataset = Dataset(project_id=project.id, name=project.name)
        session.add(dataset)
        session.flush()
    v = DatasetVersion(
        dataset_id=dataset.id, project_id=project.id, version_tag=tag, ontology_version_id=project.default_ontology_version_id,
        status="draft", is_frozen=False, query=query, split_config=ratios, seed=seed,
        filter_config={"include_model": include_model, **({"fresh_splits": True} if fresh_splits else {}),
                       **({"source_splits": True} if source_splits else {})},
    )
    session.add(v)
    session.flush()
    audit(session, "version.create", project_id=project.id, entity_type="dataset_version", entity_ids=[v.id],
          detail={"tag": tag, "query": query, "split": ratios, "seed": seed}, actor=actor)
    record_change(session, project_id=project.id, entity="dataset_versions", op="create", entity_id=v.id, detail={"tag": tag})
    return v


def request_freeze(session: Session, project: Project, tag: str, *, actor: str | None = None) -> DatasetVersion:
    """Ask for a freeze; a sensor following the change sequence (or the caller) carries it out."""
    v = get_version(session, project, tag)
    if v.is_frozen:
        return v
    v.freeze_requested_at = datetime.now(UTC)
    session.flush()
    record_change(session, project_id=project.id, entity="dataset_versions", op="freeze_requested", entity_id=v.id,
                  detail={"tag": tag})
    audit(session, "version.freeze_request", project_id=project.id, entity_type="dataset_version", entity_ids=[v.id],
          detail={"tag": tag}, actor=actor)
    return v


@dataclass(frozen=True)
class FreezeResult:
    tag: str
    content_hash: str
    splits: dict[str, int]
    annotations: dict[str, int]
    classes: dict[str, dict[str, int]]
    already_frozen: bool


def _snapshot_classes(session: Session, v: DatasetVersion) -> None:
    """Copy the version's classes (its ontology's, named as there, and any other its snapshot uses)."""
    session.execute(text(
        "INSERT INTO dataset_version_classes (dataset_version_id, label_class_id, key, display_name, supercategory, "
        "keypoint_spec, external_id, extra, in_ontology) "
        "SELECT :vid, lc.id, lc.key, COALESCE(oc.display_name, lc.display_name), lc.supercategory, lc.keypoint_spec, "
        "lc.external_id, lc.extra, oc.label_class_id IS NOT NULL FROM label_classes lc "
        "LEFT JOIN ontology_version_classes oc ON oc.label_class_id = lc.id AND oc.ontology_version_id = :ov "
        "WHERE lc.project_id = :pid AND (oc.label_class_id IS NOT NULL OR lc.id IN "
        "(SELECT label_class_id FROM dataset_version_annotations WHERE dataset_version_id = :vid))"
    ), {"vid": v.id, "ov": v.ontology_version_id or -1, "pid": v.project_id})


def freeze_version(
    session: Session, project: Project, tag: str, *, storage: Storage | None = None, actor: str | None = None
) -> FreezeResult:
    """Select the members, split them, snapshot their annotations and hash it all; then refuse changes.

    ``actor`` (e.g. ``dagster:<run id>``) goes into the audit log and the ``frozen`` change event,
    so whoever follows the change sequence can tell its own freezes from others'.
    """
    v = get_version(session, project, tag)
    project_id = project.id
    if v.is_frozen:
        s = version_summary(session, v)
        return FreezeResult(tag, v.content_hash or "", s.splits, s.annotations, s.classes, True)
    conn = session.connection()
    # The newest annotation batch before the members are read: the next version policy counts the
    # batches after it (read first, so a batch committing meanwhile counts as new, not as seen).
    through_batch = session.scalar(select(func.max(ImportBatch.id)).where(ImportBatch.project_id == project_id,
                                                                          ImportBatch.status == "done"))
    member_q = compile_query(v.query or "", project_id=project_id, session=session).subquery()
    # What exports read of each image is copied into the version: the live row keeps changing.
    rows = {r[0]: r[1:] for r in conn.execute(
        select(Asset.id, *(cast(Asset.extra, Text) if c == "extra" else getattr(Asset, c) for c in MEMBER_COLUMNS))
        .where(Asset.id.in_(select(member_q)))
    )}
    if not rows:
        raise DsgenError(f"version {tag!r}: the query {v.query!r} selects no images; nothing to freeze")
    sha_at, name_at = MEMBER_COLUMNS.index("sha256"), MEMBER_COLUMNS.index("file_name")
    assets = {aid: r[sha_at] or f"name:{r[name_at]}" for aid, r in rows.items()}
    include_model = bool((v.filter_config or {}).get("include_model"))
    ann_filter: list[ColumnElement[bool]] = [Annotation.asset_id.in_(select(member_q))]
    if not include_model:
        ann_filter.append(Annotation.source == "human")

    classes_of: dict[int, set[str]] = defaultdict(set)
    for asset_id, key in iter_rows(session, select(Annotation.asset_id, LabelClass.key).join(
        LabelClass, LabelClass.id == Annotation.label_class_id).where(*ann_filter).distinct()
    ):
        classes_of[asset_id].add(key)
    linked: dict[Any, list[int]] = defaultdict(list)
    for track_id, asset_id in conn.execute(
        select(Annotation.track_id, Annotation.asset_id).where(Annotation.track_id.is_not(None), *ann_filter).distinct()
    ):
        linked[("t", track_id)].append(asset_id)
    for video_id, asset_id in conn.execute(
        select(Frame.video_asset_id, Frame.image_asset_id).where(Frame.image_asset_id.in_(select(member_q)))
    ):
        assert asset_id is not None  # the IN drops frames without an image
        linked[("v", video_id)].append(asset_id)
    # Near-copies (``dsgen duplicates``) share a split, or a test image would have its twin in train.
    for ev_id, group_id, asset_id in conn.execute(
        select(NearDuplicate.embedding_version_id, NearDuplicate.group_id, NearDuplicate.asset_id).where(
            NearDuplicate.project_id == project_id, NearDuplicate.asset_id.in_(select(member_q)))
    ):
        linked[("n", ev_id, group_id)].append(asset_id)

    ratios = v.split_config or parse_split_config(None)
    # Stable splits: an image keeps the split of the newest earlier frozen version that holds it.
    kept: dict[int, str] = {} if (v.filter_config or {}).get("fresh_splits") else dict(conn.execute(
        select(DatasetVersionAsset.asset_id, DatasetSplit.split)
        .join(DatasetSplit, DatasetSplit.id == DatasetVersionAsset.split_id)
        .join(DatasetVersion, DatasetVersion.id == DatasetVersionAsset.dataset_version_id)
        .where(DatasetVersion.project_id == project_id, DatasetVersion.is_frozen.is_(True),
               DatasetVersion.id != v.id, DatasetVersionAsset.asset_id.in_(select(member_q)))
        .order_by(DatasetVersion.id)).all())  # later rows overwrite earlier ones: the newest version wins
    if (v.filter_config or {}).get("source_splits"):
        # The split the source named (YOLO/VOC/ImageNet ``source_split``), for images no earlier version split.
        for asset_id, named in conn.execute(select(AssetMetadata.asset_id, AssetMetadata.value_text).where(
                AssetMetadata.key == "source_split", AssetMetadata.value_text.in_(SPLIT_NAMES),
                AssetMetadata.asset_id.in_(select(member_q)))):
            kept.setdefault(asset_id, str(named))
    assignment = assign_splits(assets, classes_of, linked.values(), ratios, v.seed, fixed=kept)
    split_ids: dict[str, int] = {}
    for name in SPLIT_NAMES:
        if ratios.get(name, 0) > 0:
            sp = DatasetSplit(dataset_version_id=v.id, split=name, ratio=ratios[name])
            session.add(sp)
            session.flush()
            split_ids[name] = sp.id
    insert_rows(conn, "dataset_version_assets", ("asset_id", "split_id", *MEMBER_COLUMNS),
                ((aid, split_ids[s], *rows[aid]) for aid, s in sorted(assignment.split_of.items())),
                constants={"dataset_version_id": v.id})

    # The snapshot is copied inside the database: no row passes through Python.
    cols = ", ".join(SNAPSHOT_COLUMNS)
    src = ", ".join(f"a.{c}" for c in SNAPSHOT_COLUMNS)
    model_clause = "" if include_model else " AND a.source = 'human'"
    conn.exec_driver_sql(
        f"INSERT INTO dataset_version_annotations (dataset_version_id, annotation_id, asset_id, {cols}) "
        f"SELECT m.dataset_version_id, a.id, a.asset_id, {src} FROM annotations a "
        f"JOIN dataset_version_assets m ON m.asset_id = a.asset_id "
        f"WHERE m.dataset_version_id = {int(v.id)}{model_clause}"
    )
    _snapshot_classes(session, v)
    v.hash_version = HASH_VERSION
    content_hash, classes, _ = scan_version(session, v, storage)
    splits = dict(Counter(assignment.split_of.values()))
    if v.ontology_version_id is not None:
        # New classes after this point go into a new ontology version (seed 003).
        ontology = session.get(OntologyVersion, v.ontology_version_id)
        assert ontology is not None  # a foreign key: the version's ontology exists
        ontology.is_frozen = True
    v.content_hash = content_hash
    v.through_batch_id = through_batch
    v.is_frozen = True
    v.status = "frozen"
    v.frozen_at = datetime.now(UTC)
    session.flush()
    audit(session, "version.freeze", project_id=project_id, entity_type="dataset_version", entity_ids=[v.id],
          detail={"tag": tag, "content_hash": content_hash, "splits": splits}, actor=actor)
    record_change(session, project_id=project_id, entity="dataset_versions", op="frozen", entity_id=v.id,
                  count=len(assets), detail={"tag": tag, "content_hash": content_hash, "actor": actor})
    return FreezeResult(tag, content_hash, splits, _annotations_per_split(classes), classes, False)


def _annotations_per_split(classes: dict[str, dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for per_split in classes.values():
        total.update(per_split)
    return dict(total)


@dataclass(frozen=True)
class VersionSummary:
    """What a version is and holds (``dsgen version show``, the dataset_version asset's metadata)."""

    tag: str
    frozen: bool
    status: str
    content_hash: str | None
    query: str | None
    split_config: dict[str, float] | None
    seed: int
    splits: dict[str, int]  # split -> images
    annotations: dict[str, int]  # split -> objects
    classes: dict[str, dict[str, int]]  # class key -> split -> objects
    created_at: str | None
    frozen_at: str | None
    freeze_requested: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def version_summary(session: Session, v: DatasetVersion, counted: FreezeResult | None = None) -> VersionSummary:
    """What a version is and holds; ``counted`` (what freezing it just returned) saves counting again."""
    splits: dict[str, int] = {}
    annotations: dict[str, int] = {}
    classes: dict[str, dict[str, int]] = {}
    if counted is not None:
        splits, annotations, classes = dict(counted.splits), dict(counted.annotations), dict(counted.classes)
    elif v.is_frozen or v.status == "frozen":
        for split, n in session.execute(
            select(DatasetSplit.split, func.count()).join(DatasetVersionAsset, DatasetVersionAsset.split_id == DatasetSplit.id)
            .where(DatasetSplit.dataset_version_id == v.id).group_by(DatasetSplit.split)
        ):
            splits[split] = n
        for split, key, n in session.execute(
            select(DatasetSplit.split, DatasetVersionClass.key, func.count())
            .select_from(DatasetVersionAnnotation)
            .join(DatasetVersionAsset, (DatasetVersionAsset.asset_id == DatasetVersionAnnotation.asset_id)
                  & (DatasetVersionAsset.dataset_version_id == DatasetVersionAnnotation.dataset_version_id))
            .join(DatasetSplit, DatasetSplit.id == DatasetVersionAsset.split_id)
            .outerjoin(DatasetVersionClass, _snapshot_class())
            .where(DatasetVersionAnnotation.dataset_version_id == v.id)
            .group_by(DatasetSplit.split, DatasetVersionClass.key)
        ):
            annotations[split] = annotations.get(split, 0) + n
            classes.setdefault(key or "(none)", {})[split] = n
    if counted is not None or v.is_frozen or v.status == "frozen":
        for name in (v.split_config or {}):
            splits.setdefault(name, 0)
    return VersionSummary(
        tag=v.version_tag, frozen=bool(v.is_frozen), status=v.status, content_hash=v.content_hash, query=v.query,
        split_config=v.split_config, seed=v.seed, splits=splits, annotations=annotations, classes=classes,
        created_at=v.created_at.isoformat() if v.created_at else None,
        frozen_at=v.frozen_at.isoformat() if v.frozen_at else None,
        freeze_requested=v.freeze_requested_at is not None,
    )


@dataclass(frozen=True)
class VersionDiff:
    """What changed from one frozen version to another (``dsgen version diff``)."""

    from_tag: str
    to_tag: str
    images_added: list[str]
    images_removed: list[str]
    images_moved: list[dict[str, str]]
    annotations_added: int
    annotations_removed: int
    # The None key counts annotations without a label class.
    annotations_added_by_class: dict[str | None, int]
    annotations_removed_by_class: dict[str | None, int]
    relabelled: list[dict[str, Any]]
    content_hash: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {"from": d.pop("from_tag"), "to": d.pop("to_tag"), **d}


def diff_versions(session: Session, project: Project, a: str, b: str) -> VersionDiff:
    """What changed from version ``a`` to ``b``: images added/removed/moved, annotations added/removed/relabelled."""
    va, vb = get_version(session, project, a), get_version(session, project, b)
    for v in (va, vb):
        if not v.is_frozen:
            raise DsgenError(f"version {v.version_tag!r} is a draft; freeze it before comparing")

    def members(v: DatasetVersion) -> dict[str, tuple[str, str]]:
        rows = session.execute(
            # By the sample's identity: two images with equal bytes are two members.
            select(DatasetVersionAsset.source_key, DatasetVersionAsset.file_name, DatasetSplit.split)
            .join(DatasetSplit, DatasetSplit.id == DatasetVersionAsset.split_id)
            .where(DatasetVersionAsset.dataset_version_id == v.id)
        ).all()
        # Both are copied for every member when it freezes (the columns are nullable only for the migration).
        return {k or "": (name or "", split) for k, name, split in rows}

    def labels(v: DatasetVersion) -> dict[int, str | None]:
        return dict(session.execute(
            select(DatasetVersionAnnotation.annotation_id, DatasetVersionClass.key)
            .outerjoin(DatasetVersionClass, _snapshot_class())
            .where(DatasetVersionAnnotation.dataset_version_id == v.id)
        ).all())

    ma, mb = members(va), members(vb)
    la, lb = labels(va), labels(vb)
    relabelled = [{"annotation_id": i, "from": la[i], "to": lb[i]} for i in sorted(la.keys() & lb.keys()) if la[i] != lb[i]]
    moved = [{"file_name": mb[k][0], "from": ma[k][1], "to": mb[k][1]} for k in sorted(ma.keys() & mb.keys()) if ma[k][1] != mb[k][1]]
    added_classes = Counter(lb[i] for i in lb.keys() - la.keys())
    removed_classes = Counter(la[i] for i in la.keys() - lb.keys())
    return VersionDiff(
        from_tag=a, to_tag=b,
        images_added=sorted(mb[k][0] for k in mb.keys() - ma.keys()),
        images_removed=sorted(ma[k][0] for k in ma.keys() - mb.keys()),
        images_moved=moved,
        annotations_added=sum(added_classes.values()),
        annotations_removed=sum(removed_classes.values()),
        annotations_added_by_class=dict(added_classes),
        annotations_removed_by_class=dict(removed_classes),
        relabelled=relabelled,
        content_hash={a: va.content_hash, b: vb.content_hash},
    )


def _snapshot_class() -> ColumnElement[bool]:
    """Join condition: a snapshot annotation's class as its version froze it."""
    return ((DatasetVersionClass.dataset_version_id == DatasetVersionAnnotation.dataset_version_id)
            & (DatasetVersionClass.label_class_id == DatasetVersionAnnotation.label_class_id))
