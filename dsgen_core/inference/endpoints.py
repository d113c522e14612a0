"""Inference endpoints (seed 002): a model version's ONNX artifact served under a name.

An endpoint is a ``deployments`` row with target ``cloud`` and ``endpoint_url`` ``/api/infer/<name>``:
the URL is unique, so a name is taken once across projects while it is live (deploying, active or
in error); undeploying frees it and keeps the row, with its request counts, as history. Deploying
a live name again replaces its row (the redeploy), so the name always means one model.

Serving keeps one ONNX Runtime session per artifact in this process (loaded on first use, shared
by every thread: ``InferenceSession.run`` is thread-safe and each thread has its own input buffer),
and the request counters are summed in memory and written by one atomic ``UPDATE ... SET
total_requests = total_requests + n`` at most every :data:`FLUSH_INTERVAL_S` seconds, so a request
costs no database write of its own and concurrent requests (or processes) lose no count.

    ep = deploy_endpoint(session, project, "shapes", storage=storage, actor="cli:ana")   # production model
    r = infer(session, "shapes", jpeg_bytes, storage=storage, cache_dir=home / "cache")
    r.detections[0].class_key, r.detections[0].box, r.detections[0].score
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, case, select, update
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.formats.images import _fast_size
from dsgen_core.inference.detections import Detections
from dsgen_core.inference.detector import OnnxDetector, default_threads
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.onnx_artifacts import ONNX_ROLE
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import Asset, Deployment, LabelClass, ModelArtifact, ModelVersion, Project
from dsgen_core.storage.base import Storage

TARGET = "cloud"
URL_PREFIX = "/api/infer/"
LIVE = ("deploying", "active", "error")
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,49}")  # the deployments.name column holds 50
RESERVED = {"production"}  # the promotion's deployment name (dsgen_core/loop/promotion.py)
MAX_PIXELS_ENV, MAX_PIXELS_DEFAULT = "DSGEN_INFER_MAX_PIXELS", 40_000_000
FLUSH_INTERVAL_S = 1.0
CACHE_SIZE = 8  # loaded models kept per process


class EndpointConflict(DsgenError):
    """The endpoint name is live in another project, or the endpoint cannot serve now (HTTP 409)."""


class BadImage(DsgenError):
    """The request's bytes are not an image dsgen can run a model on (HTTP 400/413)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class Endpoint:
    name: str
    project: str
    model_version: str
    artifact_id: int | None
    status: str
    url: str | None
    total_requests: int
    last_request_at: datetime | None
    deployed_at: datetime
    actor: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("last_request_at", "deployed_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        return d


@dataclass(frozen=True)
class Detection:
    class_key: str  # the project's class key
    name: str  # the class's display name
    box: tuple[float, float, float, float]  # x, y, width, height in the image's pixels
    score: float


@dataclass(frozen=True)
class InferenceResult:
    endpoint: str
    model_version: str
    width: int
    height: int
    detections: list[Detection]
    ms: float  # decode, model and decoding of its output, in this process
    written: int | None = None  # model annotations written back, when asked


def endpoint_url(name: str) -> str:
    return f"{URL_PREFIX}{name}"


# --------------------------------------------------------------------------- deploy, undeploy, list


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise DsgenError(f"endpoint name {name!r}: use 1-50 lowercase letters, digits, '-', '_' or '.', "
                         "starting with a letter or digit")
    if name in RESERVED:
        raise DsgenError(f"endpoint name {name!r} is reserved (the promoted model's deployment)")


def _live(session: Session, name: str) -> Deployment | None:
    return session.scalar(select(Deployment).where(Deployment.target == TARGET,
                                                   Deployment.endpoint_url == endpoint_url(name)))


def _endpoint(session: Session, d: Deployment, project: Project | None = None) -> Endpoint:
    project = project if project is not None and project.id == d.project_id else session.get(Project, d.project_id)
    mv = session.get(ModelVersion, d.model_version_id)
    assert project is not None and mv is not None  # foreign keys
    return Endpoint(d.name, project.name, mv.human_id, d.model_artifact_id, d.status, d.endpoint_url,
                    int(d.total_requests or 0), d.last_request_at, d.deployed_at, d.actor,
                    (d.reason or {}).get("error") if d.status == "error" else None)


def deploy_endpoint(session: Session, project: Project, name: str, model_ref: str | None = None, *,
                    storage: Storage, cache_dir: Path, actor: str | None = None) -> Endpoint:
    """Serve ``model_ref``'s ONNX artifact (default: the project's production model) as endpoint ``name``.

    The row is written ``deploying``, the model is loaded into this process's cache (which checks
    the file against its sha256 and that ONNX Runtime takes it), then ``active``; a model that does
    not load leaves the endpoint in ``error`` with the reason, and it serves nothing.
    """
    from dsgen_core.loop.promotion import production_model

    _check_name(name)
    if model_ref is None:
        mv = production_model(session, project)
        if mv is None:
            raise DsgenError(f"project {project.name!r} has no production model yet; name one (--model m3)")
    else:
        mv = mvs.get_model_version(session, project, model_ref)
    if mv.status != "succeeded":
        raise DsgenError(f"model version {mv.human_id} is {mv.status}; only a succeeded one can be deployed")
    art = mvs.require_artifact(session, mv, ONNX_ROLE, "onnx")
    old = _live(session, name)
    if old is not None and old.project_id != project.id:
        raise EndpointConflict(f"endpoint name {name!r} is taken; choose another")
    if old is not None:
        _retire(old)
        session.flush()  # the URL is unique: free it before the new row takes it
    d = Deployment(model_version_id=mv.id, project_id=project.id, model_artifact_id=art.id, name=name, target=TARGET,
                   endpoint_url=endpoint_url(name), status="deploying", actor=actor,
                   reason={"model_version": mv.human_id, "replaces": old.id if old is not None else None})
    session.add(d)
    session.flush()
    try:
        MODELS.get(art, storage, cache_dir, reload=True)
        d.status = "active"
    except DsgenError as exc:
        d.status = "error"
        d.reason = {**(d.reason or {}), "error": str(exc)}
    audit(session, "endpoint.deploy", project_id=project.id, entity_type="deployment", entity_ids=[d.id],
          detail={"name": name, "model_version": mv.human_id, "artifact": art.id, "status": d.status}, actor=actor)
    record_change(session, project_id=project.id, entity="deployments", op="deployed", entity_id=d.id,
                  detail={"name": name, "model_version": mv.human_id})
    session.flush()
    return _endpoint(session, d, project)


def _retire(d: Deployment) -> None:
    d.status, d.endpoint_url = "inactive", None
    if d.model_artifact_id is not None:
        MODELS.evict(d.model_artifact_id)
    with _PLANS_LOCK:
        for key in [k for k in _PLANS if k[1] == d.id]:
            del _PLANS[key]


def undeploy_endpoint(session: Session, project: Project, name: str, *, actor: str | None = None) -> Endpoint:
    """Stop serving endpoint ``name`` of ``project``; the row stays (inactive) with its counts."""
    d = _live(session, name)
    if d is None or d.project_id != project.id:
        raise NotFound(f"no endpoint {name!r} in project {project.name!r}")
    flush_usage(session)
    session.refresh(d)
    _retire(d)
    audit(session, "endpoint.undeploy", project_id=project.id, entity_type="deployment", entity_ids=[d.id],
          detail={"name": name}, actor=actor)
    record_change(session, project_id=project.id, entity="deployments", op="undeployed", entity_id=d.id,
                  detail={"name": name})
    session.flush()
    return _endpoint(session, d, project)


def list_endpoints(session: Session, project: Project, *, history: bool = False) -> list[Endpoint]:
    """The project's live endpoints (with ``history``, the undeployed ones too), newest first;
    the counts include this process's requests not yet written."""
    flush_usage(session)
    q = select(Deployment).where(Deployment.project_id == project.id, Deployment.target == TARGET)
    if not history:
        q = q.where(Deployment.status.in_(LIVE))
    rows = list(session.scalars(q.order_by(Deployment.id.desc())).all())
    for d in rows:
        session.refresh(d)  # the flush's UPDATE went around the session
    return [_endpoint(session, d, project) for d in rows]


def find_endpoint(session: Session, name: str) -> tuple[Deployment, Project]:
    """The live endpoint called ``name`` and its project (the caller checks who may use it)."""
    d = _live(session, name) if NAME.fullmatch(name) else None
    project = session.get(Project, d.project_id) if d is not None else None
    if d is None or project is None or project.deleted_at is not None:
        raise NotFound(f"no endpoint {name!r}")
    return d, project


# --------------------------------------------------------------------------- the loaded models


class _Models:
    """ONNX Runtime sessions by artifact, loaded once per process and shared by threads (an LRU of
    :data:`CACHE_SIZE`). A key's first caller loads it while later callers of that key wait; other
    keys are not held up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: OrderedDict[tuple[int, str | None], OnnxDetector] = OrderedDict()
        self._loading: dict[tuple[int, str | None], threading.Lock] = {}

    def get(self, art: ModelArtifact, storage: Storage, cache_dir: Path, *, reload: bool = False) -> OnnxDetector:
        key = (art.id, art.sha256)
        with self._lock:
            if reload:
                self._loaded.pop(key, None)
            found = self._loaded.get(key)
            if found is not None:
                self._loaded.move_to_end(key)
                return found
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                found = self._loaded.get(key)
            if found is None:
                found = self._load(art, storage, cache_dir)
            with self._lock:
                self._loaded[key] = found
                self._loaded.move_to_end(key)
                while len(self._loaded) > CACHE_SIZE:
                    self._loaded.popitem(last=False)
                self._loading.pop(key, None)
            return found

    @staticmethod
    def _load(art: ModelArtifact, storage: Storage, cache_dir: Path) -> OnnxDetector:
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = mvs.fetch_artifact(storage, art, cache_dir)
        return OnnxDetector(path, threads=serving_threads(), spin=False)  # concurrent requests share the cores

    def evict(self, artifact_id: int) -> None:
        with self._lock:
            for key in [k for k in self._loaded if k[0] == artifact_id]:
                del self._loaded[key]

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()


MODELS = _Models()


def serving_threads() -> int:
    """ONNX Runtime intra-op threads per request (``$DSGEN_INFER_THREADS``, default every core).

    Concurrent requests each run with this many threads; spinning is off (cpu_session_options),
    so waiting workers give their core to the other requests instead of busy-waiting on it.
    """
    try:
        return max(1, int(os.environ.get("DSGEN_INFER_THREADS") or default_threads()))
    except ValueError:
        return default_threads()


# --------------------------------------------------------------------------- request counts


class _Usage:
    """Requests per endpoint summed in memory, written at most every FLUSH_INTERVAL_S by an atomic increment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[Engine, int], tuple[int, datetime]] = {}
        self._last_flush = time.monotonic()
        self._at_exit = False

    def record(self, engine: Engine, deployment_id: int, at: datetime) -> bool:
        """Count one request; True when the caller should flush now."""
        with self._lock:
            if not self._at_exit:  # the last second's counts are written when the server stops
                atexit.register(self._flush_quietly)
                self._at_exit = True
            n, _ = self._pending.get((engine, deployment_id), (0, at))
            self._pending[(engine, deployment_id)] = (n + 1, at)
            return time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S

    def flush(self, engine: Engine | None = None) -> int:
        """Write the pending counts (of ``engine``, or every engine), each in its own short transaction."""
        with self._lock:
            take = {k: v for k, v in self._pending.items() if engine is None or k[0] is engine}
            for k in take:
                del self._pending[k]
            self._last_flush = time.monotonic()
        items, done = list(take.items()), 0
        try:
            for (eng, dep_id), (n, at) in items:
                with eng.begin() as conn:
                    conn.execute(update(Deployment).where(Deployment.id == dep_id).values(
                        total_requests=Deployment.total_requests + n,
                        last_request_at=case((Deployment.last_request_at.is_(None), at),
                                             (Deployment.last_request_at < at, at),
                                             else_=Deployment.last_request_at)))
                done += 1
        finally:
            with self._lock:  # what was not written goes back: the next flush tries again
                for key, (n, at) in items[done:]:
                    m, last = self._pending.get(key, (0, at))
                    self._pending[key] = (m + n, max(last, at))
        return sum(n for _k, (n, _at) in items)


    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - at exit with the database gone there is no one left to tell
            logging.getLogger("dsgen.endpoints").warning("request counts of endpoints were not written at exit")


