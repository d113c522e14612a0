"""The promotion rule on recorded evaluations: not worse on the production model's test split beyond
the tolerance, and not worse on the new classes; decisions and the production history are rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.loop import promotion
from dsgen_core.ml.model_versions import create_model_version, ensure_model
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Deployment, Evaluation, ModelArtifact, ModelVersion
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.lifecycle import create_version, freeze_version, get_version
from support import import_file


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo")
    return (generate_demo_dataset(root / "a", n_images=16, seed=1).root,
            generate_demo_dataset(root / "b", n_images=8, seed=2, add_class="star").root)


def _model(s, p, tag: str, parent: ModelVersion | None = None, onnx: bool = True) -> ModelVersion:  # noqa: ANN001
    mv = create_model_version(s, ensure_model(s, p, "yolo", "detect"), get_version(s, p, tag), "tiny",
                              training_config={}, parent=parent)
    mv.status = "succeeded"
    if onnx:
        s.add(ModelArtifact(model_version_id=mv.id, role="export", format="onnx", storage_uri=f"mem://{mv.human_id}"))
    s.flush()
    return mv


def _evaluated(s, mv: ModelVersion, tag: str, p, map50_95: float, per_class: dict | None = None) -> None:  # noqa: ANN001
    s.add(Evaluation(model_version_id=mv.id, dataset_version_id=get_version(s, p, tag).id, split="test",
                     precision=0.5, recall=0.5, f1_score=0.5, map50=map50_95 + 0.2, map50_95=map50_95,
                     per_class=per_class or {}))
    s.flush()


def test_promotion_by_the_rule(registry: Registry, batches: tuple[Path, Path]) -> None:
    storage = LocalStorage(registry.settings.storage_root)
    import_file(registry, batches[0] / "annotations" / "instances_default.json", images=batches[0] / "images")
    with registry.session() as s:
        p = get_project(s, "p")
        create_version(s, p, "v1")
        freeze_version(s, p, "v1", storage=storage)
    import_file(registry, batches[1] / "annotations" / "instances_default.json", images=batches[1] / "images")
    with registry.session() as s:
        p = get_project(s, "p")
        create_version(s, p, "v2")
        freeze_version(s, p, "v2", storage=storage)
        m1 = _model(s, p, "v1")
        no_onnx = _model(s, p, "v1", onnx=False)
        assert promotion.decide_promotion(s, p, no_onnx.human_id, storage=storage).reason == "no ONNX artifact"
        first = promotion.decide_promotion(s, p, "m1", storage=storage)
        assert first.promoted and "first production model" in first.reason

        worse, better = _model(s, p, "v2", parent=m1), _model(s, p, "v2", parent=m1)
        _evaluated(s, m1, "v1", p, 0.50)
        _evaluated(s, worse, "v1", p, 0.45)
        _evaluated(s, better, "v1", p, 0.495)  # within the tolerance of 0.01
        star = {"star": {"map50": 0.3, "support": 5}}
        for mv, pc in ((worse, star), (better, star), (m1, {})):
            _evaluated(s, mv, "v2", p, 0.4, pc)
        d = promotion.decide_promotion(s, p, worse.human_id, storage=storage, tolerance=0.01)
        assert not d.promoted and "0.4500 < production m1's 0.5000" in d.reason and d.reference == "m1"
        assert worse.promotion is not None and worse.promotion["decision"] == "candidate"
        d = promotion.decide_promotion(s, p, better.human_id, storage=storage, tolerance=0.01)
        assert d.promoted and "new classes star not worse" in d.reason
        assert d.numbers["new_classes"]["star"] == {"candidate_map50": 0.3, "production_map50": 0.0}
        assert promotion.production_model(s, p).id == better.id
        history = promotion.production_history(s, p)
        assert [(h.model_version, h.status) for h in history] == [(better.human_id, "active"), ("m1", "inactive")]
        # The database holds one active production model per project, whatever a writer does.
        old = s.scalars(select(Deployment).where(Deployment.status == "inactive")).one()
        old.status = "active"
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_a_candidate_that_cannot_be_compared_does_not_block_the_rest(registry: Registry,
                                                                      batches: tuple[Path, Path]) -> None:
    storage = LocalStorage(registry.settings.storage_root)
    import_file(registry, batches[0] / "annotations" / "instances_default.json", images=batches[0] / "images")
    with registry.session() as s:
        p = get_project(s, "p")
        create_version(s, p, "v1", split="train=1")  # no test split to compare on
        freeze_version(s, p, "v1", storage=storage)
        m1 = _model(s, p, "v1")
        promotion.promote(s, p, m1, reason={"reason": "by hand"})
        child = _model(s, p, "v1", parent=m1)
        _evaluated(s, child, "v1", p, 0.1)
        decisions = promotion.decide_pending(s, p, storage=storage)
        assert [d.model_version for d in decisions] == [child.human_id]
        assert not decisions[0].promoted and "could not be compared" in decisions[0].reason
        assert child.promotion is not None and child.promotion["decision"] == "failed"
        assert promotion.undecided_candidates(s, p) == []
