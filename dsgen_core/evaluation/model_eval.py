"""Evaluation of a model version: its ONNX artifact (ONNX Runtime) over a frozen version's split.

The ground truth is the version's annotation snapshot, so an evaluation on ``v1/test`` means the
same thing whatever happened in the registry since. Detections are kept down to confidence 0.001
(COCO's mAP integrates the whole precision-recall curve); the confusion matrix counts those of
confidence 0.25 and up. Metrics, charts and the numbers of the parent model on the same split
(incremental training) are stored as a registry ``evaluations`` row.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation.charts import draw_confusion_matrix, draw_pr_curve
from dsgen_core.evaluation.coco_metrics import evaluate_detections
from dsgen_core.evaluation.confusion import confusion_matrix
from dsgen_core.inference.detector import OnnxDetector
from dsgen_core.inference.preprocess import require_local_images
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.onnx_artifacts import ONNX_ROLE
from dsgen_core.registry.changes import audit
from dsgen_core.registry.schema import DatasetVersion, DatasetVersionAnnotation, Evaluation, ModelVersion, Project
from dsgen_core.storage.base import Storage
from dsgen_core.versions.content_hash import require_intact
from dsgen_core.versions.lifecycle import get_version
from dsgen_core.versions.members import class_order, is_crowd_region, version_members

EVAL_CONF = 0.001
MATRIX_CONF = 0.25
METRIC_KEYS = ("precision", "recall", "f1", "map50", "map50_95")


def split_ground_truth(session: Session, version: DatasetVersion, split: str) -> tuple[dict[str, Any], dict[int, str]]:
    """The split as a COCO dict (categories numbered 1.. in the version's class order, named by key)
    and the image file of each image id (the asset id)."""
    classes = class_order(session, version)
    categories = [{"id": i + 1, "name": c.key} for i, c in enumerate(classes)]
    cat_of = {c.id: i + 1 for i, c in enumerate(classes)}
    images = sorted((m.asset for m in version_members(session, version) if m.split == split), key=lambda a: a.id)
    if not images:
        raise DsgenError(f"version {version.version_tag!r} has no {split!r} split to evaluate on")
    ids = {a.id for a in images}
    t = DatasetVersionAnnotation
    annotations = []
    for n, (asset_id, label, x, y, w, h, area, crowd, attrs) in enumerate(session.execute(
        select(t.asset_id, t.label_class_id, t.bbox_x, t.bbox_y, t.bbox_w, t.bbox_h, t.area, t.iscrowd,
               cast(t.attributes, Text))
        .where(t.dataset_version_id == version.id, t.bbox_w.is_not(None)).order_by(t.annotation_id)
    )):
        if asset_id not in ids or label not in cat_of or not w or not h:
            continue
        annotations.append({"id": n + 1, "image_id": asset_id, "category_id": cat_of[label], "bbox": [x, y, w, h],
                            "area": area or w * h,
                            "iscrowd": int(is_crowd_region(crowd, orjson.loads(attrs) if attrs else None))})
    gt = {"images": [{"id": a.id, "width": a.width, "height": a.height} for a in images],
          "annotations": annotations, "categories": categories}
    return gt, {a.id: a.storage_uri for a in images}


def predict_split(detector: OnnxDetector, files: dict[int, str], model_keys: list[str],
                  categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COCO results of the detector on each image; classes the ground truth lacks are dropped."""
    cat_id = {c["name"]: c["id"] for c in categories}
    to_cat = {i: cat_id.get(k) for i, k in enumerate(model_keys)}
    require_local_images(files, "image(s) to evaluate on")
    results: list[dict[str, Any]] = []
    image_ids = list(files)
    for image_id, det in zip(image_ids, detector.predict([files[i] for i in image_ids]), strict=True):
        for (x1, y1, x2, y2), score, c in zip(det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist(), strict=True):
            cat = to_cat.get(int(c))
            if cat is not None:
                results.append({"image_id": image_id, "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "score": score})
    return results


@dataclass(frozen=True)
class ParentNumbers:
    """The parent model's metrics on the same version and split as its child."""

    model_version: str
    precision: float
    recall: float
    f1: float
    map50: float
    map50_95: float
    per_class: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelEvaluation:
    """A recorded evaluation: COCO metrics of a model version's ONNX artifact on a version's split."""

    model_version: str
    dataset_version: str
    split: str
    images: int
    detections: int
    precision: float
    recall: float
    f1: float
    map50: float
    map50_95: float
    per_class: dict[str, Any]
    coco_stats: list[float]
    backend: str
    charts: dict[str, str]
    evaluation_id: int
    parent: ParentNumbers | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_model_version(session: Session, project: Project, ref: str, *, storage: Storage,
                           version_tag: str | None = None, split: str = "test", with_parent: bool = True,
                           actor: str | None = None) -> ModelEvaluation:
    """Evaluate ``ref`` (``m3``) on ``version_tag`` (default: its training version) and record it.

    It runs the model's ONNX artifact and refuses a model that has none: the artifact is made by
    ``dsgen export onnx`` or the Dagster graph's ``onnx_artifact``, never behind the caller's back.
    A model with a parent also gets the parent's numbers on the same split.
    """
    t0 = time.perf_counter()
    mv = mvs.get_model_version(session, project, ref)
    if mv.status != "succeeded":
        raise DsgenError(f"model version {mv.human_id} is {mv.status}; there is nothing to evaluate")
    art = mvs.require_artifact(session, mv, ONNX_ROLE, "onnx")
    version = get_version(session, project, version_tag) if version_tag else \
        session.get(DatasetVersion, mv.training_data_version_id)
    assert version is not None  # every model version is created from one, and it cannot be deleted under it
    require_intact(session, version, storage, purpose="to evaluate on it")
    gt, files = split_ground_truth(session, version, split)
    with tempfile.TemporaryDirectory(prefix="dsgen-eval-") as tmp:
        detector = OnnxDetector(mvs.fetch_artifact(storage, art, Path(tmp)), conf=EVAL_CONF)
        dets = predict_split(detector, files, (mv.training_config or {}).get("classes") or [], gt["categories"])
        metrics = evaluate_detections(gt, dets)
        matrix, names = confusion_matrix(gt, dets, conf=MATRIX_CONF)
        # One folder per evaluation: a re-evaluation never changes the charts an older row points at.
        prefix = f"{mvs.artifact_prefix(mv)}/evaluations/{version.version_tag}-{split}-{uuid.uuid4().hex[:8]}"
        charts = {
            "pr_curve": storage.write_file(f"{prefix}/pr_curve.png", draw_pr_curve(metrics, Path(tmp) / "pr.png")),
            "confusion_matrix": storage.write_file(f"{prefix}/confusion_matrix.png",
                                                   draw_confusion_matrix(matrix, names, Path(tmp) / "cm.png")),
        }
    out = metrics.to_dict()
    parent = None
    if with_parent and mv.parent_model_version_id is not None:
        parent_mv = session.get(ModelVersion, mv.parent_model_version_id)
        assert parent_mv is not None  # deleting the parent sets the id to NULL
        parent = parent_evaluation(session, project, parent_mv, version, split, storage=storage, actor=actor)
    row = Evaluation(
        model_version_id=mv.id, dataset_version_id=version.id, model_artifact_id=art.id, split=split,
        precision=out["precision"], recall=out["recall"], f1_score=out["f1"], map50=out["map50"],
        map50_95=out["map50_95"], per_class=out["per_class"],
        extra={"coco_stats": out["coco_stats"], "backend": out["backend"], "charts": charts,
               "images": len(files), "detections": len(dets), "confusion_matrix": matrix.tolist(),
               "confusion_names": names, **({"parent": parent.to_dict()} if parent else {})},
    )
    session.add(row)
    session.flush()
    audit(session, "model_version.evaluate", project_id=project.id, entity_type="evaluation", entity_ids=[row.id],
          detail={"model_version": mv.human_id, "dataset_version": version.version_tag, "split": split,
                  "map50": out["map50"]}, actor=actor)
    return ModelEvaluation(
        mv.human_id, version.version_tag, split, len(files), len(dets), out["precision"], out["recall"], out["f1"],
        out["map50"], out["map50_95"], out["per_class"], out["coco_stats"], out["backend"], charts, row.id, parent,
        round(time.perf_counter() - t0, 2))


def parent_evaluation(session: Session, project: Project, parent: ModelVersion, version: DatasetVersion, split: str,
                      *, storage: Storage, actor: str | None = None) -> ParentNumbers:
    """The parent's numbers on the same version and split, evaluating it there if it never was."""
    row = session.scalar(select(Evaluation).where(
        Evaluation.model_version_id == parent.id, Evaluation.dataset_version_id == version.id,
        Evaluation.split == split).order_by(Evaluation.id.desc()))
    if row is not None:
        return ParentNumbers(parent.human_id, row.precision, row.recall, row.f1_score, row.map50, row.map50_95,
                             row.per_class or {})
    r = evaluate_model_version(session, project, parent.human_id, storage=storage, version_tag=version.version_tag,
                               split=split, with_parent=False, actor=actor)
    return ParentNumbers(parent.human_id, r.precision, r.recall, r.f1, r.map50, r.map50_95, r.per_class)


def evaluate_on_parent_split(session: Session, project: Project, ref: str, *, storage: Storage,
                             actor: str | None = None) -> dict[str, Any] | None:
    """A child's and its parent's numbers on the parent's test split (None without a parent).

    With splits stable across versions, neither model trained on those images: it is the fair
    place to ask whether the child forgot what its parent knew.
    """
    mv = mvs.get_model_version(session, project, ref)
    parent = session.get(ModelVersion, mv.parent_model_version_id) if mv.parent_model_version_id else None
    if parent is None or parent.training_data_version_id is None:
        return None
    version = session.get(DatasetVersion, parent.training_data_version_id)
    assert version is not None  # RESTRICT: a model's training version stays
    child = parent_evaluation(session, project, mv, version, "test", storage=storage, actor=actor)
    theirs = parent_evaluation(session, project, parent, version, "test", storage=storage, actor=actor)
    return {"on": f"{version.version_tag}/test", "child": child.to_dict(), "parent": theirs.to_dict()}


def worse_than_parent(child: Evaluation, parent: ParentNumbers | dict[str, Any] | None,
                      tolerance: float = 0.0) -> list[str]:
    """What the child lost against its parent on the same split: overall mAP, and mAP50 of each class
    with ground truth there on which the parent scored higher."""
    if not parent:
        return []
    p = parent if isinstance(parent, ParentNumbers) else ParentNumbers(**parent)
    lost = [f"{k}: {getattr(child, k):.4f} < parent {p.model_version}'s {getattr(p, k):.4f}"
            for k in ("map50", "map50_95") if getattr(child, k) + tolerance < getattr(p, k)]
    for name, pc in (p.per_class or {}).items():
        c = (child.per_class or {}).get(name)
        if c and pc.get("support") and c["map50"] + tolerance < pc["map50"]:
            lost.append(f"class {name}: mAP50 {c['map50']:.4f} < parent's {pc['map50']:.4f}")
    return lost


def own_test_evaluation(session: Session, mv: ModelVersion, split: str = "test") -> Evaluation | None:
    """The newest evaluation of ``mv`` on the split of the version it was trained on (others are for comparisons)."""
    return session.scalar(select(Evaluation).where(
        Evaluation.model_version_id == mv.id, Evaluation.dataset_version_id == mv.training_data_version_id,
        Evaluation.split == split).order_by(Evaluation.id.desc()))
