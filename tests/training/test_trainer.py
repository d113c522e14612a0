"""Training a model version: what the registry and storage hold afterwards, and after a failure."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from dsgen_core.errors import DsgenError
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.recipes import Recipe, get_recipe, load_recipes
from dsgen_core.ml.trainer import train_model
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import ModelArtifact, ModelVersion, TrainingEpochMetric
from dsgen_core.storage import LocalStorage

from .conftest import NETGUARD, Trained, freeze, make_registry


def test_training_records_epochs_checkpoints_and_artifacts(trained: Trained) -> None:
    reg, storage, r = trained.registry, trained.storage, trained.result
    assert (r.status, r.human_id) == ("succeeded", "m1")
    with reg.session() as s:
        mv = s.get(ModelVersion, r.model_version_id)
        assert (mv.status, mv.recipe, mv.framework, mv.is_frozen, mv.error) == ("succeeded", "tiny", "ultralytics", True, None)
        assert mv.training_config["classes"] == ["circle", "square", "triangle"]
        assert mv.metrics["epochs"] == 3 and 0.0 <= mv.metrics["map50"] <= 1.0
        epochs = s.scalars(select(TrainingEpochMetric).where(TrainingEpochMetric.model_version_id == mv.id)
                           .order_by(TrainingEpochMetric.epoch)).all()
        # One row per trained epoch (Ultralytics' closing validation of best.pt is not an epoch).
        assert [e.epoch for e in epochs] == [1, 2, 3]
        assert all(e.train_loss and e.train_loss > 0 and e.map50 is not None for e in epochs)
        assert len({e.train_loss for e in epochs}) == 3, "each epoch trains (its own loss)"
        # (Other tests of the session may add m1's ONNX export; training registers the checkpoints.)
        arts = s.scalars(select(ModelArtifact).where(ModelArtifact.model_version_id == mv.id,
                                                     ModelArtifact.format == "ckpt")).all()
    assert sorted((a.role, a.format) for a in arts) == [("best", "ckpt"), ("final", "ckpt")]
    for a in arts:
        data = storage.read_bytes(a.storage_uri)
        assert a.sha256 == hashlib.sha256(data).hexdigest() and a.size_bytes == len(data) > 1_000_000
        assert (a.framework, a.device, a.precision) == ("ultralytics", "cpu", "fp32") and a.framework_version
    # Checkpoints live in storage only (the tiny recipe keeps one per epoch); each is a loadable torch file.
    assert r.checkpoints == [f"models/p1/m1/checkpoints/epoch_{e:04d}.pt" for e in (1, 2, 3)]
    assert len({hashlib.sha256(storage.read_bytes(c)).hexdigest() for c in r.checkpoints}) == 3
    assert storage.read_bytes(r.curves_png)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_run_leaves_a_failed_version_without_artifacts(tmp_path: Path) -> None:
    reg, _ = make_registry(tmp_path / "h", n_images=24)
    storage = LocalStorage(reg.settings.storage_root)

    def explode(epoch: int, epochs: int, metrics: dict) -> None:
        if epoch == 2:
            raise RuntimeError("disk full while logging")

    with pytest.raises(RuntimeError, match="disk full"):
        train_model(reg, "p", "v1", get_recipe("tiny"), storage=storage, on_epoch=explode)

    def interrupt(epoch: int, epochs: int, metrics: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(reg, "p", "v1", get_recipe("tiny"), storage=storage, on_epoch=interrupt)
    with reg.session() as s:
        failed, cancelled = s.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
        assert failed.status == "failed" and "disk full while logging" in failed.error and not failed.is_frozen
        assert cancelled.status == "cancelled" and "KeyboardInterrupt" in cancelled.error
        assert s.scalar(select(func.count()).select_from(ModelArtifact)) == 0
        # The epochs that did finish stay on record: they are what a user looks at to see what went wrong.
        assert s.scalar(select(func.count()).select_from(TrainingEpochMetric)
                        .where(TrainingEpochMetric.model_version_id == failed.id)) == 2
        with pytest.raises(DsgenError, match="failed; only a trained model can be a parent"):
            train_model(reg, "p", "v1", get_recipe("tiny"), storage=storage, parent=failed.human_id)
    reg.dispose()


def test_draft_versions_and_unknown_recipes_are_refused(trained: Trained, tmp_path: Path) -> None:
    with trained.registry.session() as s:
        from dsgen_core.registry.projects import get_project
        from dsgen_core.versions.lifecycle import create_version

        create_version(s, get_project(s, "p"), "draft1")
    with pytest.raises(DsgenError, match="is a draft; freeze it"):
        train_model(trained.registry, "p", "draft1", get_recipe("tiny"), storage=trained.storage)
    with pytest.raises(DsgenError, match="unknown recipe 'huge'; known: .*demo.*tiny"):
        get_recipe("huge", tmp_path)


def test_user_recipes_come_from_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "fast.yaml").write_text("base: demo\nepochs: 5\naugmentation: {mosaic: 0.0}\n")
    (tmp_path / "recipes" / "bad.yaml").write_text("epochz: 5\n")
    with pytest.raises(DsgenError, match=r"bad.yaml: unknown recipe field\(s\) epochz"):
        load_recipes(tmp_path)
    (tmp_path / "recipes" / "bad.yaml").unlink()
    fast = get_recipe("fast", tmp_path)
    assert (fast.epochs, fast.imgsz, fast.augmentation, fast.architecture) == (5, 160, {"mosaic": 0.0}, "yolov8n.yaml")
    assert fast.train_args()["mosaic"] == 0.0 and fast.train_args()["plots"] is False
    assert Recipe("s", task="segment").model_source() == "yolov8n-seg.yaml"
    with pytest.raises(DsgenError, match="weights file /nope.pt does not exist"):
        Recipe("w", weights="/nope.pt").model_source()


def test_incremental_training_starts_from_the_parent_with_rehearsal(trained: Trained, tmp_path: Path) -> None:
    """A newer version (new images only) adds a class; the child starts from m1's best weights and
    rehearses a share of m1's training images."""
    from dsgen_core.demo.synth import generate_demo_dataset
    from support import import_file

    reg = trained.registry
    newer = generate_demo_dataset(tmp_path / "newer", n_images=24, seed=4, add_class="star").root
    import_file(reg, newer / "annotations" / "instances_default.json", images=newer / "images", project="p")
    freeze(reg, "v2", query="file:new_star_")
    r = train_model(reg, "p", "v2", get_recipe("tiny"), storage=trained.storage, parent="m1")
    with reg.session() as s:
        child = mvs.get_model_version(s, get_project(s, "p"), r.human_id)
        parent = mvs.get_model_version(s, get_project(s, "p"), "m1")
        best = mvs.require_artifact(s, parent, "best", "ckpt")
        assert (child.parent_model_version_id, child.init_from_artifact_id) == (parent.id, best.id)
        info = child.incremental_info
        assert info["strategy"] == "fine-tune from parent + rehearsal" and info["parent"] == "m1"
        assert info["parent_version"] == "v1" and info["mixed_in"] == round(info["parent_train_images"] * 0.3) > 0
        assert child.training_config["classes"] == ["circle", "square", "triangle", "star"]
    # Distillation: m1 also teaches (Ultralytics' teacher model), although it knows one class less.
    taught = train_model(reg, "p", "v2", dataclasses.replace(get_recipe("tiny"), distillation=0.5),
                         storage=trained.storage, parent="m1")
    assert taught.status == "succeeded"
    assert taught.incremental_info["strategy"] == "fine-tune from parent + rehearsal + distillation"
    assert taught.incremental_info["distillation_weight"] == 0.5


