"""Push a selection of the registry to CVAT as new tasks (seed 001's round-trip, the way out).

The images a query selects go to one task, or several of at most ``max_images_per_task``; each
class of the project's ontology becomes a CVAT label whose attributes come from its objects'
attributes; the chosen objects go in as pre-annotations through CVAT's annotations API (the
exact shapes, not a file format's rounding). Before anything is sent, :class:`LossReport` says
what CVAT cannot hold and what happens to it; ``dry_run`` stops there.

Each step is committed (a transaction of its own) before the next CVAT call: a push that stops half-way leaves its export
job and task rows saying how far it got (a task row is written before CVAT is asked to make
the task, and named so that it can be found there), and ``resume_push`` / ``clean_push``
finish or undo it.

    result = push_to_cvat(registry, "default", query="tag:review", name="review", storage=storage, actor="cli")
    result.tasks[0].url, result.loss_report.items
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dsgen_core.cvat.connection import CvatServer, cvat_call, cvat_client, task_annotations, task_jobs, task_labels
from dsgen_core.cvat.files import FORMATS, IMPORTER, Labels, write_annotations
from dsgen_core.cvat.shapes import (
    AttrSpec,
    attribute_specs,
    cvat_fingerprint,
    polygon_mask,
    registry_fingerprint,
    to_cvat,
    track_fingerprint,
)
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.formats.version_export import place_image
from dsgen_core.query import run_query
from dsgen_core.registry.changes import audit
from dsgen_core.registry.db import Registry
from dsgen_core.registry.ontology import current_ontology, ontology_classes
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    CvatFrame,
    CvatObject,
    CvatTask,
    ExportJob,
    LabelClass,
    Project,
    utcnow,
)
from dsgen_core.storage.base import Storage
from dsgen_core.storage.masks import MaskStore

Which = Literal["human", "model", "all", "none"]
WHICH: tuple[Which, ...] = ("human", "model", "all", "none")


@dataclass
class LossItem:
    """Something of the selection CVAT cannot hold as dsgen has it, and what becomes of it."""

    what: str
    objects: int
    how: str


@dataclass
class LossReport:
    items: list[LossItem] = field(default_factory=list)

    def add(self, what: str, objects: int, how: str) -> None:
        if objects:
            self.items.append(LossItem(what, objects, how))

    def to_dict(self) -> dict[str, Any]:
        return {"items": [asdict(i) for i in self.items]}

    def lines(self) -> list[str]:
        return [f"{i.what}: {i.objects} object(s): {i.how}" for i in self.items] or ["nothing is lost"]


@dataclass
class PushedTask:
    id: int | None
    url: str | None
    name: str
    images: int
    objects: int
    status: str


@dataclass
class PushResult:
    export_job_id: int | None
    tasks: list[PushedTask]
    loss_report: LossReport
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {"export_job_id": self.export_job_id, "dry_run": self.dry_run,
                "tasks": [{"id": t.id, "url": t.url, "name": t.name, "images": t.images, "objects": t.objects,
                           "status": t.status} for t in self.tasks],
                "loss_report": self.loss_report.to_dict()}


@dataclass
class _Plan:
    assets: list[Any]  # rows: id, file_name, storage_uri, width, height
    objects: dict[int, list[Any]]  # asset id -> annotation rows
    classes: list[LabelClass]
    specs: dict[int, dict[str, AttrSpec]]  # class id -> attribute specs
    loss: LossReport
    sendable: set[int]  # annotation ids that go to CVAT
    fmt: str  # json | CVAT for images 1.1 | COCO 1.0
    video: VideoSource | None = None  # the frames are one video's, evenly spaced: a CVAT video task


@dataclass(frozen=True)
class VideoSource:
    """The video a selection's frames come from, and which frame of it each asset is."""

    uri: str
    frame_of: dict[int, int]  # asset id -> frame index in the video
    step: int

    def window(self, assets: list[Any]) -> tuple[int, int]:
        """First and last video frame of a chunk of the selection."""
        return self.frame_of[assets[0].id], self.frame_of[assets[-1].id]


