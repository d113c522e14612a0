"""Pull what annotators did in a pushed CVAT task back into the registry, as one annotation batch.

Every frame maps back to the asset it was pushed from, every pushed object to its annotation
(``cvat_objects``). Against the fingerprints recorded at the push (or the last pull):

- an object CVAT still has unchanged is left alone, whatever the registry did to it since;
- an object changed in CVAT is updated in place (same annotation id; whoever edited it, a
  person, now answers for it: ``source`` becomes human and a model's score is dropped);
- an object CVAT no longer has is deleted; a new one in CVAT is added (tracks as one object per
  frame, in a track of their own);
- **conflicts**: an object changed (or deleted) in CVAT that was also changed in the registry
  since. The rule: CVAT wins (the annotator's is the newer, human judgement) unless
  ``on_conflict="registry"``; each conflict is reported either way.

A pull that finds nothing to do writes nothing (no batch). The batch goes through the one
ingest path, so the continuous loop reacts to it like to any import.

    result = pull_from_cvat(session, project, 42, storage=storage, actor="cli")
    result.added, result.changed, result.deleted, result.batch_id
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dsgen_core.cvat.connection import (
    CvatServer,
    cvat_client,
    job_annotations,
    job_details,
    task_annotations,
    task_jobs,
    task_labels,
)
from dsgen_core.cvat.shapes import (
    SHAPE_FIELDS,
    Pulled,
    cvat_fingerprint,
    from_cvat,
    registry_fingerprint,
    shape_type,
    track_fingerprint,
    visible_objects,
)
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.ingest import ClassRecord, ImageRecord, IngestBatch, ObjectEdit, ObjectRecord, ingest
from dsgen_core.registry.schema import Annotation, Asset, CvatFrame, CvatObject, CvatTask, LabelClass, Project, utcnow
from dsgen_core.storage.base import Storage

ConflictRule = Literal["cvat", "registry"]


@dataclass
class PullResult:
    task_id: int
    batch_id: int | None
    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # CVAT objects the registry cannot hold (an ellipse, a cuboid)
    jobs_read: int | None = None  # with since: the jobs CVAT changed, the only ones read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_task(session: Session, project: Project, task_id: int, *, server: str | None = None) -> CvatTask:
    """The recorded push of CVAT task ``task_id`` (on ``server``, when the project pushed to several)."""
    stmt = select(CvatTask).where(CvatTask.project_id == project.id, CvatTask.task_id == task_id)
    if server:
        stmt = stmt.where(CvatTask.server == server.rstrip("/"))
    found = list(session.scalars(stmt))
    if not found:
        raise NotFound(f"CVAT task {task_id} was not pushed from project {project.name!r} (see dsgen cvat status)")
    if len(found) > 1:
        raise DsgenError(f"CVAT task {task_id} was pushed to {len(found)} servers; set CVAT_URL to the one meant")
    return found[0]


def pull_from_cvat(session: Session, project: Project, task_id: int | None = None, *, job_id: int | None = None,
                   storage: Storage, on_conflict: ConflictRule = "cvat", actor: str | None = None,
                   server: CvatServer | None = None, since: datetime | Literal["last"] | None = None) -> PullResult:
    """Bring task ``task_id``'s annotations back (or one job's: ``job_id``, its frames only); see the
    module docstring. In the caller's transaction.

    ``since``: read the task only when one of its annotation jobs changed after that time (CVAT's
    ``updated_date``), or, with ``"last"``, when one's ``updated_date`` differs from the one the push
    or last pull saw. Then the whole task is read: CVAT keeps a track that spans jobs, and the
    frames jobs overlap on, as a copy per job, so one job's answer is not the task's.
    """
    if on_conflict not in ("cvat", "registry"):
        raise DsgenError(f"on_conflict must be cvat or registry, not {on_conflict!r}")
    if (task_id is None) == (job_id is None):
        raise DsgenError("pull a task (TASK_ID) or a job (--job ID), one of the two")
    if since is not None and job_id is not None:
        raise DsgenError("--since picks the changed jobs of a task: give TASK_ID, not --job")
    server = server or CvatServer.from_env()
    t = find_task(session, project, task_id, server=server.url) if task_id is not None else \
        _task_of_job(session, project, job_id or 0, server.url)
    if t.status != "pushed":
        raise DsgenError(f"CVAT task {t.task_id} is {t.status}, not pushed: finish it first (dsgen cvat push --resume "
                         f"{t.export_job_id}) or clean it up (dsgen cvat clean {t.export_job_id})")
    assert t.task_id is not None  # pushed
    windows = None
    jobs_read = None
    with cvat_client(server) as client:
        if job_id is not None:
            job = job_details(client, job_id, server.url)
            windows = [(int(job["start_frame"]), int(job["stop_frame"]))]
            data = job_annotations(client, job_id, server.url)
            seen = {**(t.jobs_seen or {}), str(job_id): job.get("updated_date")}
        else:
            jobs = task_jobs(client, t.task_id, server.url)  # before the annotations: a later edit shows next time
            seen = {str(j["id"]): j.get("updated_date") for j in jobs}
            changed = jobs if since is None else [j for j in jobs if _changed(j, since, t.jobs_seen or {})]
            jobs_read = None if since is None else len(changed)
            if not changed:
                t.pulled_at = utcnow()
                session.flush()
                return PullResult(t.task_id, None, jobs_read=0)
            data = task_annotations(client, t.task_id, server.url)
        labels = {lb["id"]: lb for lb in task_labels(client, t.task_id, server.url)}
    result = _apply(session, project, t, data, labels, storage, on_conflict, actor, windows)
    t.jobs_seen = seen
    result.jobs_read = jobs_read
    session.flush()
    return result


def _changed(job: dict[str, Any], since: datetime | Literal["last"], seen: dict[str, Any]) -> bool:
    updated = job.get("updated_date")
    if since == "last":
        return updated is None or seen.get(str(job["id"])) != updated
    if updated is None:
        return True
    when = datetime.fromisoformat(str(updated).replace("Z", "+00:00"))
    return when > (since if since.tzinfo else since.replace(tzinfo=UTC))


def _task_of_job(session: Session, project: Project, job_id: int, server: str) -> CvatTask:
    for t in session.scalars(select(CvatTask).where(CvatTask.project_id == project.id, CvatTask.server == server)):
        if job_id in (t.job_ids or []):
            return t
    raise NotFound(f"CVAT job {job_id} is not a job of a task pushed from project {project.name!r} "
                   "(see dsgen cvat status)")


def _apply(session: Session, project: Project, t: CvatTask, data: dict[str, Any], labels: dict[int, Any],
           storage: Storage, on_conflict: ConflictRule, actor: str | None,
           windows: list[tuple[int, int]] | None = None) -> PullResult:
    result = PullResult(t.task_id or 0, None)
    frames = {f.frame: f.asset_id for f in session.scalars(select(CvatFrame).where(CvatFrame.cvat_task_id == t.id))}
    assets = {a.id: a for a in session.execute(select(Asset.id, Asset.width, Asset.height, Asset.file_name)
                                                .where(Asset.id.in_(list(frames.values()))))}
    known = {(o.kind, o.cvat_id): o for o in session.scalars(select(CvatObject).where(CvatObject.cvat_task_id == t.id))}
    mapped_ids = [o.annotation_id for o in known.values() if o.annotation_id is not None]
    current = {r.id: r for i in range(0, len(mapped_ids), 5_000) for r in session.execute(select(
        Annotation.id, Annotation.asset_id, Annotation.label_class_id, Annotation.geometry_type, Annotation.bbox_x,
        Annotation.bbox_y, Annotation.bbox_w, Annotation.bbox_h, Annotation.polygon, Annotation.mask_uri,
        Annotation.keypoints, Annotation.caption, Annotation.attributes, Annotation.iscrowd)
        .where(Annotation.id.in_(mapped_ids[i:i + 5_000])))}
    if windows is not None:
        # A job holds its frames only: what CVAT no longer has is judged within them, and the task's
        # other objects (and its tracks, which a job only shows in part) are left as they are.
        frame_of = {asset: frame for frame, asset in frames.items()}
        in_job = {tr["id"] for tr in data.get("tracks") or []}
        in_data = {(k, int(o["id"])) for k, o in visible_objects(data) if k != "track"}

        def in_window(key: tuple[str, int], m: CvatObject) -> bool:
            if key[0] == "track":
                return key[1] in in_job
            if key in in_data:
                return True
            row = current.get(m.annotation_id) if m.annotation_id is not None else None
            return row is not None and any(lo <= frame_of[row.asset_id] <= hi for lo, hi in windows)

        everything = known
        known = {k: m for k, m in known.items() if in_window(k, m)}
    else:
        everything = known
    class_of = _classes(session, project, t, labels)
    report = ValidationReport()
    where = f"{t.server}/tasks/{t.task_id}"
    added: list[ObjectRecord] = []
    edits: list[ObjectEdit] = []
    edited_keys: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    refresh: list[tuple[CvatObject, str]] = []  # mapping rows whose CVAT side moved on (conflicts kept)
    member_ids = [int(i) for k, m in known.items() if k[0] == "track" for i in (m.members or {}).values()]
    member_rows = {r.id: r for i in range(0, len(member_ids), 5_000) for r in session.execute(select(
        Annotation.id, Annotation.asset_id, Annotation.label_class_id, Annotation.geometry_type, Annotation.bbox_x,
        Annotation.bbox_y, Annotation.bbox_w, Annotation.bbox_h, Annotation.polygon, Annotation.mask_uri,
        Annotation.keypoints, Annotation.caption, Annotation.attributes).where(Annotation.id.in_(member_ids[i:i + 5_000])))}
    project_classes = list(session.scalars(select(LabelClass).where(LabelClass.project_id == project.id)))
    class_ids = {c.key: c.id for c in project_classes}
    keypoint_names = {c.key: [str(n) for n in (c.keypoint_spec or {}).get("keypoints") or []] for c in project_classes}
    visible: set[int] = set()  # pushed track members CVAT still shows
    tracks = {int(tr["id"]): tr for tr in data.get("tracks") or []}
    track_fp = {tid: track_fingerprint(tr) for tid, tr in tracks.items()}
    same_tracks = {tid for tid, fp in track_fp.items() if (m := known.get(("track", tid))) and m.cvat_fingerprint == fp}
    for kind, obj in visible_objects(data, max(frames) if frames else None):
        if kind == "track" and obj["track"] in same_tracks:
            result.unchanged += 1
            continue
        frame = int(obj["frame"])
        if frame not in frames:
            raise DsgenError(f"{where}: a {kind} on frame {frame}, which the push did not make")
        a = assets[frames[frame]]
        label = class_of.get(int(obj["label_id"]))
        if label is None:
            raise DsgenError(f"{where}: {kind} {obj.get('id')} has label {obj['label_id']}, which the task does not have")
        specs = (t.labels or {}).get(str(obj["label_id"]), {}).get("attributes", {})
        specs = {**{str(at["id"]): [at["name"], "str"] for at in labels[int(obj["label_id"])].get("attributes") or []},
                 **specs}
        if kind != "track":
            seen.add((kind, int(obj["id"])))
        lab = labels[int(obj["label_id"])]
        try:
                pulled = from_cvat(kind if kind != "track" else "shape", obj, {k: (v[0], v[1]) for k, v in specs.items()},
                               a.width or 0, a.height or 0,
                               skeleton=_skeleton_order(lab, keypoint_names.get(label)) if lab.get("type") == "skeleton"
                               else None)
        except (ValueError, KeyError, IndexError) as exc:
            result.skipped.append(f"{kind} {obj.get('id', obj.get('track'))} on frame {frame}: {exc}; left as it is")
            continue
        if kind == "track":
            held = {name for name, _t in specs.values()} | set(SHAPE_FIELDS[:2])
            member = _member(known.get(("track", obj["track"])), frame)
            row = member_rows.get(member) if member is not None else None
            if row is not None:  # a frame of a track dsgen pushed: that object, edited in place when it changed
                attrs = {**{k: v for k, v in (row.attributes or {}).items() if k not in held},
                         **(pulled.attributes or {}), "keyframe": bool(obj.get("keyframe"))}
                if "track_id" in (row.attributes or {}):
                    attrs["track_id"] = row.attributes["track_id"]
                visible.add(row.id)
                if _same(row, pulled, attrs, class_ids.get(label)):
                    result.unchanged += 1
                else:
                    edits.append(ObjectEdit(row.id, _record(len(edits), None, a.id, label, pulled, attrs)))
                continue
            rec = _record(len(added), f"track{obj['track']}@{frame}", a.id, label, pulled,
                          {**(pulled.attributes or {}), "track_id": f"cvat{t.id}:{obj['track']}",
                           "keyframe": bool(obj.get("keyframe"))})
            added.append(rec)
            continue
        key = (kind, int(obj["id"]))
        m = known.get(key)
        if m is None:
            added.append(_record(len(added), f"{kind}{obj['id']}", a.id, label, pulled, pulled.attributes))
            continue
        fp = cvat_fingerprint(kind, obj)
        if fp == m.cvat_fingerprint:
            result.unchanged += 1
            continue
        row = current.get(m.annotation_id) if m.annotation_id is not None else None
        registry_moved = row is None or registry_fingerprint(row) != m.registry_fingerprint
        if registry_moved:
            said = "deleted" if row is None else "changed"
            keep = on_conflict == "registry"
            result.conflicts.append(f"{kind} {obj['id']} (annotation {m.annotation_id}): changed in CVAT and {said} "
                                    f"in the registry since the push; {'the registry' if keep else 'CVAT'} wins")
            if keep:
                refresh.append((m, fp))
                continue
            if row is None:  # gone from the registry: CVAT's object comes back as a new one
                added.append(_record(len(added), f"{kind}{obj['id']}", a.id, label, pulled, pulled.attributes))
                continue
        assert row is not None  # registry_moved covers a deleted row
        # What CVAT could not hold (list values, track bookkeeping) stays; what it holds is taken from it.
        held = {name for name, _t in specs.values()} | set(SHAPE_FIELDS[:2])
        attrs = {**{k: v for k, v in (row.attributes or {}).items() if k not in held}, **(pulled.attributes or {})}
        if pulled.geometry_type == "keypoints" and row.geometry_type == "keypoints":
            pulled = _into_slots(pulled, row, shape_type(obj) == "points")
        edits.append(ObjectEdit(row.id, _record(len(edits), None, a.id, label, pulled, attrs or None)
                                ._replace(iscrowd=bool(row.iscrowd))))
        edited_keys.append(key)
    removals = _track_removals(session, t, tracks, same_tracks, known, added)
    for key, m in known.items():  # frames of pushed tracks CVAT no longer shows (or whole pushed tracks deleted)
        if key[0] == "track" and key[1] not in same_tracks and m.members:
            removals += [int(aid) for aid in m.members.values() if int(aid) in member_rows and int(aid) not in visible]
    removed_keys: list[tuple[str, int]] = [k for k in known if k[0] == "track" and k[1] not in tracks]
    for key, m in known.items():
        if key in seen or key[0] == "track":
            continue
        removed_keys.append(key)
        if m.annotation_id is None:
            continue
        row = current.get(m.annotation_id)
        if row is not None and registry_fingerprint(row) != m.registry_fingerprint:
            keep = on_conflict == "registry"
            result.conflicts.append(f"{key[0]} {key[1]} (annotation {m.annotation_id}): deleted in CVAT and changed "
                                    f"in the registry since the push; {'the registry' if keep else 'CVAT'} wins")
            if keep:
                continue
        if row is not None:
            removals.append(m.annotation_id)
    for m, fp in refresh:
        m.cvat_fingerprint = fp
    if not (added or edits or removals or removed_keys):
        t.pulled_at = utcnow()
        session.flush()
        return result
    batch = IngestBatch(
        operation="pull", audit_action="cvat.pull", format="cvat/annotations", source_uri=where,
        content_sha256=hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest(),
        namespace=f"cvat{t.id}", images=[ImageRecord(aid, "", "", asset_id=aid) for aid in sorted(set(frames.values()))],
        classes=[ClassRecord(k, k) for k in sorted(set(class_of.values()))], objects=added, report=report, file=where,
        source="human", positional_ids=False, track_scope=where, edits=edits, removals=removals,
        detail={"cvat_task": t.task_id, "conflicts": len(result.conflicts)})
    res = ingest(session, project, batch, storage=storage, actor=actor, on_conflict="replace")
    result.batch_id = res.batch_id
    result.added = res.objects_new
    result.changed = res.objects_merged
    result.deleted = len(removals)
    _remember(session, t, data, set(edited_keys), removed_keys, everything)
    gone = set(removals)
    for tid, fp in track_fp.items():
        if tid not in same_tracks:
            m = known.get(("track", tid))
            if m is None:
                session.add(CvatObject(cvat_task_id=t.id, kind="track", cvat_id=tid, annotation_id=None,
                                       cvat_fingerprint=fp, registry_fingerprint=None))
            else:
                m.cvat_fingerprint = fp
                if m.members:
                    m.members = {f: aid for f, aid in m.members.items() if int(aid) not in gone}
    t.pulled_at = utcnow()
    t.last_pull_batch_id = res.batch_id
    session.flush()
    return result


def _into_slots(p: Pulled, row: Any, points: bool) -> Pulled:
    """An edited keypoints object keeps its box (CVAT's points and skeletons have none) and, from a plain
    points shape (only the visible keypoints were sent), the edited points go back into the slots they
    came from, the others kept as the registry has them."""
    if row.bbox_w is not None:
        p = replace(p, bbox=(row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h))
    old = list(row.keypoints or [])
    slots = [i for i in range(0, len(old), 3) if old[i + 2] > 0]
    if points and p.keypoints is not None and len(p.keypoints) == 3 * len(slots):
        new = list(old)
        for k, i in enumerate(slots):
            new[i], new[i + 1] = p.keypoints[3 * k], p.keypoints[3 * k + 1]
        p = replace(p, keypoints=new)
    return p


def _skeleton_order(label: dict[str, Any], names: list[str] | None) -> list[int]:
    """A skeleton label's sublabel ids in the class's keypoint order (CVAT's order where the class names none)."""
    subs = {str(sub["name"]): int(sub["id"]) for sub in label.get("sublabels") or []}
    if names and set(names) <= set(subs):
        return [subs[n] for n in names]
    return list(subs.values())


def _member(m: CvatObject | None, frame: int) -> int | None:
    aid = (m.members or {}).get(str(frame)) if m is not None else None
    return int(aid) if aid is not None else None


def _same(row: Any, p: Pulled, attrs: dict[str, Any], class_id: int | None) -> bool:
    """Whether a pulled object says what the registry row says (to the precision CVAT keeps)."""
    def close(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is b
        return all(abs(float(x) - float(y)) <= 1e-6 for x, y in zip(a, b, strict=True)) and len(a) == len(b)

    box = None if row.bbox_w is None else (row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h)
    poly = row.polygon[0] if row.polygon else None
    return (row.label_class_id == class_id and row.geometry_type == p.geometry_type and close(box, p.bbox)
            and close(poly, p.polygon[0] if p.polygon else None) and (row.attributes or {}) == attrs)


def _track_removals(session: Session, t: CvatTask, tracks: dict[int, Any], same: set[int],
                    known: dict[tuple[str, int], CvatObject], added: list[ObjectRecord]) -> list[int]:
    """Registry objects of tracks CVAT deleted, and of frames a changed track no longer covers."""
    touched = sorted(set(tracks) - same) + [k[1] for k in known if k[0] == "track" and k[1] not in tracks]
    if not touched:
        return []
    keep = {f"cvat{t.id}:{o.source_id}" for o in added if str(o.source_id).startswith("track")}
    assets = [f.asset_id for f in session.scalars(select(CvatFrame).where(CvatFrame.cvat_task_id == t.id))]
    out: list[int] = []
    for tid in touched:
        prefix = f"cvat{t.id}:track{tid}@"
        for i in range(0, len(assets), 5_000):
            out += [r.id for r in session.execute(select(Annotation.id, Annotation.source_key).where(
                Annotation.asset_id.in_(assets[i:i + 5_000]), Annotation.source_key.like(f"{prefix}%")))
                if r.source_key not in keep]
    return out


def _record(position: int, source_id: str | None, asset_id: int, label: str, p: Pulled,
            attributes: dict[str, Any] | None) -> ObjectRecord:
    return ObjectRecord(position, source_id, asset_id, label, p.geometry_type, p.bbox, p.polygon, p.rle, p.keypoints,
                        len(p.keypoints) // 3 if p.keypoints else None, None, p.area, False, attributes, None, None,
                        f"CVAT object {source_id or position}")


def _classes(session: Session, project: Project, t: CvatTask, labels: dict[int, Any]) -> dict[int, str]:
    """CVAT label id -> class key: pushed labels by the class they came from, labels added in CVAT by name."""
    keys = {c.id: c.key for c in session.scalars(select(LabelClass).where(LabelClass.project_id == project.id))}
    out = {int(lid): keys[v["class"]] for lid, v in (t.labels or {}).items() if v["class"] in keys}
    for lid, lb in labels.items():
        out.setdefault(lid, lb["name"])
    return out


def _remember(session: Session, t: CvatTask, data: dict[str, Any], edited: set[tuple[str, int]],
              removed: list[tuple[str, int]], known: dict[tuple[str, int], CvatObject]) -> None:
    """Map what the pull added, and move the fingerprints of what it changed to the new state on both sides."""
    for key in removed:
        session.execute(delete(CvatObject).where(CvatObject.cvat_task_id == t.id, CvatObject.kind == key[0],
                                                 CvatObject.cvat_id == key[1]))
    by_key = {(k, int(o["id"])): (k, o) for k, o in visible_objects(data) if k != "track"}
    new_keys = {f"cvat{t.id}:{k}{i}": (k, i) for (k, i) in by_key
                if (k, i) not in known or known[(k, i)].annotation_id is None}
    a = Annotation
    ids: dict[tuple[str, int], int] = {}
    if new_keys:
        assets = [f.asset_id for f in session.scalars(select(CvatFrame).where(CvatFrame.cvat_task_id == t.id))]
        for i in range(0, len(assets), 5_000):
            for r in session.execute(select(a.id, a.source_key).where(a.asset_id.in_(assets[i:i + 5_000]),
                                                                       a.source_key.in_(list(new_keys)))):
                ids[new_keys[r.source_key]] = r.id
    for key, kind_obj in by_key.items():
        mapped = known[key].annotation_id if key in known else None
        aid = ids.get(key) or (mapped if key in edited else None)
        if aid is None:
            continue
        row = session.execute(select(a.id, a.label_class_id, a.geometry_type, a.bbox_x, a.bbox_y, a.bbox_w,
                                     a.bbox_h, a.polygon, a.mask_uri, a.keypoints, a.caption, a.attributes)
                              .where(a.id == aid)).one()
        m = known.get(key)
        if m is None:
            m = CvatObject(cvat_task_id=t.id, kind=key[0], cvat_id=key[1])
            session.add(m)
        m.annotation_id = aid
        m.cvat_fingerprint = cvat_fingerprint(*kind_obj)
        m.registry_fingerprint = registry_fingerprint(row)