def test_training_through_the_cli_never_touches_the_network(trained: Trained, tmp_path: Path) -> None:
    """`dsgen train` in a fresh interpreter whose sockets fail for any non-local address (YOLO_OFFLINE unset)."""
    log = tmp_path / "net.log"
    env = {**trained.env, "PYTHONPATH": str(NETGUARD), "DSGEN_NETGUARD_LOG": str(log),
           "YOLO_CONFIG_DIR": str(tmp_path / "ycfg")}
    env.pop("YOLO_OFFLINE", None)
    proc = subprocess.run([str(Path(sys.executable).with_name("dsgen")), "train", "--version", "v1", "--recipe", "tiny",
                           "--project", "p", "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = orjson.loads(proc.stdout)
    assert out["status"] == "succeeded" and out["epochs"] == 3
    assert not log.exists(), f"network attempts: {log.read_text()}"
    assert not list(tmp_path.glob("*.pt")) and not list(Path.cwd().glob("yolo*.pt")), "no weights downloaded"


def test_a_segmentation_recipe_trains_on_polygons_and_masks(trained: Trained, tmp_path: Path) -> None:
    """The demo's polygons and CVAT masks (traced) become a yolov8n-seg model's training data."""
    recipe = dataclasses.replace(get_recipe("tiny"), name="tiny-seg", task="segment")
    r = train_model(trained.registry, "p", "v1", recipe, storage=trained.storage)
    assert r.status == "succeeded"
    with trained.registry.session() as s:
        mv = mvs.get_model_version(s, get_project(s, "p"), r.human_id)
        assert mv.training_config["model_source"] == "yolov8n-seg.yaml"
        assert mv.training_config["data"]["objects"]["train"] > 0
        # Mask metrics of a segmentation model land beside the box metrics.
        assert any("(M)" in k for k in s.scalars(select(TrainingEpochMetric.extra)
                                                  .where(TrainingEpochMetric.model_version_id == mv.id)).first())


def test_a_parent_from_another_project_is_refused(trained: Trained) -> None:
    from dsgen_core.registry.projects import get_project
    from dsgen_core.versions.lifecycle import create_version, freeze_version
    from support import import_file

    reg = trained.registry
    import_file(reg, trained.data / "annotations" / "instances_default.json", images=trained.data / "images", project="other")
    with reg.session() as s:
        create_version(s, get_project(s, "other"), "v1")
    with reg.session() as s:
        freeze_version(s, get_project(s, "other"), "v1", storage=trained.storage)
    # Model versions are named per project: "other" has no m1 (p's m1 was trained on p's data).
    with pytest.raises(DsgenError, match="model version 'm1' does not exist in project 'other'"):
        train_model(reg, "other", "v1", get_recipe("tiny"), storage=trained.storage, parent="m1")


def test_a_new_class_keeps_the_parents_numbers_on_all_objects(tmp_path: Path) -> None:
    """A second batch brings a class (star): the classes keep their rows, and the parent's numbers on
    the child's test split are computed on every object there, old classes included (issue 8.4)."""
    from dsgen_core.demo.synth import generate_demo_dataset
    from dsgen_core.evaluation.model_eval import evaluate_model_version, split_ground_truth
    from dsgen_core.ml.onnx_artifacts import export_model_onnx
    from dsgen_core.versions.lifecycle import get_version
    from support import import_file

    reg, _ = make_registry(tmp_path / "h", n_images=24)
    storage = LocalStorage(reg.settings.storage_root)
    train_model(reg, "p", "v1", get_recipe("tiny"), storage=storage)
    newer = generate_demo_dataset(tmp_path / "newer", n_images=24, seed=4, add_class="star").root
    import_file(reg, newer / "annotations" / "instances_default.json", images=newer / "images", project="p")
    freeze(reg, "v2")
    child = train_model(reg, "p", "v2", get_recipe("tiny"), storage=storage, parent="m1")
    with reg.session() as s:
        project = get_project(s, "p")
        for ref in ("m1", child.human_id):
            export_model_onnx(s, project, ref, storage=storage)
        result = evaluate_model_version(s, project, child.human_id, storage=storage)
        gt, _ = split_ground_truth(s, get_version(s, project, "v2"), "test")
    objects = sum(1 for a in gt["annotations"] if not a["iscrowd"])
    names = {c["id"]: c["name"] for c in gt["categories"]}
    old = {names[a["category_id"]] for a in gt["annotations"]} - {"star"}
    assert result.parent is not None and result.parent.model_version == "m1"
    assert sum(c["support"] for c in result.parent.per_class.values()) == objects > 0
    assert {k for k, c in result.parent.per_class.items() if c["support"]} >= old and old
    assert sum(c["support"] for c in result.per_class.values()) == objects
    reg.dispose()