def push_to_cvat(registry: Registry, project_name: str, *, query: str, name: str, storage: Storage,
                 annotations: Which = "all", max_images_per_task: int | None = None, segment_size: int | None = None,
                 cvat_project: int | None = None, dry_run: bool = False, actor: str | None = None,
                 server: CvatServer | None = None, share_root: Path | None = None, fmt: str = "json",
                 cloud_storage: int | None = None, video: bool = True) -> PushResult:
    """Make CVAT tasks of the images ``query`` selects; see the module docstring.

    ``fmt``: how the pre-annotations go: ``json`` through the annotations API (exact), or as a
    "CVAT for images 1.1" / "COCO 1.0" file that CVAT's importer reads (:mod:`dsgen_core.cvat.files`).

    A transaction per step (the registry is not held while CVAT works), so it takes the registry.
    ``share_root``: the images lie in CVAT's shared storage, mounted here at this folder; CVAT reads
    them from there (by their paths under it) instead of receiving them. ``cloud_storage``: the
    images lie in that CVAT cloud storage (a bucket CVAT has attached), whose content this machine
    sees at ``share_root`` (a mount or a synced copy); CVAT reads them from the bucket by key.
    ``video``: when the images are frames of one video, evenly spaced (``dsgen import video``), the
    task is a CVAT video task made of the video file (its start, stop and step), not of images.
    """
    if annotations not in WHICH:
        raise DsgenError(f"--annotations must be one of {', '.join(WHICH)}, not {annotations!r}")
    if max_images_per_task is not None and max_images_per_task < 1:
        raise DsgenError("--max-images-per-task must be at least 1")
    if not name.strip():
        raise DsgenError("--name must not be empty")
    if fmt not in FORMATS:
        raise DsgenError(f"--format must be one of {', '.join(map(repr, FORMATS))}, not {fmt!r}")
    with registry.session() as s:
        project = get_project(s, project_name)
        plan = _plan(s, project, query, annotations, storage, fmt, video=video and share_root is None)
    if cloud_storage is not None and share_root is None:
        raise DsgenError("--cloud-storage needs --share-root: the folder where this machine sees the bucket's files "
                         "(their paths under it are the keys CVAT reads)")
    if share_root is not None:
        _check_shared(plan.assets, share_root)
    chunk = max_images_per_task or len(plan.assets)
    chunks = [plan.assets[i:i + chunk] for i in range(0, len(plan.assets), chunk)]
    names = [name if len(chunks) == 1 else f"{name} ({k + 1}/{len(chunks)})" for k in range(len(chunks))]
    if dry_run:
        tasks = [PushedTask(None, None, n, len(c), sum(len(plan.objects.get(a.id, [])) for a in c), "dry-run")
                 for n, c in zip(names, chunks, strict=True)]
        return PushResult(None, tasks, plan.loss, True)
    server = server or CvatServer.from_env()
    with cvat_client(server) as opened:  # reachable and logged in, before anything is recorded
        client: Any = opened
        if cloud_storage is not None:
            with cvat_call(f"read cloud storage {cloud_storage}", server.url):
                client.api_client.cloudstorages_api.retrieve(cloud_storage)
        with registry.session() as s:
            project = get_project(s, project_name)
            job = ExportJob(project_id=project.id, target="cvat", status="running", external_url=None,
                            filter_snapshot={"query": query, "annotations": annotations, "images": len(plan.assets),
                                             "max_images_per_task": max_images_per_task, "segment_size": segment_size,
                                             "cvat_project": cvat_project, "name": name, "server": server.url,
                                             "share_root": str(share_root) if share_root else None,
                                             "cloud_storage": cloud_storage, "video": video,
                                             "format": fmt},
                            log="")
            s.add(job)
            s.flush()
            rows = []
            token = uuid.uuid4().hex[:8]  # job ids repeat across registries pushing to one server; this does not
            for k, (n, c) in enumerate(zip(names, chunks, strict=True)):
                # The name finds a task CVAT made just before a stop that left its id unrecorded.
                row = CvatTask(export_job_id=job.id, project_id=project.id, server=server.url,
                               name=f"{n} [dsgen {job.id}.{token}]", chunk=k, status="creating", frames=len(c))
                s.add(row)
                rows.append(row)
            s.flush()
            for row, c in zip(rows, chunks, strict=True):
                s.add_all(CvatFrame(cvat_task_id=row.id, frame=i, asset_id=a.id, name=nm)
                          for i, (a, nm) in enumerate(zip(c, _frame_names(c, share_root, plan.video), strict=True)))
            audit(s, "cvat.push", project_id=project.id, entity_type="export_job", entity_ids=[job.id],
                  detail={"query": query, "tasks": len(rows), "images": len(plan.assets), "server": server.url,
                          "loss": plan.loss.to_dict()}, actor=actor)
            job_id = job.id
        # Committed: the push is recorded before CVAT is asked for anything.
        _run(registry, client, job_id, plan, storage, server, segment_size, cvat_project, share_root=share_root,
             cloud_storage=cloud_storage)
    return _result(registry, job_id, plan.loss)


def resume_push(registry: Registry, project_name: str, export_job_id: int, *, storage: Storage,
                server: CvatServer | None = None) -> PushResult:
    """Finish a push that stopped: tasks not yet made are made, half-made ones are completed."""
    with registry.session() as s:
        project = get_project(s, project_name)
        job = _job(s, project, export_job_id)
        snap = job.filter_snapshot or {}
        plan = _plan(s, project, snap.get("query", ""), snap.get("annotations", "all"), storage,
                     snap.get("format") or "json", video=snap.get("video", True) and not snap.get("share_root"),
                     only=[f.asset_id for t in _tasks(s, job.id) for f in _frames(s, t.id)])
    share = snap.get("share_root")
    server = server or CvatServer.from_env()
    with cvat_client(server) as client:
        _run(registry, client, export_job_id, plan, storage, server, snap.get("segment_size"),
             snap.get("cvat_project"), resuming=True, share_root=Path(share) if share else None,
             cloud_storage=snap.get("cloud_storage"))
    return _result(registry, export_job_id, plan.loss)


