"""The CVAT round-trip with the real cvat-sdk against the schema-checked stand-in server (issue 12).

Push a query's images as a task (pre-annotations included), let an "annotator" change, delete and
add objects through the SDK, pull: every frame and object lands on the row it came from, a pull
of an unchanged task adds nothing, and no request or response strays from CVAT's API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cvat_server import PASSWORD, TOKEN, USER, StandIn
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Annotation, CvatFrame, CvatObject, CvatTask, ExportJob, ImportBatch
from support import import_file


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=12, seed=3).root


@pytest.fixture
def cvat(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    with StandIn.start(corpus) as server:
        monkeypatch.setenv("CVAT_URL", server.url)
        monkeypatch.setenv("CVAT_ACCESS_TOKEN", TOKEN)
        yield server
        assert server.violations == []


@pytest.fixture
def imported(registry: Registry, demo: Path) -> Registry:
    import_file(registry, demo / "annotations" / "instances_default.json", images=demo / "images", project="p")
    return registry


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _sdk_task(server: StandIn, task_id: int) -> Any:
    from cvat_sdk import Client

    client = Client(server.url, check_server_version=False)
    client.login((USER, PASSWORD))
    return client, client.tasks.retrieve(task_id)


def test_push_then_pull_lands_on_the_same_rows(imported: Registry, cvat: StandIn, cli: Any) -> None:
    with imported.session() as s:
        n_objects = s.scalar(select(func.count()).select_from(Annotation))
    pushed = _json(cli.invoke("cvat", "push", "--query", "", "--name", "review", "--project", "p", "--json"))
    (task,) = pushed["tasks"]
    assert task["images"] == 12 and task["status"] == "pushed" and task["url"] == f"{cvat.url}/tasks/{task['id']}"
    stored = cvat.tasks[task["id"]]
    assert len(stored["frames"]) == 12 and len(stored["shapes"]) + len(stored["tags"]) == task["objects"] > 0
    assert task["objects"] <= n_objects
    with imported.session() as s:
        assert s.scalar(select(func.count()).select_from(CvatFrame)) == 12
        job = s.get(ExportJob, pushed["export_job_id"])
        assert job is not None and job.status == "done" and job.target == "cvat"

    unchanged = _json(cli.invoke("cvat", "pull", task["id"], "--project", "p", "--json"))
    assert (unchanged["added"], unchanged["changed"], unchanged["deleted"], unchanged["batch_id"]) == (0, 0, 0, None)
    assert unchanged["unchanged"] == task["objects"]

    from cvat_sdk import models
    from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction

    client, t = _sdk_task(cvat, task["id"])
    with client:
        shapes = t.get_annotations().shapes
        rect = shapes[0]  # the demo's objects are polygons
        gone = shapes[1]
        moved = [p + 5.0 for p in rect.points]
        t.update_annotations(models.PatchedLabeledDataRequest(shapes=[models.LabeledShapeRequest(
            id=rect.id, type=rect.type, frame=rect.frame, label_id=rect.label_id, points=moved)]))
        t.remove_annotations(ids=[gone.id])
        t.update_annotations(models.PatchedLabeledDataRequest(shapes=[models.LabeledShapeRequest(
            type=models.ShapeType("rectangle"), frame=1, label_id=rect.label_id, points=[1.0, 2.0, 30.0, 40.0])]),
            action=AnnotationUpdateAction.CREATE)
    with imported.session() as s:
        tid = s.scalar(select(CvatTask.id).where(CvatTask.task_id == task["id"]))
        ann_of = dict(s.execute(select(CvatObject.cvat_id, CvatObject.annotation_id)
                                .where(CvatObject.cvat_task_id == tid)).tuples().all())
    pulled = _json(cli.invoke("cvat", "pull", task["id"], "--project", "p", "--json"))
    assert (pulled["added"], pulled["changed"], pulled["deleted"]) == (1, 1, 1) and pulled["batch_id"]
    with imported.session() as s:
        edited = s.get(Annotation, ann_of[rect.id])
        assert edited is not None and edited.source == "human"
        assert edited.polygon == [moved] and edited.geometry_type == "polygon"
        assert edited.bbox_x == pytest.approx(min(moved[0::2]))
        assert s.get(Annotation, ann_of[gone.id]) is None
        batch = s.get(ImportBatch, pulled["batch_id"])
        assert batch is not None and batch.operation == "pull"
        assert s.scalar(select(func.count()).select_from(Annotation)) == n_objects
    again = _json(cli.invoke("cvat", "pull", task["id"], "--project", "p", "--json"))
    assert (again["added"], again["changed"], again["deleted"], again["batch_id"]) == (0, 0, 0, None)


def test_a_dry_run_shows_the_loss_report_and_sends_nothing(imported: Registry, cvat: StandIn, cli: Any) -> None:
    out = _json(cli.invoke("cvat", "push", "--name", "x", "--project", "p", "--dry-run", "--json",
                           "--max-images-per-task", "5"))
    assert [t["images"] for t in out["tasks"]] == [5, 5, 2] and out["export_job_id"] is None
    assert cvat.requests == [] and cvat.tasks == {}