USAGE = _Usage()


def flush_usage(session: Session | None = None) -> int:
    """Write this process's pending request counts (of ``session``'s database, or all); how many."""
    engine = session.get_bind() if session is not None else None
    return USAGE.flush(engine if isinstance(engine, Engine) else None)


# --------------------------------------------------------------------------- inference


def max_pixels() -> int:
    try:
        return int(os.environ.get(MAX_PIXELS_ENV) or MAX_PIXELS_DEFAULT)
    except ValueError:
        return MAX_PIXELS_DEFAULT


def decode_image(data: bytes) -> np.ndarray:
    """A JPEG or PNG's BGR pixels; its size is read from the header first, so an oversized image
    is refused before any pixel is decoded."""
    import cv2

    if not data:
        raise BadImage("the request has no image bytes")
    size = _fast_size(data[:1 << 20])
    if size is None:
        raise BadImage("not a JPEG or PNG image (or its header is damaged)")
    width, height, fmt = size
    if width <= 0 or height <= 0:
        raise BadImage(f"the {fmt.upper()} header gives an empty {width}x{height} image")
    limit = max_pixels()
    if width * height > limit:
        raise BadImage(f"image of {width}x{height} pixels is over the {limit:,} pixel limit ({MAX_PIXELS_ENV})",
                       too_large=True)
    image: np.ndarray | None = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BadImage(f"the {fmt.upper()} image cannot be decoded (truncated or corrupt)")
    return image