def clean_push(registry: Registry, project_name: str, export_job_id: int, *, server: CvatServer | None = None,
               actor: str | None = None) -> list[PushedTask]:
    """Delete in CVAT the tasks of a push that did not finish (found by id, or by name when the id was not
    recorded), and mark them removed; finished tasks stay."""
    with registry.session() as s:
        project = get_project(s, project_name)
        job = _job(s, project, export_job_id)
        undone = [(t.id, t.task_id, t.name) for t in _tasks(s, job.id) if t.status not in ("pushed", "removed")]
    if not undone:
        return []
    server = server or CvatServer.from_env()
    removed = []
    with cvat_client(server) as client:
        for row_id, task_id, name in undone:
            ids = [task_id] if task_id is not None else _find_by_name(client, name, server.url)
            for tid in ids:
                with cvat_call(f"delete task {tid}", server.url):
                    client.api_client.tasks_api.destroy(tid)  # type: ignore[attr-defined]
            with registry.session() as s:
                t = s.get(CvatTask, row_id)
                assert t is not None
                t.status = "removed"
                removed.append(PushedTask(task_id, t.url, name, t.frames, 0, "removed"))
    with registry.session() as s:
        stopped = s.get(ExportJob, export_job_id)
        assert stopped is not None
        stopped.status = "failed"
        stopped.log += f"cleaned: {len(undone)} unfinished task(s) removed from CVAT\n"
        audit(s, "cvat.clean", project_id=stopped.project_id, entity_type="export_job", entity_ids=[stopped.id],
              detail={"removed": [t.id for t in removed]}, actor=actor)
    return removed


# --------------------------------------------------------------------------- planning


def _plan(session: Session, project: Project, query: str, which: str, storage: Storage, fmt: str = "json",
          only: list[int] | None = None, video: bool = False) -> _Plan:
    ids = only if only is not None else run_query(session, project, query)
    assets = []
    missing = []
    for i in range(0, len(ids), 10_000):
        for a in session.execute(select(Asset.id, Asset.file_name, Asset.storage_uri, Asset.width, Asset.height,
                                        Asset.asset_type).where(Asset.id.in_(ids[i:i + 10_000]))):
            if a.asset_type != "image":
                continue  # a video's frames are images of their own; the video file is not
            if not a.storage_uri or not os.path.isfile(a.storage_uri):
                missing.append(f"asset {a.id} ({a.file_name})")
            assets.append(a)
    if not assets:
        raise DsgenError(f"no images match {query!r} in project {project.name!r}: nothing to push")
    if missing:
        raise DsgenError(f"{len(missing)} image(s) have no file to upload (imported without --images?): "
                         f"{', '.join(missing[:5])}")
    assets.sort(key=lambda a: a.id)
    source = _video_source(session, assets) if video else None
    if source is not None:
        assets.sort(key=lambda a: source.frame_of[a.id])
    objects: dict[int, list[Any]] = defaultdict(list)
    if which != "none":
        an = Annotation
        cond = [] if which == "all" else [an.source == which]
        aid = [x.id for x in assets]
        for i in range(0, len(aid), 5_000):
            for r in session.execute(select(
                    an.id, an.asset_id, an.label_class_id, an.geometry_type, an.bbox_x, an.bbox_y, an.bbox_w,
                    an.bbox_h, an.polygon, an.mask_uri, an.keypoints, an.caption, an.attributes, an.confidence,
                    an.source, an.track_id).where(an.asset_id.in_(aid[i:i + 5_000]), *cond).order_by(an.id)):
                objects[r.asset_id].append(r)
    onto = ontology_classes(session, current_ontology(session, project).id)
    used = {r.label_class_id for rs in objects.values() for r in rs} - {c.id for c in onto} - {None}
    classes = onto + list(session.scalars(select(LabelClass).where(LabelClass.id.in_(used)))) if used else onto
    by_class: dict[int, list[dict[str, Any] | None]] = defaultdict(list)
    for rs in objects.values():
        for r in rs:
            if r.label_class_id is not None:
                by_class[r.label_class_id].append(r.attributes)
    loss = LossReport()
    specs: dict[int, dict[str, AttrSpec]] = {}
    unsendable: Counter[str] = Counter()
    for c in classes:
        specs[c.id], bad = attribute_specs(by_class.get(c.id, []), c.attribute_schema)
        for b in bad:
            unsendable[b] += sum(1 for at in by_class.get(c.id, []) if at and b in at)
    sendable: set[int] = set()
    counts: Counter[str] = Counter()
    skeletons = skeleton_classes(classes, objects)
    for rs in objects.values():
        for r in rs:
            if r.label_class_id is None:
                counts["unlabelled"] += 1
                continue
            if r.geometry_type == "caption":
                counts["caption"] += 1
                continue
            if fmt == "COCO 1.0" and r.geometry_type in ("label", "polyline", "keypoints"):
                counts["not_coco"] += 1
                continue
            if (r.geometry_type == "keypoints" and r.label_class_id not in skeletons and r.keypoints
                    and any(r.keypoints[i] == 0 for i in range(2, len(r.keypoints), 3))):
                counts["invisible_keypoints"] += 1
            if r.geometry_type == "polygon" and r.polygon and len(r.polygon) > 1:
                counts["multipart"] += 1
            if r.confidence is not None:
                counts["confidence"] += 1
            if r.track_id is not None:
                counts["track"] += 1
            sendable.add(r.id)
    loss.add("model confidence", counts["confidence"],
             "CVAT has no score: not sent; kept in the registry, and kept on pull unless an annotator changes the object")
    loss.add("captions", counts["caption"], "CVAT has no caption shape: not sent; kept in the registry")
    loss.add("objects without a class", counts["unlabelled"], "CVAT needs a label: not sent; kept in the registry")
    for attr, n in sorted(unsendable.items()):
        loss.add(f"attribute {attr!r}", n, "a list, a mapping or values of mixed types: CVAT attributes are text "
                                           "of one type; not sent, kept in the registry")
    loss.add("polygons with several parts", counts["multipart"],
             "CVAT polygons have one part: sent as a mask of the same pixels; unchanged on pull unless edited")
    loss.add("invisible keypoints of classes without named keypoints", counts["invisible_keypoints"],
             "sent as CVAT points, which have no visibility: only visible points are sent (classes with named "
             "keypoints go as CVAT skeletons, visibility included); unchanged on pull unless edited")
    loss.add("image-level labels, polylines and keypoints", counts["not_coco"],
             "COCO 1.0 (as CVAT imports it) holds boxes, polygons and masks only: not sent; kept in the registry "
             "(push with --format json or \"CVAT for images 1.1\" to send them)")
    loss.add("objects of tracks", counts["track"],
             "COCO 1.0 has no tracks: sent as separate shapes, one per frame; the registry keeps the track"
             if fmt == "COCO 1.0" else
             "sent as CVAT tracks (keyframes; CVAT interpolates the frames between) when a track's objects share "
             "label, shape type and attributes (skeletons go as separate skeletons), else as separate shapes; "
             "the registry keeps the track either way")
    n_meta = _count_object_extras(session, sendable)
    loss.add("object tags, metadata, groups and relations", n_meta,
             "CVAT has no place for them: kept in the registry, attached to the same objects after a pull")
    return _Plan(assets, objects, classes, specs, loss, sendable, fmt, source)


