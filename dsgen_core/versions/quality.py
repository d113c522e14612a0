"""Quality checks of a frozen dataset version: what the pipelines' asset checks ask of it.

Each function answers one question with the offending names (empty list: all good), so a caller
can both decide and explain.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, func, select
from sqlalchemy.orm import Session

from dsgen_core.registry.schema import (
    Base,
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAnnotation,
    DatasetVersionAsset,
    DatasetVersionClass,
)
from dsgen_core.versions.members import class_order


def empty_splits(session: Session, v: DatasetVersion) -> list[str]:
    """Splits the version's split config gives a ratio > 0 that hold no image."""
    sizes = dict(session.execute(
        select(DatasetSplit.split, func.count(DatasetVersionAsset.asset_id))
        .outerjoin(DatasetVersionAsset, DatasetVersionAsset.split_id == DatasetSplit.id)
        .where(DatasetSplit.dataset_version_id == v.id).group_by(DatasetSplit.split)
    ).all())
    return sorted(name for name, ratio in (v.split_config or {}).items() if ratio > 0 and not sizes.get(name))


def split_leaks(session: Session, v: DatasetVersion) -> dict[str, list[str]]:
    """What sits in more than one split: asset ids, image contents (sha256, else file name) and tracks."""
    member = (
        select(DatasetVersionAsset.asset_id, DatasetVersionAsset.split_id, DatasetVersionAsset.sha256,
               DatasetVersionAsset.file_name)
        .where(DatasetVersionAsset.dataset_version_id == v.id).subquery()
    )
    content = func.coalesce(member.c.sha256, "name:" + member.c.file_name)
    snap = DatasetVersionAnnotation

    def leaking(key: SQLColumnExpression[Any], *joins: tuple[type[Base], ColumnElement[bool]]) -> list[str]:
        stmt = select(key).select_from(member)
        for target, on in joins:
            stmt = stmt.join(target, on)
        stmt = stmt.group_by(key).having(func.count(func.distinct(member.c.split_id)) > 1).order_by(key)
        return [str(k) for k in session.scalars(stmt)]

    return {
        "assets": leaking(member.c.asset_id),
        "contents": leaking(content),
        "tracks": leaking(snap.track_id, (snap, (snap.asset_id == member.c.asset_id) & (snap.dataset_version_id == v.id)
                                          & snap.track_id.is_not(None))),
    }


def classes_without_train_examples(session: Session, v: DatasetVersion) -> list[str]:
    """Classes of the version's ontology with no annotation in its train split."""
    trained = set(session.scalars(
        select(DatasetVersionClass.key).distinct()
        .select_from(DatasetVersionAnnotation)
        .join(DatasetVersionClass, (DatasetVersionClass.dataset_version_id == DatasetVersionAnnotation.dataset_version_id)
              & (DatasetVersionClass.label_class_id == DatasetVersionAnnotation.label_class_id))
        .join(DatasetVersionAsset, (DatasetVersionAsset.asset_id == DatasetVersionAnnotation.asset_id)
              & (DatasetVersionAsset.dataset_version_id == DatasetVersionAnnotation.dataset_version_id))
        .join(DatasetSplit, DatasetSplit.id == DatasetVersionAsset.split_id)
        .where(DatasetVersionAnnotation.dataset_version_id == v.id, DatasetSplit.split == "train")
    ))
    return [c.key for c in class_order(session, v) if c.key not in trained]