def _class_names(session: Session, project: Project, mv: ModelVersion, det: OnnxDetector) -> list[tuple[str, str]]:
    """(key, name) of each class index: the project's classes the model was trained on, else the file's names."""
    keys: list[str] = (mv.training_config or {}).get("classes") or []
    names = dict(session.execute(select(LabelClass.key, LabelClass.display_name).where(
        LabelClass.project_id == project.id, LabelClass.key.in_(keys))).all()) if keys else {}
    n = max(len(keys), max(det.names, default=-1) + 1)
    out = []
    for i in range(n):
        key = keys[i] if i < len(keys) else det.names.get(i, str(i))
        out.append((key, names.get(key) or key))
    return out


@dataclass(frozen=True)
class _Plan:
    """What serving a deployment needs beyond its row, read once per process: its artifact (loaded
    attributes, detached), its model version and the class of each output index."""

    artifact: ModelArtifact
    mv_id: int
    model_version: str
    classes: tuple[tuple[str, str], ...]


_PLANS: dict[tuple[object, int], _Plan] = {}
_PLANS_LOCK = threading.Lock()


def _plan(session: Session, d: Deployment, project: Project, storage: Storage,
          cache_dir: Path) -> tuple[_Plan, OnnxDetector]:
    key = (session.get_bind(), d.id)
    plan = _PLANS.get(key)
    if plan is None:
        art = session.get(ModelArtifact, d.model_artifact_id) if d.model_artifact_id is not None else None
        mv = session.get(ModelVersion, d.model_version_id)
        if art is None or mv is None:
            raise EndpointConflict(f"endpoint {d.name!r} lost its model artifact; deploy it again")
        detector = MODELS.get(art, storage, cache_dir)
        plan = _Plan(art, mv.id, mv.human_id, tuple(_class_names(session, project, mv, detector)))
        with _PLANS_LOCK:
            if len(_PLANS) >= 256:  # deployments of registries long closed (tests): start afresh
                _PLANS.clear()
            _PLANS[key] = plan
        return plan, detector
    return plan, MODELS.get(plan.artifact, storage, cache_dir)