def _video_source(session: Session, assets: list[Any]) -> VideoSource | None:
    """The one video whose evenly spaced frames ``assets`` all are (its file at hand), else None."""
    from dsgen_core.registry.schema import Frame

    ids = [a.id for a in assets]
    rows: list[Any] = []
    for i in range(0, len(ids), 5_000):
        rows += session.execute(select(Frame.image_asset_id, Frame.video_asset_id, Frame.frame_idx)
                                .where(Frame.image_asset_id.in_(ids[i:i + 5_000]))).all()
    videos = {r.video_asset_id for r in rows}
    if len(rows) != len(ids) or len(videos) != 1:
        return None
    uri = session.scalar(select(Asset.storage_uri).where(Asset.id == videos.pop()))
    if not uri or not os.path.isfile(uri):
        return None
    idx = sorted(r.frame_idx for r in rows)
    if len(set(idx)) != len(idx):
        return None
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    if any(b - a != step for a, b in pairwise(idx)):
        return None
    return VideoSource(uri, {r.image_asset_id: r.frame_idx for r in rows}, step)


def _count_object_extras(session: Session, ids: set[int]) -> int:
    from dsgen_core.registry.schema import AnnotationGroupMember, AnnotationMetadata, AnnotationRelation, AnnotationTag

    if not ids:
        return 0
    found: set[int] = set()
    ordered = sorted(ids)
    for i in range(0, len(ordered), 5_000):
        part = ordered[i:i + 5_000]
        found.update(session.scalars(select(AnnotationTag.annotation_id).where(AnnotationTag.annotation_id.in_(part))))
        found.update(session.scalars(select(AnnotationMetadata.annotation_id)
                                     .where(AnnotationMetadata.annotation_id.in_(part))))
        found.update(session.scalars(select(AnnotationGroupMember.annotation_id)
                                     .where(AnnotationGroupMember.annotation_id.in_(part))))
        found.update(session.scalars(select(AnnotationRelation.from_annotation_id)
                                     .where(AnnotationRelation.from_annotation_id.in_(part))))
    return len(found)


def _check_shared(assets: list[Any], share_root: Path) -> None:
    root = share_root.resolve()
    outside = [f"asset {a.id} ({a.storage_uri})" for a in assets if not Path(a.storage_uri).resolve().is_relative_to(root)]
    if outside:
        raise DsgenError(f"{len(outside)} image(s) are not under the shared folder {share_root}: {', '.join(outside[:3])}")


def _frame_names(assets: list[Any], share_root: Path | None = None, video: VideoSource | None = None) -> list[str]:
    """Upload names: the file's own name, made unique in the task with the asset id where two share one;
    from shared storage, the file's path under the share (CVAT names the frame so); of a video
    task, ``frame_000042``, as CVAT's exports name its frames (the video's frame number)."""
    if video is not None:
        return [f"frame_{video.frame_of[a.id]:06d}" for a in assets]
    if share_root is not None:
        root = share_root.resolve()
        return [Path(a.storage_uri).resolve().relative_to(root).as_posix() for a in assets]
    counts = Counter(os.path.basename(a.file_name) for a in assets)
    return [os.path.basename(a.file_name) if counts[os.path.basename(a.file_name)] == 1
            else f"{a.id}_{os.path.basename(a.file_name)}" for a in assets]


# --------------------------------------------------------------------------- the CVAT side


