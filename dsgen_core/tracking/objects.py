"""Objects as tracking sees them: a box in a frame of a sequence.

A sequence is either a video (the object's image is a ``frames`` row of a video asset; the frame
number is its index) or a burst of images: files of one folder whose names end in a frame number
(``seq_03/frame_000005.jpg`` is frame 5 of ``seq_03/frame_``, the layout of a CVAT video task's
export). An image that is neither is no frame of anything, and tracking leaves its objects alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.registry.ingest import frame_position
from dsgen_core.registry.schema import Annotation, Asset, Frame

ID_CHUNK = 5000  # bound parameters per statement, far below both databases' limits

Box = tuple[float, float, float, float]  # x, y, w, h


@dataclass(frozen=True)
class TrackedObject:
    id: int
    project_id: int
    asset_id: int
    file_name: str
    class_id: int | None
    box: Box | None
    sequence: str | None  # "video:<asset id>" or "burst:<folder/prefix>"; None when the image is no frame
    frame: int | None
    video_asset_id: int | None
    track_id: int | None  # the track the object is in (Annotation.track_id)


def load_objects(session: Session, ids: Sequence[int]) -> dict[int, TrackedObject]:
    """The objects of ``ids`` that exist, by id, with the frame each one is in."""
    out: dict[int, TrackedObject] = {}
    a = Annotation
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), ID_CHUNK):
        rows = session.execute(
            select(a.id, Asset.project_id, a.asset_id, Asset.file_name, a.label_class_id, a.bbox_x, a.bbox_y,
                   a.bbox_w, a.bbox_h, a.track_id, Frame.video_asset_id, Frame.frame_idx)
            .join(Asset, Asset.id == a.asset_id)
            .outerjoin(Frame, Frame.image_asset_id == a.asset_id)
            .where(a.id.in_(wanted[i:i + ID_CHUNK]))
        ).all()
        for r in rows:
            box = None if r.bbox_w is None else (float(r.bbox_x), float(r.bbox_y), float(r.bbox_w), float(r.bbox_h))
            sequence, frame = _sequence(r.file_name, r.video_asset_id, r.frame_idx)
            out[r.id] = TrackedObject(r.id, r.project_id, r.asset_id, r.file_name, r.label_class_id, box, sequence,
                                      frame, r.video_asset_id, r.track_id)
    return out


def _sequence(file_name: str, video_asset_id: int | None, frame_idx: int | None) -> tuple[str | None, int | None]:
    if video_asset_id is not None:
        return f"video:{video_asset_id}", frame_idx
    pos = frame_position(file_name)
    if pos is None:
        return None, None
    return f"burst:{pos[0]}", pos[1]
