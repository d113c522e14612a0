"""Counts of what the registry holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dsgen_core.registry.changes import current_seq
from dsgen_core.registry.schema import Annotation, Asset, LabelClass, Project, Track


def registry_stats(session: Session, project: Project | None = None) -> dict[str, Any]:
    assets = select(func.count()).select_from(Asset).where(Asset.deleted_at.is_(None))
    anns = select(func.count()).select_from(Annotation).join(Asset, Asset.id == Annotation.asset_id)
    classes = select(func.count()).select_from(LabelClass)
    tracks = select(func.count()).select_from(Track)
    if project is not None:
        assets = assets.where(Asset.project_id == project.id)
        anns = anns.where(Asset.project_id == project.id)
        classes = classes.where(LabelClass.project_id == project.id)
        tracks = tracks.where(Track.project_id == project.id)
    return {
        "images": session.scalar(assets) or 0,
        "objects": session.scalar(anns) or 0,
        "categories": session.scalar(classes) or 0,
        "tracks": session.scalar(tracks) or 0,
        "change_seq": current_seq(session),
    }