def _run(registry: Registry, client: Any, job_id: int, plan: _Plan, storage: Storage, server: CvatServer,
         segment_size: int | None, cvat_project: int | None, *, resuming: bool = False,
         share_root: Path | None = None, cloud_storage: int | None = None) -> None:
    by_id = {a.id: a for a in plan.assets}
    try:
        with registry.session() as s:
            todo = [(t.id, [(f.asset_id, f.name) for f in _frames(s, t.id)])
                    for t in _tasks(s, job_id) if t.status not in ("pushed", "removed")]
        for row_id, frames in todo:
            _push_task(registry, client, server, row_id, [by_id[a] for a, _ in frames], [n for _, n in frames],
                       plan, storage, segment_size, cvat_project, resuming, share_root, cloud_storage)
    except BaseException as exc:
        with registry.session() as s:
            job = s.get(ExportJob, job_id)
            assert job is not None
            job.status = "failed"
            job.log += f"stopped: {exc}\n"
            job.updated_at = utcnow()
        raise
    with registry.session() as s:
        job = s.get(ExportJob, job_id)
        assert job is not None
        job.status = "done"
        job.external_url = next((t.url for t in _tasks(s, job_id) if t.url), None)
        job.updated_at = utcnow()


def _push_task(registry: Registry, client: Any, server: CvatServer, row_id: int, assets: list[Any],
               names: list[str], plan: _Plan, storage: Storage, segment_size: int | None,
               cvat_project: int | None, resuming: bool, share_root: Path | None = None,
               cloud_storage: int | None = None) -> None:
    """Make one task, step by step, each step committed: create, upload, annotate."""
    from cvat_sdk import models

    with registry.session() as s:
        t = s.get(CvatTask, row_id)
        assert t is not None
        status, task_id, name = t.status, t.task_id, t.name
    if task_id is None:
        # On a resume, CVAT may have made the task just before the stop that left its id unrecorded.
        found = _find_by_name(client, name, server.url) if resuming else []
        if found:
            task_id = found[0]
        else:
            spec: dict[str, Any] = {"name": name}
            if cvat_project is not None:
                spec["project_id"] = cvat_project
            else:
                skeletons = skeleton_classes(plan.classes, plan.objects)
                with cvat_call(f"describe the labels of task {name!r}", server.url):
                    spec["labels"] = [_label_request(c, plan.specs[c.id], c.id in skeletons) for c in plan.classes]
            if segment_size:
                spec["segment_size"] = segment_size
            with cvat_call(f"create task {name!r}", server.url):
                created, _ = client.api_client.tasks_api.create(models.TaskWriteRequest(**spec))
            task_id = created.id
        status = "uploading"
        with registry.session() as s:
            t = s.get(CvatTask, row_id)
            assert t is not None
            t.task_id, t.url, t.status = task_id, f"{server.url}/tasks/{task_id}", status
    if status in ("creating", "uploading"):
        task = _retrieve(client, task_id, server)
        if not task.size and share_root is not None:
            from cvat_sdk.core.proxies.tasks import ResourceType

            where = "shared" if cloud_storage is None else f"cloud storage {cloud_storage}'s"
            params: dict[str, Any] = {"image_quality": 95, "sorting_method": "predefined"}
            if cloud_storage is not None:  # CVAT reads a bucket through its chunk cache only
                params.update(cloud_storage_id=cloud_storage, use_cache=True)
            with cvat_call(f"make task {task_id} from {len(names)} {where} images", server.url):
                task.upload_data(names, resource_type=ResourceType.SHARE, params=params)
        elif not task.size and plan.video is not None:
            first, last = plan.video.window(assets)
            with cvat_call(f"upload video frames {first}-{last} (step {plan.video.step}) to task {task_id}",
                           server.url):
                task.upload_data([Path(plan.video.uri)], params={
                    "image_quality": 95, "start_frame": first, "stop_frame": last, "frame_step": plan.video.step})
        elif not task.size:
            with tempfile.TemporaryDirectory(prefix="dsgen-cvat-") as tmp:
                files = [Path(tmp) / n for n in names]
                for a, f in zip(assets, files, strict=True):
                    place_image(a.storage_uri, f)
                with cvat_call(f"upload {len(files)} images to task {task_id}", server.url):
                    task.upload_data(files, params={"image_quality": 95, "sorting_method": "predefined"})
        if plan.video is not None:
            _check_video(client, task_id, assets, plan.video, server)
        else:
            _check_frames(client, task_id, names, server, shared=share_root is not None)
        status = "annotating"
        with registry.session() as s:
            t = s.get(CvatTask, row_id)
            assert t is not None
            t.status = status
    if status == "annotating":
        with registry.session() as s:
            t = s.get(CvatTask, row_id)
            assert t is not None
            _put_annotations(s, client, server, t, assets, plan, storage)
            jobs = task_jobs(client, task_id, server.url)
            t.job_ids = sorted(j["id"] for j in jobs)
            t.jobs_seen = {str(j["id"]): j.get("updated_date") for j in jobs}  # pull --since compares with these
            t.status = "pushed"
            t.pushed_at = utcnow()
            job = s.get(ExportJob, t.export_job_id)
            assert job is not None
            job.log += f"task {task_id}: {t.frames} images pushed\n"


def _label_request(c: LabelClass, specs: dict[str, AttrSpec], skeleton: bool) -> Any:
    from cvat_sdk import models

    attributes = [models.AttributeRequest(**s.request()) for s in specs.values()]
    if not skeleton:
        return models.PatchedLabelRequest(name=c.key, attributes=attributes)
    names = [str(n) for n in (c.keypoint_spec or {}).get("keypoints") or []]
    return models.PatchedLabelRequest(name=c.key, type="skeleton", attributes=attributes, svg=skeleton_svg(
        names, (c.keypoint_spec or {}).get("skeleton") or []), sublabels=[
        models.SublabelRequest(name=n, type="points") for n in names])