def infer(session: Session, endpoint: str | Deployment, data: bytes, *, storage: Storage, cache_dir: Path,
          conf: float = 0.25, iou: float = 0.7, write_back_asset_id: int | None = None,
          actor: str | None = None) -> InferenceResult:
    """Run ``endpoint`` (its name, or its row as :func:`find_endpoint` gave it) on an image's bytes.

    With ``write_back_asset_id`` (an image of the endpoint's project), the detections also become
    the model's annotations of that image (replacing the model's earlier ones there), through the
    ingest in the caller's transaction.
    """
    if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
        raise DsgenError(f"conf and iou must be between 0 and 1, got conf={conf}, iou={iou}")
    if isinstance(endpoint, str):
        d, project = find_endpoint(session, endpoint)
    else:
        d, found = endpoint, session.get(Project, endpoint.project_id)
        assert found is not None  # a foreign key
        project = found
    name = d.name
    if d.status != "active":
        raise EndpointConflict(f"endpoint {name!r} is {d.status}"
                               + (f": {(d.reason or {}).get('error')}" if d.status == "error" else "")
                               + "; deploy it again")
    asset = None
    if write_back_asset_id is not None:
        asset = session.get(Asset, write_back_asset_id)
        if asset is None or asset.project_id != project.id or asset.deleted_at is not None:
            raise NotFound(f"no image {write_back_asset_id} in project {project.name!r}")
    t0 = time.perf_counter()
    image = decode_image(data)
    plan, detector = _plan(session, d, project, storage, cache_dir)
    det: Detections = detector.predict([image], conf=conf, iou=iou)[0]
    ms = (time.perf_counter() - t0) * 1000
    detections = []
    for (x1, y1, x2, y2), score, c in zip(det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist(), strict=True):
        key, label = plan.classes[c] if c < len(plan.classes) else (str(c), str(c))
        detections.append(Detection(key, label, (x1, y1, x2 - x1, y2 - y1), score))
    engine = session.get_bind()
    if isinstance(engine, Engine) and USAGE.record(engine, d.id, datetime.now(UTC)):
        USAGE.flush(engine)  # before any write of this transaction: SQLite would make the two wait on each other
    written = None
    if asset is not None:
        from dsgen_core.ml.auto_annotate import write_detections

        mv = session.get(ModelVersion, plan.mv_id)
        assert mv is not None  # a foreign key of the live row
        r = write_detections(session, project, mv, {asset.id: det}, storage=storage, actor=actor,
                             detail={"endpoint": name, "conf": conf, "iou": iou}, audit_action="annotate.endpoint")
        written = r.objects_new
    return InferenceResult(name, plan.model_version, int(image.shape[1]), int(image.shape[0]), detections,
                           round(ms, 2), written)
