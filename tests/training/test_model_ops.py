"""After training: ONNX artifact, parity with PyTorch, evaluation on the test split, auto-annotation, CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import orjson
import pytest
from sqlalchemy import func, select

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation.coco_metrics import evaluate_detections
from dsgen_core.evaluation.model_eval import evaluate_model_version, split_ground_truth, worse_than_parent
from dsgen_core.ml.auto_annotate import auto_annotate
from dsgen_core.ml.onnx_artifacts import export_model_onnx, onnx_parity
from dsgen_core.query import count_query
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, DatasetVersion, Evaluation, ModelArtifact, Project
from dsgen_core.versions.lifecycle import get_version
from support import run_cli

from .conftest import Trained

KEYS = ("precision", "recall", "f1", "map50", "map50_95", "per_class")


@pytest.fixture(scope="module")
def exported(trained: Trained) -> dict:
    with trained.registry.session() as s:
        return export_model_onnx(s, get_project(s, "p"), "m1", storage=trained.storage).to_dict()


def test_onnx_artifact_is_registered_with_its_format_facts(trained: Trained, exported: dict) -> None:
    data = trained.storage.read_bytes(exported["uri"])
    model = onnx.load_from_string(data)
    assert exported["sha256"] == hashlib.sha256(data).hexdigest() and exported["size_bytes"] == len(data)
    assert exported["opset"] == model.opset_import[0].version and exported["ir_version"] == model.ir_version
    assert exported["inputs"][0]["shape"] == [1, 3, 64, 64]
    assert "onnxslim" in str(exported["compat"].get("simplified_with", ""))
    with trained.registry.session() as s:
        art = s.get(ModelArtifact, exported["artifact_id"])
        assert (art.format, art.role, art.opset, art.ir_version) == ("onnx", "export", exported["opset"], exported["ir_version"])
        assert art.compat["names"] == {"0": "circle", "1": "square", "2": "triangle"}


def test_onnx_runtime_detects_what_pytorch_detects(trained: Trained, exported: dict) -> None:
    with trained.registry.session() as s:
        report = onnx_parity(s, get_project(s, "p"), "m1", storage=trained.storage, images=6, conf=0.001)
    assert report.ok, report.problems[:5]
    assert report.images == 5 and report.detections > 0  # the val split holds 5 images
    assert report.max_box_diff_px <= 1.0 and report.max_score_diff <= 1e-3


def test_evaluation_on_the_test_split_is_stored_with_charts(trained: Trained, exported: dict) -> None:
    with trained.registry.session() as s:
        result = evaluate_model_version(s, get_project(s, "p"), "m1", storage=trained.storage)
    r = result.to_dict()
    assert all(k in r for k in KEYS) and set(r["per_class"]) == {"circle", "square", "triangle"}
    assert (r["split"], r["dataset_version"]) == ("test", "v1") and r["images"] > 0 and r["detections"] > 0
    for name in ("pr_curve", "confusion_matrix"):
        assert trained.storage.read_bytes(r["charts"][name])[:4] == b"\x89PNG"
    with trained.registry.session() as s:
        row = s.get(Evaluation, r["evaluation_id"])
        assert (row.map50, row.map50_95, row.f1_score) == (r["map50"], r["map50_95"], r["f1"])
        v = get_version(s, get_project(s, "p"), "v1")
        gt, files = split_ground_truth(s, v, "test")
    assert len(files) == r["images"] and sum(c["support"] for c in r["per_class"].values()) == sum(
        1 for a in gt["annotations"] if not a["iscrowd"])
    assert result.parent is None and not worse_than_parent(result, result.parent), \
        "a model without a parent has nothing to be worse than"


def test_auto_annotation_writes_model_annotations_apart_from_human_ones(trained: Trained, exported: dict) -> None:
    reg = trained.registry
    with reg.session() as s:
        pid = get_project(s, "p").id
        human_before = s.scalar(select(func.count()).select_from(Annotation).where(Annotation.source == "human"))
    with reg.session() as s:
        r = auto_annotate(s, get_project(s, "p"), "m1", storage=trained.storage, query="split:test", conf=0.001).to_dict()
    assert r["images"] > 0 and r["annotations"] > 0 and r["replaced"] == 0
    with reg.session() as s:
        rows = s.scalars(select(Annotation).where(Annotation.source == "model")).all()
        assert len(rows) == r["annotations"]
        assert {a.model_version_id for a in rows} == {trained.result.model_version_id}
        assert all(0.001 <= a.confidence <= 1 and a.bbox_w > 0 for a in rows)
        assert s.scalar(select(func.count()).select_from(Annotation).where(Annotation.source == "human")) == human_before
        low = count_query(s, s.get(Project, pid), "source:model confidence<0.5", level="object")
        assert low == sum(a.confidence < 0.5 for a in rows) > 0
        assert count_query(s, s.get(Project, pid), "model:m1", level="object") == len(rows)
    with reg.session() as s:
        again = auto_annotate(s, get_project(s, "p"), "m1", storage=trained.storage, query="split:test",
                              conf=0.001).to_dict()
    assert again["replaced"] == r["annotations"], "a re-run replaces the model's earlier annotations"
    with reg.session() as s:
        assert s.scalar(select(func.count()).select_from(Annotation).where(Annotation.source == "model")) == again["annotations"]
        s.execute(Annotation.__table__.delete().where(Annotation.source == "model"))


def test_cli_train_export_evaluate_annotate(trained: Trained, exported: dict, tmp_path: Path) -> None:
    env = trained.env
    ev = orjson.loads(run_cli("evaluate", "m1", "--project", "p", "--json", env=env, cwd=tmp_path, check=True).stdout)
    assert all(k in ev for k in KEYS) and ev["model_version"] == "m1"
    shown = orjson.loads(run_cli("model", "show", "m1", "--project", "p", "--json", env=env, cwd=tmp_path,
                                 check=True).stdout)
    assert {a["format"] for a in shown["artifacts"]} == {"ckpt", "onnx"} and shown["dataset_version"] == "v1"
    listed = orjson.loads(run_cli("models", "--project", "p", "--json", env=env, cwd=tmp_path, check=True).stdout)
    assert "m1" in [m["human_id"] for m in listed]
    ann = orjson.loads(run_cli("annotate", "m1", "--query", "split:val", "--project", "p", "--json",
                               env=env, cwd=tmp_path, check=True).stdout)
    assert ann["annotations"] >= 0 and ann["images"] > 0
    bad = run_cli("evaluate", "m99", "--project", "p", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "model version 'm99' does not exist in project 'p'" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("train", "--version", "v1", "--recipe", "huge", "--project", "p", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "unknown recipe 'huge'" in bad.stderr
    with trained.registry.session() as s:
        s.execute(Annotation.__table__.delete().where(Annotation.source == "model"))


def test_faster_coco_eval_and_pycocotools_agree_on_a_real_model(trained: Trained, exported: dict) -> None:
    """The model's own predictions on its test split, scored by both backends."""
    from dsgen_core.evaluation.model_eval import predict_split
    from dsgen_core.inference.detector import OnnxDetector
    from dsgen_core.ml import model_versions as mvs

    with trained.registry.session() as s:
        v = s.scalar(select(DatasetVersion).where(DatasetVersion.version_tag == "v1"))
        gt, files = split_ground_truth(s, v, "test")
        art = mvs.require_artifact(s, mvs.get_model_version(s, get_project(s, "p"), "m1"), "export", "onnx")
        path = mvs.fetch_artifact(trained.storage, art, trained.registry.settings.home)
    dets = predict_split(OnnxDetector(path, conf=0.001), files, ["circle", "square", "triangle"], gt["categories"])
    fast, ref = evaluate_detections(gt, dets), evaluate_detections(gt, dets, backend="pycocotools")
    assert fast.coco_stats == pytest.approx(ref.coco_stats, abs=1e-6)
    assert (fast.map50, fast.precision, fast.recall) == pytest.approx((ref.map50, ref.precision, ref.recall), abs=1e-6)