def skeleton_svg(names: list[str], edges: list[Any]) -> str:
    """CVAT's drawing of a skeleton: a node per keypoint (on a circle), COCO's 1-based edges between them."""
    import math

    pos = [(50 + 40 * math.cos(2 * math.pi * i / max(len(names), 1)),
            50 + 40 * math.sin(2 * math.pi * i / max(len(names), 1))) for i in range(len(names))]
    lines = "".join(f'<line x1="{pos[a - 1][0]:.2f}" y1="{pos[a - 1][1]:.2f}" x2="{pos[b - 1][0]:.2f}" '
                    f'y2="{pos[b - 1][1]:.2f}" stroke="black" data-type="edge" data-node-from="{a}" '
                    f'stroke-width="0.5" data-node-to="{b}"></line>'
                    for a, b in edges if 1 <= a <= len(names) and 1 <= b <= len(names))
    nodes = "".join(f'<circle r="1.5" stroke="black" fill="#b3b3b3" cx="{x:.2f}" cy="{y:.2f}" stroke-width="0.1" '
                    f'data-type="element node" data-element-id="{i + 1}" data-node-id="{i + 1}" '
                    f'data-label-name="{n}"></circle>' for i, ((x, y), n) in enumerate(zip(pos, names, strict=True)))
    return lines + nodes


def skeleton_classes(classes: list[LabelClass], objects: dict[int, list[Any]]) -> set[int]:
    """Classes that go to CVAT as skeletons: named keypoints, and keypoint objects only."""
    kinds: dict[int, set[str]] = defaultdict(set)
    for rs in objects.values():
        for r in rs:
            if r.label_class_id is not None:
                kinds[r.label_class_id].add(r.geometry_type)
    return {c.id for c in classes if (c.keypoint_spec or {}).get("keypoints") and kinds.get(c.id) == {"keypoints"}}


def _retrieve(client: Any, task_id: int, server: CvatServer) -> Any:
    with cvat_call(f"read task {task_id}", server.url):
        return client.tasks.retrieve(task_id)


def _find_by_name(client: Any, name: str, url: str) -> list[int]:
    from cvat_sdk.core.helpers import get_paginated_collection

    with cvat_call(f"look for task {name!r}", url):
        found = get_paginated_collection(client.api_client.tasks_api.list_endpoint, name=name)
    return [t.id for t in found if t.name == name]


def _check_frames(client: Any, task_id: int, names: list[str], server: CvatServer, *, shared: bool = False) -> None:
    with cvat_call(f"read the frames of task {task_id}", server.url):
        meta, _ = client.api_client.tasks_api.retrieve_data_meta(task_id)
    got = [f.name.lstrip("/") if shared else os.path.basename(f.name) for f in meta.frames]
    if got != names:
        raise DsgenError(f"CVAT task {task_id} holds frames {got[:3]}... where dsgen uploaded {names[:3]}...: "
                         "the frame order is not the one sent, so frames cannot be mapped back")


def _check_video(client: Any, task_id: int, assets: list[Any], video: VideoSource, server: CvatServer) -> None:
    with cvat_call(f"read the frames of task {task_id}", server.url):
        meta, _ = client.api_client.tasks_api.retrieve_data_meta(task_id)
    first, last = video.window(assets)
    want = (len(assets), first, last, f"step={video.step}")
    got = (meta.size, meta.start_frame, meta.stop_frame, meta.frame_filter or "step=1")  # no filter: every frame
    if got != want:
        raise DsgenError(f"CVAT video task {task_id} holds {got[0]} frames ({got[1]}-{got[2]}, {got[3] or 'every'}) "
                         f"where dsgen sent {want[0]} ({want[1]}-{want[2]}, {want[3] or 'every'}): frames cannot be "
                         "mapped back")


def _put_annotations(session: Session, client: Any, server: CvatServer, t: CvatTask, assets: list[Any],
                     plan: _Plan, storage: Storage) -> None:
    from cvat_sdk import models

    assert t.task_id is not None  # made before its annotations
    by_name = {lb["name"]: lb for lb in task_labels(client, t.task_id, server.url)}
    lost = [c.key for c in plan.classes if c.key not in by_name]
    if lost:
        raise DsgenError(f"CVAT task {t.task_id} has no label for class(es) {', '.join(lost[:10])} "
                         "(its CVAT project must have them)")
    label_of = {c.id: by_name[c.key] for c in plan.classes}
    t.labels = {str(lb["id"]): {"class": cid, "attributes": {
        str(a["id"]): [a["name"], plan.specs[cid][a["name"]].pytype if a["name"] in plan.specs[cid] else "str"]
        for a in lb.get("attributes") or []}} for cid, lb in label_of.items()}
    masks = MaskStore(storage)
    sent: list[tuple[str, dict[str, Any], int, str]] = []  # kind, request, annotation id, registry fingerprint
    tracked: dict[int, list[tuple[dict[str, Any], Any]]] = defaultdict(list)  # registry track -> its shapes
    for frame, a in enumerate(assets):
        for r in plan.objects.get(a.id, []):
            if r.id not in plan.sendable:
                continue
            lb = label_of[r.label_class_id]
            spec_ids = {at["name"]: at["id"] for at in lb.get("attributes") or []}
            rle = None
            if r.mask_uri:
                rle = masks.get(r.mask_uri)
            elif r.geometry_type == "polygon" and r.polygon and len(r.polygon) > 1 and a.width and a.height:
                rle = polygon_mask(r.polygon, a.width, a.height)
            out = to_cvat(r, frame=frame, label_id=lb["id"], spec_ids=spec_ids, specs=plan.specs[r.label_class_id],
                          rle=rle, source="auto" if r.source == "model" else "manual",
                          skeleton=[sub["id"] for sub in lb.get("sublabels") or []] if lb.get("type") == "skeleton"
                          else None)
            if out is not None:
                sent.append((out[0], out[1], r.id, registry_fingerprint(r)))
                if out[0] == "shape" and r.track_id is not None:
                    tracked[r.track_id].append((out[1], r))
    tracks = cvat_tracks(tracked, len(assets)) if plan.fmt != "COCO 1.0" else []
    in_tracks = {r.id for _req, members in tracks for r in members.values()}
    sent = [e for e in sent if e[2] not in in_tracks]
    if plan.fmt == "json":
        with cvat_call(f"upload {len(sent) + len(in_tracks)} annotations to task {t.task_id}", server.url):
            # Built in here: the SDK checks values as it builds them, and a refusal is a one-line error too.
            shapes = [models.LabeledShapeRequest(**_typed(req)) for kind, req, _, _ in sent if kind == "shape"]
            tags = [models.LabeledImageRequest(**req) for kind, req, _, _ in sent if kind == "tag"]
            track_requests = [models.LabeledTrackRequest(**{**req, "shapes": [
                models.TrackedShapeRequest(**_typed(sh)) for sh in req["shapes"]]}) for req, _members in tracks]
            client.api_client.tasks_api.update_annotations(
                t.task_id, task_annotations_update_request=models.LabeledDataRequest(
                    shapes=shapes, tags=tags, tracks=track_requests), _parse_response=False)
    else:
        _import_file(client, server, t, plan.fmt, list(by_name.values()), sent, [req for req, _m in tracks],
                     [plan.video.frame_of[a.id] for a in assets] if plan.video is not None else None)
    back = task_annotations(client, t.task_id, server.url)
    session.execute(delete(CvatObject).where(CvatObject.cvat_task_id == t.id))
    theirs_tracks = sorted(back.get("tracks") or [], key=lambda tr: tr["id"])
    if len(theirs_tracks) != len(tracks):
        raise DsgenError(f"CVAT task {t.task_id} holds {len(theirs_tracks)} tracks after dsgen uploaded {len(tracks)}")
    pool = {(tr["label_id"], tr["frame"], len(tr["shapes"])): [] for tr in theirs_tracks}  # type: dict[Any, list[Any]]
    for tr in theirs_tracks:
        pool[(tr["label_id"], tr["frame"], len(tr["shapes"]))].append(tr)
    for req, members in tracks:
        found = pool.get((req["label_id"], req["frame"], len(req["shapes"]))) or []
        if not found:
            raise DsgenError(f"CVAT task {t.task_id}: a track dsgen uploaded from frame {req['frame']} is not among "
                             "those CVAT stored")
        tr = found.pop(0)
        session.add(CvatObject(cvat_task_id=t.id, kind="track", cvat_id=tr["id"], annotation_id=None,
                               cvat_fingerprint=track_fingerprint(tr), registry_fingerprint=None,
                               members={str(f): r.id for f, r in members.items()}))
    for kind, key in (("shape", "shapes"), ("tag", "tags")):
        mine = [(req, aid, rfp) for k, req, aid, rfp in sent if k == kind]
        theirs = list(back.get(key) or [])
        for (_req, aid, rfp), obj in zip(mine, _match(kind, [m[0] for m in mine], theirs, t), strict=True):
            session.add(CvatObject(cvat_task_id=t.id, kind=kind, cvat_id=obj["id"], annotation_id=aid,
                                   cvat_fingerprint=cvat_fingerprint(kind, obj), registry_fingerprint=rfp))
    session.flush()


def _import_file(client: Any, server: CvatServer, t: CvatTask, fmt: str, labels: list[dict[str, Any]],
                 sent: list[tuple[str, dict[str, Any], int, str]], tracks: list[dict[str, Any]],
                 video_frames: list[int] | None) -> None:
    """Send the pre-annotations as a ``fmt`` file through CVAT's importer, and wait for it.

    ``video_frames``: a video task's frames as the video numbers them. CVAT's importers match a
    video's frames by the names its exports give them (``frame_000042``) and read a track's
    ``frame`` as that number, so the file is written in those numbers."""
    assert t.task_id is not None
    with cvat_call(f"read the frames of task {t.task_id}", server.url):
        meta, _ = client.api_client.tasks_api.retrieve_data_meta(t.task_id)
    if video_frames is not None:  # a video: one meta entry for all its frames
        frames = [(f"frame_{n:06d}", meta.frames[0].width, meta.frames[0].height) for n in video_frames]
    else:
        frames = [(f.name, f.width, f.height) for f in meta.frames]
    with tempfile.TemporaryDirectory(prefix="dsgen-cvat-") as tmp:
        path = write_annotations(fmt, Path(tmp), frames, Labels(labels), [r for k, r, _, _ in sent if k == "shape"],
                                 [r for k, r, _, _ in sent if k == "tag"], tracks, numbers=video_frames)
        with cvat_call(f"import {len(sent)} annotations to task {t.task_id} as {fmt}", server.url):
            client.tasks.retrieve(t.task_id).import_annotations(IMPORTER[fmt], path)