def test_evaluating_a_model_that_never_trained_is_refused(tmp_path: Path) -> None:
    from dsgen_core.ml.recipes import get_recipe
    from dsgen_core.ml.trainer import train_model
    from dsgen_core.storage import LocalStorage

    from .conftest import make_registry

    reg, _ = make_registry(tmp_path / "h", n_images=24)

    def stop(*_: object) -> None:
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        train_model(reg, "p", "v1", get_recipe("tiny"), storage=LocalStorage(reg.settings.storage_root), on_epoch=stop)
    with pytest.raises(DsgenError, match="m1 is failed; there is nothing to evaluate"), reg.session() as s:
        evaluate_model_version(s, get_project(s, "p"), "m1", storage=LocalStorage(reg.settings.storage_root))
    reg.dispose()


def test_worse_than_parent_names_what_the_child_lost() -> None:
    cls = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "map50_95": 0.5, "support": 3}
    parent = {"model_version": "m1", "map50": 0.9, "map50_95": 0.6,
              "per_class": {"circle": {**cls, "map50": 0.9}, "square": {**cls, "map50": 0.8}}}
    child = Evaluation(map50=0.85, map50_95=0.65, per_class={"circle": {**cls, "map50": 0.95},
                                                             "square": {**cls, "map50": 0.6}, "star": {**cls, "map50": 0.7}})
    parent = {**parent, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert worse_than_parent(child, parent) == ["map50: 0.8500 < parent m1's 0.9000",
                                                "class square: mAP50 0.6000 < parent's 0.8000"]
    assert worse_than_parent(child, parent, tolerance=0.25) == []
    assert worse_than_parent(child, None) == []