def cvat_tracks(tracked: dict[int, list[tuple[dict[str, Any], Any]]], n_frames: int,
            ) -> list[tuple[dict[str, Any], dict[int, Any]]]:
    """CVAT tracks of the registry's tracks: (request, frame -> annotation row of each frame it covers).

    A track goes as a track when its objects, one per frame, share a label, a shape type and their
    attributes and are not skeletons (whose points CVAT tracks as tracks of their own); its keyframes are the objects not marked ``keyframe: false`` (the frames CVAT
    interpolated when the track came from CVAT), and an ``outside`` keyframe ends it after a gap
    or its last frame. Anything else is sent as separate shapes (the loss report says so)."""
    out = []
    for _tid, items in sorted(tracked.items()):
        items.sort(key=lambda it: it[0]["frame"])
        frames = [req["frame"] for req, _r in items]
        first = items[0][0]
        if (len(items) < 2 or len(set(frames)) != len(frames) or first["type"] == "skeleton"
                or any(req["label_id"] != first["label_id"] or req["type"] != first["type"]
                       or req["attributes"] != first["attributes"] for req, _r in items)):
            continue
        interpolated_ok = first["type"] == "rectangle"
        shapes = []
        for i, (req, r) in enumerate(items):
            key = not (interpolated_ok and (r.attributes or {}).get("keyframe") is False) or i == 0
            nxt = frames[i + 1] if i + 1 < len(frames) else None
            gap = nxt is None or nxt != req["frame"] + 1
            if key or gap:
                shapes.append({k: req[k] for k in ("type", "frame", "points", "occluded", "z_order", "rotation")}
                              | {"outside": False, "attributes": []})
            if gap and req["frame"] + 1 < n_frames:
                shapes.append({k: req[k] for k in ("type", "points", "occluded", "z_order", "rotation")}
                              | {"frame": req["frame"] + 1, "outside": True, "attributes": []})
        out.append(({"frame": frames[0], "label_id": first["label_id"], "group": 0, "source": first["source"],
                     "attributes": first["attributes"], "shapes": shapes, "elements": []},
                    {req["frame"]: r for req, r in items}))
    return out


def _typed(req: dict[str, Any]) -> dict[str, Any]:
    from cvat_sdk import models

    return {**req, "type": models.ShapeType(req["type"])}


def _match(kind: str, sent: list[dict[str, Any]], back: list[dict[str, Any]], t: CvatTask) -> list[dict[str, Any]]:
    """CVAT's stored object for each sent one: the same content, else the same frame, label and type in order."""
    if len(back) != len(sent):
        raise DsgenError(f"CVAT task {t.task_id} holds {len(back)} {kind}s after dsgen uploaded {len(sent)}")
    pool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in sorted(back, key=lambda o: o["id"]):
        pool[cvat_fingerprint(kind, obj)].append(obj)
    out: list[dict[str, Any] | None] = []
    for req in sent:
        same = pool.get(cvat_fingerprint(kind, req))
        out.append(same.pop(0) if same else None)
    rest: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for objs in pool.values():
        for obj in objs:
            rest[(obj["frame"], obj["label_id"], str(obj.get("type")))].append(obj)
    for i, req in enumerate(sent):
        if out[i] is None:
            cands = rest.get((req["frame"], req["label_id"], str(req.get("type"))))
            if not cands:
                raise DsgenError(f"CVAT task {t.task_id}: a {kind} dsgen uploaded on frame {req['frame']} "
                                 "is not among those CVAT stored")
            out[i] = cands.pop(0)
    return [o for o in out if o is not None]


# --------------------------------------------------------------------------- records


def _job(session: Session, project: Project, export_job_id: int) -> ExportJob:
    job = session.get(ExportJob, export_job_id)
    if job is None or job.project_id != project.id or job.target != "cvat":
        raise NotFound(f"no CVAT push {export_job_id} in project {project.name!r} (see dsgen cvat status)")
    return job


def _tasks(session: Session, job_id: int) -> list[CvatTask]:
    return list(session.scalars(select(CvatTask).where(CvatTask.export_job_id == job_id).order_by(CvatTask.chunk)))


def _frames(session: Session, task_row_id: int) -> list[CvatFrame]:
    return list(session.scalars(select(CvatFrame).where(CvatFrame.cvat_task_id == task_row_id)
                                .order_by(CvatFrame.frame)))


def _result(registry: Registry, job_id: int, loss: LossReport) -> PushResult:
    tasks = []
    with registry.session() as s:
        for t in _tasks(s, job_id):
            n = s.scalar(select(func.count()).select_from(CvatObject).where(CvatObject.cvat_task_id == t.id)) or 0
            tasks.append(PushedTask(t.task_id, t.url, t.name, t.frames, n, t.status))
    return PushResult(job_id, tasks, loss, False)
