"""The CVAT round-trip with the real cvat-sdk against the schema-checked stand-in server (issue 12).

Push a query's images as a task (pre-annotations included), let an "annotator" change, delete and
add objects through the SDK, pull: every frame and object lands on the row it came from, a pull
of an unchanged task adds nothing, and no request or response strays from CVAT's API.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cvat_server import PASSWORD, TOKEN, USER, StandIn
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Annotation, CvatFrame, CvatObject, CvatTask, ExportJob, ImportBatch, LabelClass
from support import import_file


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=12, seed=3).root


@pytest.fixture
def imported(registry: Registry, demo: Path) -> Registry:
    import_file(registry, demo / "annotations" / "instances_default.json", images=demo / "images", project="p")
    return registry


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


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
                                .where(CvatObject.cvat_task_id == tid)).all())
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


def _edit_first_shape(server: StandIn, task_id: int, dx: float) -> Any:
    from cvat_sdk import models

    client, t = _sdk_task(server, task_id)
    with client:
        sh = t.get_annotations().shapes[0]
        t.update_annotations(models.PatchedLabeledDataRequest(shapes=[models.LabeledShapeRequest(
            id=sh.id, type=sh.type, frame=sh.frame, label_id=sh.label_id, points=[p + dx for p in sh.points],
            attributes=[models.AttributeValRequest(spec_id=a.spec_id, value=a.value) for a in sh.attributes])]))
    return sh


@pytest.mark.parametrize("rule", ["cvat", "registry"])
def test_an_object_changed_on_both_sides_is_a_conflict_resolved_by_the_rule(imported: Registry, cvat: StandIn,
                                                                             cli: Any, rule: str) -> None:
    pushed = _json(cli.invoke("cvat", "push", "--name", "c", "--project", "p", "--json"))
    task_id = pushed["tasks"][0]["id"]
    sh = _edit_first_shape(cvat, task_id, 3.0)
    with imported.session() as s:
        aid = s.scalar(select(CvatObject.annotation_id).where(CvatObject.cvat_id == sh.id))
        ann = s.get(Annotation, aid)
        assert ann is not None
        ann.polygon = [[1.0, 1.0, 9.0, 1.0, 9.0, 9.0]]  # the registry's own edit since the push
    out = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--on-conflict", rule, "--json"))
    assert len(out["conflicts"]) == 1 and f"annotation {aid}" in out["conflicts"][0]
    with imported.session() as s:
        ann = s.get(Annotation, aid)
        assert ann is not None
        if rule == "cvat":
            assert out["changed"] == 1 and ann.polygon == [[p + 3.0 for p in sh.points]]
        else:
            assert out["changed"] == 0 and ann.polygon == [[1.0, 1.0, 9.0, 1.0, 9.0, 9.0]]
    again = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert again["conflicts"] == [] and again["batch_id"] is None


def test_attributes_keep_their_types_and_what_cvat_cannot_hold(imported: Registry, cvat: StandIn, cli: Any) -> None:
    with imported.session() as s:
        ann = s.scalars(select(Annotation).order_by(Annotation.id)).first()
        assert ann is not None
        ann.attributes = {**(ann.attributes or {}), "truncated": 2, "score_hint": 0.25, "verified": False,
                          "parts": [1, 2]}
        aid = ann.id
        before = dict(ann.attributes)
    pushed = _json(cli.invoke("cvat", "push", "--name", "t", "--project", "p", "--json"))
    assert any("'parts'" in i["what"] for i in pushed["loss_report"]["items"])
    task_id = pushed["tasks"][0]["id"]
    labels = {lb["name"]: lb for lb in cvat.tasks[task_id]["labels"]}
    kinds = {a["name"]: a["input_type"] for lb in labels.values() for a in lb["attributes"]}
    assert kinds["verified"] == "checkbox" and "occluded" not in kinds and "parts" not in kinds
    _edit_first_shape(cvat, task_id, 1.0)
    out = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert out["changed"] == 1
    with imported.session() as s:
        ann = s.get(Annotation, aid)
        assert ann is not None and ann.attributes == before  # 2 stays int, 0.25 float, False bool, the list kept


def test_model_objects_stay_model_until_a_person_edits_them(imported: Registry, cvat: StandIn, cli: Any) -> None:
    with imported.session() as s:
        for ann in s.scalars(select(Annotation)):
            ann.source, ann.confidence = "model", 0.5
    pushed = _json(cli.invoke("cvat", "push", "--name", "m", "--project", "p", "--annotations", "model", "--json"))
    task_id = pushed["tasks"][0]["id"]
    assert {sh["source"] for sh in cvat.tasks[task_id]["shapes"]} == {"auto"}
    assert any(i["what"] == "model confidence" for i in pushed["loss_report"]["items"])
    sh = _edit_first_shape(cvat, task_id, 2.0)
    _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    with imported.session() as s:
        rows = {a.id: (a.source, a.confidence) for a in s.scalars(select(Annotation))}
        edited = s.scalar(select(CvatObject.annotation_id).where(CvatObject.cvat_id == sh.id))
    assert rows.pop(edited) == ("human", None)
    assert set(rows.values()) == {("model", 0.5)}


def test_chunks_become_tasks_and_segments_become_jobs(imported: Registry, cvat: StandIn, cli: Any) -> None:
    out = _json(cli.invoke("cvat", "push", "--name", "big", "--project", "p", "--max-images-per-task", "5",
                           "--segment-size", "2", "--json"))
    assert [t["images"] for t in out["tasks"]] == [5, 5, 2]
    assert [len(cvat.tasks[t["id"]]["jobs"]) for t in out["tasks"]] == [3, 3, 1]
    status = _json(cli.invoke("cvat", "status", "--project", "p", "--json"))
    assert sorted(r["task_id"] for r in status) == sorted(t["id"] for t in out["tasks"])
    assert all(r["cvat_state"] == "annotation" and r["jobs"] == {"new": len(cvat.tasks[r["task_id"]]["jobs"])}
               for r in status)


def test_failures_are_one_line_and_a_stopped_push_resumes(imported: Registry, cvat: StandIn, cli: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "wrong")
    r = cli.invoke("cvat", "push", "--name", "x", "--project", "p")
    assert r.exit_code == 2 and "not allowed (401" in r.output and "wrong" not in r.output
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", TOKEN)
    cvat.fail_next["POST /api/tasks/{id}/data/"] = (400, {"client_files": ["File too large: a.jpg"]})
    r = cli.invoke("cvat", "push", "--name", "x", "--project", "p")
    assert r.exit_code == 2 and "upload 12 images" in r.output and "File too large" in r.output
    assert len(r.output.strip().splitlines()) == 1
    with imported.session() as s:
        job = s.scalars(select(ExportJob)).one()
        task = s.scalars(select(CvatTask)).one()
        assert job.status == "failed" and task.status == "uploading" and task.task_id in cvat.tasks
    out = _json(cli.invoke("cvat", "push", "--resume", job.id, "--project", "p", "--json"))
    assert out["tasks"][0]["status"] == "pushed" and out["tasks"][0]["id"] == task.task_id
    assert len(cvat.tasks) == 1 and len(cvat.tasks[task.task_id]["frames"]) == 12


def test_a_stopped_push_can_be_cleaned_up(imported: Registry, cvat: StandIn, cli: Any) -> None:
    cvat.fail_next["PUT /api/tasks/{id}/annotations/"] = (400, {"shapes": ["invalid label"]})
    r = cli.invoke("cvat", "push", "--name", "x", "--project", "p")
    assert r.exit_code == 2 and "invalid label" in r.output
    with imported.session() as s:
        job_id = s.scalars(select(ExportJob.id)).one()
    out = _json(cli.invoke("cvat", "clean", job_id, "--project", "p", "--json"))
    assert len(out) == 1 and cvat.tasks == {}
    with imported.session() as s:
        assert s.scalars(select(CvatTask.status)).one() == "removed"


def test_an_unreachable_server_is_exit_3(imported: Registry, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVAT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", TOKEN)
    r = cli.invoke("cvat", "push", "--name", "x", "--project", "p")
    assert r.exit_code == 3 and "cannot reach CVAT" in r.output and TOKEN not in r.output


def test_a_job_pull_judges_its_own_frames_only(imported: Registry, cvat: StandIn, cli: Any) -> None:
    pushed = _json(cli.invoke("cvat", "push", "--name", "j", "--project", "p", "--segment-size", "6", "--json"))
    task_id = pushed["tasks"][0]["id"]
    jobs = cvat.tasks[task_id]["jobs"]
    assert [(j["start"], j["stop"]) for j in jobs] == [(0, 5), (6, 11)]
    shapes = cvat.tasks[task_id]["shapes"]
    first = next(sh for sh in shapes if sh["frame"] <= 5)
    second = next(sh for sh in shapes if sh["frame"] >= 6)
    shapes.remove(first)
    shapes.remove(second)
    out = _json(cli.invoke("cvat", "pull", "--job", jobs[0]["id"], "--project", "p", "--json"))
    assert out["deleted"] == 1  # the second job's deletion waits for its own pull (or the task's)
    rest = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert rest["deleted"] == 1 and rest["added"] == 0


def test_tracks_come_back_as_objects_per_frame_and_only_once(imported: Registry, cvat: StandIn, cli: Any) -> None:
    pushed = _json(cli.invoke("cvat", "push", "--name", "t", "--project", "p", "--json"))
    task_id = pushed["tasks"][0]["id"]
    label = cvat.tasks[task_id]["labels"][0]["id"]
    box = {"type": "rectangle", "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "attributes": []}
    cvat.tasks[task_id]["tracks"].append({
        "id": 9001, "frame": 2, "label_id": label, "group": 0, "source": "manual", "attributes": [], "elements": [],
        "shapes": [{**box, "frame": 2, "points": [1.0, 1.0, 9.0, 9.0], "keyframe": True},
                   {**box, "frame": 3, "points": [2.0, 2.0, 10.0, 10.0], "keyframe": True},
                   {**box, "frame": 4, "points": [2.0, 2.0, 10.0, 10.0], "outside": True, "keyframe": True}]})
    first = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert first["added"] == 2 and first["batch_id"]
    with imported.session() as s:
        tracked = s.scalars(select(Annotation).where(Annotation.source_key.like("%track9001@%"))).all()
        assert len(tracked) == 2 and len({a.track_id for a in tracked}) == 1 and tracked[0].track_id is not None
    again = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert (again["added"], again["changed"], again["deleted"], again["batch_id"]) == (0, 0, 0, None)
    cvat.tasks[task_id]["tracks"][0]["shapes"][1]["outside"] = True  # the annotator ends the track a frame earlier
    shorter = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert shorter["deleted"] == 1
    cvat.tasks[task_id]["tracks"].clear()
    gone = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert gone["deleted"] == 1
    with imported.session() as s:
        assert s.scalars(select(Annotation).where(Annotation.source_key.like("%track9001@%"))).all() == []


def test_a_tracks_rectangles_are_interpolated_between_keyframes(imported: Registry, cvat: StandIn, cli: Any) -> None:
    pushed = _json(cli.invoke("cvat", "push", "--name", "i", "--project", "p", "--json"))
    task_id = pushed["tasks"][0]["id"]
    label = cvat.tasks[task_id]["labels"][0]["id"]
    box = {"type": "rectangle", "occluded": False, "z_order": 0, "attributes": []}
    cvat.tasks[task_id]["tracks"].append({
        "id": 77, "frame": 0, "label_id": label, "group": 0, "source": "manual", "attributes": [], "elements": [],
        "shapes": [{**box, "frame": 0, "points": [0.0, 0.0, 10.0, 10.0], "rotation": 350.0, "outside": False},
                   {**box, "frame": 4, "points": [40.0, 0.0, 50.0, 10.0], "rotation": 10.0, "outside": False},
                   {**box, "frame": 6, "points": [40.0, 0.0, 50.0, 10.0], "rotation": 10.0, "outside": True}]})
    out = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert out["added"] == 6  # frames 0-5: keyframes 0 and 4, 1-3 between them, 5 held until the outside at 6
    with imported.session() as s:
        rows = {int(a.source_key.rsplit("@", 1)[1]): a for a in
                s.scalars(select(Annotation).where(Annotation.source_key.like("%track77@%")))}
    assert sorted(rows) == [0, 1, 2, 3, 4, 5]
    assert rows[2].bbox_x == pytest.approx(20.0) and rows[2].attributes["keyframe"] is False
    assert rows[2].attributes["rotation"] == pytest.approx(0.0)  # 350 -> 10 turns through 0, not through 180
    assert rows[4].attributes["keyframe"] is True and rows[5].bbox_x == pytest.approx(40.0)


def test_registry_tracks_go_as_cvat_tracks_and_come_back_onto_their_objects(registry: Registry, cvat: StandIn,
                                                                             cli: Any, tmp_path: Path) -> None:
    seq = generate_demo_dataset(tmp_path / "demo40", n_images=40, seed=3)  # its sequences carry track ids
    import_file(registry, seq.annotations_path, images=seq.images_dir, project="p")
    with registry.session() as s:
        tracked = s.scalars(select(Annotation).where(Annotation.track_id.is_not(None))).all()
        by_track: dict[int, list[Annotation]] = {}
        for a in tracked:
            by_track.setdefault(a.track_id, []).append(a)
    assert tracked
    pushed = _json(cli.invoke("cvat", "push", "--name", "tr", "--project", "p", "--json"))
    task_id = pushed["tasks"][0]["id"]
    sent = cvat.tasks[task_id]["tracks"]
    assert sent and all(not sh["outside"] for sh in (tr["shapes"][0] for tr in sent))
    again = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert (again["added"], again["changed"], again["deleted"], again["batch_id"]) == (0, 0, 0, None)
    track = sent[0]
    key = track["shapes"][0]
    key["points"] = [p + 2.0 for p in key["points"]]
    with registry.session() as s:
        members = s.scalar(select(CvatObject.members).where(CvatObject.kind == "track", CvatObject.cvat_id == track["id"]))
    moved = members[str(key["frame"])]
    out = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert out["added"] == 0 and out["deleted"] == 0 and out["changed"] >= 1
    with registry.session() as s:
        a = s.get(Annotation, moved)
        assert a is not None and a.source == "human" and a.track_id is not None
        assert a.track_id == next(t for t, objs in by_track.items() if moved in {o.id for o in objs})


def test_named_keypoints_go_as_a_skeleton_with_their_visibility(registry: Registry, cvat: StandIn,
                                                                  cli: Any) -> None:
    from PIL import Image

    doc = {"images": [{"id": 1, "file_name": "p.png", "width": 64, "height": 48}],
           "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "eye", "ear"], "skeleton": [[1, 2], [2, 3]]}],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 30, 30], "area": 900, "iscrowd": 0,
                            "keypoints": [10, 10, 2, 0, 0, 0, 20, 22, 1], "num_keypoints": 2}]}
    root = Path(cli.cwd) / "kp"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (64, 48)).save(root / "images" / "p.png")
    (root / "a.json").write_text(json.dumps(doc))
    import_file(registry, root / "a.json", images=root / "images", project="p")
    pushed = _json(cli.invoke("cvat", "push", "--name", "k", "--project", "p", "--json"))
    assert not any("keypoints" in i["what"] for i in pushed["loss_report"]["items"])
    task_id = pushed["tasks"][0]["id"]
    (label,) = cvat.tasks[task_id]["labels"]
    assert label["type"] == "skeleton" and [s["name"] for s in label["sublabels"]] == ["nose", "eye", "ear"]
    assert 'data-node-from="1"' in label["svg"] and 'data-label-name="ear"' in label["svg"]
    (sk,) = cvat.tasks[task_id]["shapes"]
    assert sk["type"] == "skeleton" and [(e["outside"], e["occluded"]) for e in sk["elements"]] == [
        (False, False), (True, False), (False, True)]
    unchanged = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert unchanged["batch_id"] is None
    sk["elements"][1].update(outside=False, points=[5.0, 6.0])  # the annotator places the eye
    _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    with registry.session() as s:
        a = s.scalars(select(Annotation)).one()
        assert a.keypoints == [10, 10, 2, 5, 6, 2, 20, 22, 1] and [a.bbox_x, a.bbox_w] == [1, 30]


def test_review_findings_negative_rotation_ellipses_and_a_job_after_a_registry_delete(
        imported: Registry, cvat: StandIn, cli: Any) -> None:
    with imported.session() as s:
        first = s.scalars(select(Annotation).order_by(Annotation.id)).first()
        assert first is not None
        first.attributes = {**(first.attributes or {}), "rotation": -17.5}  # CVAT takes [0, 360)
    pushed = _json(cli.invoke("cvat", "push", "--name", "r", "--project", "p", "--segment-size", "6", "--json"))
    task_id = pushed["tasks"][0]["id"]
    assert {sh["rotation"] for sh in cvat.tasks[task_id]["shapes"]} >= {342.5}
    label = cvat.tasks[task_id]["labels"][0]["id"]
    cvat.tasks[task_id]["shapes"].append({"id": 424242, "type": "ellipse", "frame": 0, "label_id": label,
                                          "points": [5.0, 5.0, 9.0, 8.0], "occluded": False, "outside": False,
                                          "z_order": 0, "rotation": 0.0, "group": 0, "source": "manual",
                                          "attributes": [], "elements": []})
    out = _json(cli.invoke("cvat", "pull", task_id, "--project", "p", "--json"))
    assert out["skipped"] and "ellipse" in out["skipped"][0] and out["deleted"] == 0 and out["added"] == 0
    with imported.session() as s:  # an object pushed in job 1 is deleted in the registry; job 1 is pulled twice
        aid = s.scalar(select(CvatObject.annotation_id).join(Annotation, Annotation.id == CvatObject.annotation_id)
                       .where(CvatObject.cvat_task_id.is_not(None)).order_by(Annotation.asset_id))
        s.delete(s.get(Annotation, aid))
    job = cvat.tasks[task_id]["jobs"][0]["id"]
    for _ in range(2):
        r = cli.invoke("cvat", "pull", "--job", job, "--project", "p", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["added"] == 0  # the registry's deletion stands: CVAT's copy is unchanged


def test_images_on_cvats_shared_storage_are_referenced_not_uploaded(registry: Registry, cvat: StandIn, cli: Any,
                                                                    demo: Path, tmp_path: Path) -> None:
    share = tmp_path / "share"
    shutil.copytree(demo / "images", share / "set1")  # the share, as this machine mounts it
    import_file(registry, demo / "annotations" / "instances_default.json", images=share / "set1", project="p")
    cvat.share_root = share
    out = _json(cli.invoke("cvat", "push", "--name", "s", "--project", "p", "--share-root", share, "--json"))
    task = cvat.tasks[out["tasks"][0]["id"]]
    assert len(task["frames"]) == 12 and all(f["name"].startswith("set1/") for f in task["frames"])
    assert ("POST", f"/api/tasks/{task['id']}/data/") in cvat.requests
    assert out["tasks"][0]["objects"] > 0
    outside = cli.invoke("cvat", "push", "--name", "x", "--project", "p", "--share-root", tmp_path / "elsewhere")
    assert outside.exit_code == 2 and "not under the shared folder" in outside.output


def _content(task: dict[str, Any]) -> dict[str, Any]:
    """A task's annotations by names, not ids: what two pushes of the same selection must share."""
    label = {lb["id"]: lb["name"] for lb in task["labels"]}
    attr = {a["id"]: a["name"] for lb in task["labels"] for a in lb["attributes"]}

    def one(o: dict[str, Any]) -> tuple[Any, ...]:
        return (label[o["label_id"]], o["frame"], o.get("type"), tuple(o.get("points") or ()),
                bool(o.get("occluded")), float(o.get("rotation") or 0.0), bool(o.get("outside")),
                tuple(sorted((attr[a["spec_id"]], a["value"]) for a in o["attributes"])))

    return {"shapes": sorted(one(o) for o in task["shapes"]), "tags": sorted(one(o) for o in task["tags"]),
            "tracks": sorted((label[tr["label_id"]], tuple(one({**sh, "label_id": tr["label_id"]})
                                                          for sh in tr["shapes"])) for tr in task["tracks"])}


@pytest.mark.parametrize("fmt", ["CVAT for images 1.1", "COCO 1.0"])
def test_pre_annotations_as_a_file_match_the_api_push_and_pull_back_unchanged(
        registry: Registry, cvat: StandIn, cli: Any, tmp_path: Path, fmt: str) -> None:
    seq = generate_demo_dataset(tmp_path / "demo", n_images=24, seed=5)  # polygons, boxes, masks and tracks
    import_file(registry, seq.annotations_path, images=seq.images_dir, project="p")
    with registry.session() as s:
        first = s.scalars(select(Annotation).order_by(Annotation.id)).first()
        assert first is not None
        first.attributes = {**(first.attributes or {}), "occluded": True, "rotation": 12.25, "colour": "réd 赤"}
    by_api = _json(cli.invoke("cvat", "push", "--name", "api", "--project", "p", "--json"))
    by_file = _json(cli.invoke("cvat", "push", "--name", "file", "--project", "p", "--format", fmt, "--json"))
    api, file = cvat.tasks[by_api["tasks"][0]["id"]], cvat.tasks[by_file["tasks"][0]["id"]]
    (imported,) = [(fmt_, data) for tid, fmt_, data in cvat.imported if tid == file["id"]]
    assert imported[0] == {"CVAT for images 1.1": "CVAT 1.1", "COCO 1.0": "COCO 1.0"}[fmt]
    assert cvat.violations == []
    want, got = _content(api), _content(file)
    if fmt == "COCO 1.0":  # no tracks: each tracked frame goes as a shape of its own, and the loss report says so
        assert api["tracks"] and not file["tracks"] and not file["tags"]
        assert any("COCO 1.0 has no tracks" in i["how"] for i in by_file["loss_report"]["items"])
        assert len(file["shapes"]) == by_file["tasks"][0]["objects"] > len(api["shapes"])
        assert set(want["shapes"]) <= set(got["shapes"])
    else:
        assert got == want and api["tracks"]
    assert any(("colour", "réd 赤") in sh[-1] and sh[4] and sh[5] == 12.25 for sh in got["shapes"])
    unchanged = _json(cli.invoke("cvat", "pull", file["id"], "--project", "p", "--json"))
    assert (unchanged["added"], unchanged["changed"], unchanged["deleted"], unchanged["batch_id"]) == (0, 0, 0, None)


def test_pull_since_reads_only_the_jobs_cvat_changed(imported: Registry, cvat: StandIn, cli: Any) -> None:
    from cvat_sdk import models

    pushed = _json(cli.invoke("cvat", "push", "--name", "s", "--project", "p", "--segment-size", "4", "--json"))
    task_id = pushed["tasks"][0]["id"]
    jobs = cvat.tasks[task_id]["jobs"]
    assert len(jobs) == 3
    nothing = _json(cli.invoke("cvat", "pull", task_id, "--since", "--project", "p", "--json"))
    assert (nothing["jobs_read"], nothing["batch_id"]) == (0, None)
    assert not any(path.endswith("/annotations/") for _m, path in cvat.requests[-3:])
    client, t = _sdk_task(cvat, task_id)
    with client:
        shapes = t.get_annotations().shapes
        sh = next(s for s in shapes if 4 <= s.frame <= 7)  # in the second job
        t.update_annotations(models.PatchedLabeledDataRequest(shapes=[models.LabeledShapeRequest(
            id=sh.id, type=sh.type, frame=sh.frame, label_id=sh.label_id, points=[p + 1.0 for p in sh.points])]))
        gone = next(s for s in shapes if s.frame >= 8)  # in the third
        t.remove_annotations(ids=[gone.id])
    before = len(cvat.requests)
    out = _json(cli.invoke("cvat", "pull", task_id, "--since", "--project", "p", "--json"))
    assert (out["jobs_read"], out["changed"], out["deleted"], out["added"]) == (2, 1, 1, 0)
    # A changed job means the whole task is read: a job's own answer holds only its copy of a track.
    read = [p for m, p in cvat.requests[before:] if p.endswith("/annotations/")]
    assert read == [f"/api/tasks/{task_id}/annotations/"]
    # A ground-truth job added in CVAT is not an annotation job: it neither triggers a pull nor is read.
    cvat.tasks[task_id]["jobs"].append({"id": 99_999, "start": 0, "stop": 11, "state": "new", "type": "ground_truth",
                                        "updated": "2099-01-01T00:00:00Z"})
    again = _json(cli.invoke("cvat", "pull", task_id, "--since", "--project", "p", "--json"))
    assert (again["jobs_read"], again["batch_id"]) == (0, None)
    everything = _json(cli.invoke("cvat", "pull", task_id, "--since", "2000-01-01T00:00:00Z", "--project", "p",
                                  "--json"))
    assert everything["jobs_read"] == 3 and everything["batch_id"] is None and everything["unchanged"] > 0
    bad = cli.invoke("cvat", "pull", task_id, "--since", "yesterday", "--project", "p")
    assert bad.exit_code == 2 and "ISO time" in bad.output
    assert cvat.violations == []


def test_images_in_a_cvat_cloud_storage_are_referenced_by_key(registry: Registry, cvat: StandIn, cli: Any,
                                                             demo: Path, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"  # the bucket's content, as this machine sees it (a mount or a synced copy)
    shutil.copytree(demo / "images", bucket / "cam1")
    import_file(registry, demo / "annotations" / "instances_default.json", images=bucket / "cam1", project="p")
    cvat.cloud_storages[7] = bucket
    out = _json(cli.invoke("cvat", "push", "--name", "c", "--project", "p", "--cloud-storage", 7,
                           "--share-root", bucket, "--json"))
    task = cvat.tasks[out["tasks"][0]["id"]]
    assert len(task["frames"]) == 12 and all(f["name"].startswith("cam1/") for f in task["frames"])
    # One request names the keys; an upload would take three (Upload-Start, the files, Upload-Finish).
    assert cvat.requests.count(("POST", f"/api/tasks/{task['id']}/data/")) == 1
    again = _json(cli.invoke("cvat", "pull", task["id"], "--project", "p", "--json"))
    assert again["batch_id"] is None and again["unchanged"] == out["tasks"][0]["objects"] > 0
    missing = cli.invoke("cvat", "push", "--name", "m", "--project", "p", "--cloud-storage", 8, "--share-root", bucket)
    assert missing.exit_code == 2 and "cloud storage 8" in missing.output
    alone = cli.invoke("cvat", "push", "--name", "m", "--project", "p", "--cloud-storage", 7)
    assert alone.exit_code == 2 and "--share-root" in alone.output
    assert cvat.violations == []


def _frames_with_a_track(registry: Registry, cli: Any, tmp_path: Path) -> dict[int, int]:
    """A 30-frame video imported every 3rd frame, a car tracked over its first four sampled frames:
    video frame number -> its image asset."""
    from dsgen_core.formats.report import ValidationReport
    from dsgen_core.registry.ingest import ClassRecord, ImageRecord, IngestBatch, ObjectRecord, ingest
    from dsgen_core.registry.projects import get_project
    from dsgen_core.registry.schema import Frame
    from dsgen_core.storage import open_storage
    from videos import make_video

    video = make_video(tmp_path / "clips" / "street.mp4", 30)
    assert cli.invoke("import", "video", video, "--every", "3", "--project", "p").exit_code == 0
    with registry.session() as s:
        frame_asset = dict(s.execute(select(Frame.frame_idx, Frame.image_asset_id)).all())
    images = [ImageRecord(f, "", "", asset_id=frame_asset[f]) for f in (0, 3, 6, 9)]
    objects = [ObjectRecord(k, k, im.ref, "car", "bbox", (4.0 + k, 5.0, 10.0, 8.0), None, None, None, None, None, 80.0,
                            False, {"track_id": "car-1"}, None, None) for k, im in enumerate(images)]
    batch = IngestBatch(operation="import", audit_action="import.test", format="test", source_uri="mem",
                        content_sha256="0" * 64, namespace="t", images=images, classes=[ClassRecord("car", "car")],
                        objects=objects, report=ValidationReport(), file="mem")
    with registry.session() as s:
        ingest(s, get_project(s, "p"), batch, storage=open_storage(registry.settings.storage_root), actor="test")
    return frame_asset


@pytest.mark.parametrize("fmt", ["json", "CVAT for images 1.1"])
def test_a_videos_frames_go_as_a_video_task_and_come_back_to_their_frames(registry: Registry, cvat: StandIn, cli: Any,
                                                                          tmp_path: Path, fmt: str) -> None:
    frame_asset = _frames_with_a_track(registry, cli, tmp_path)
    pushed = _json(cli.invoke("cvat", "push", "--name", "v", "--project", "p", "--format", fmt, "--json"))
    task = cvat.tasks[pushed["tasks"][0]["id"]]
    assert task["video"]["name"] == "street.mp4" and (task["video"]["start"], task["video"]["stop"]) == (0, 27)
    assert task["video"]["filter"] == "step=3" and len(task["frames"]) == 10
    (track,) = task["tracks"]  # the registry's track, as a CVAT track on task frames 0..3 (an outside key after)
    assert [(sh["frame"], sh["outside"]) for sh in track["shapes"]][-1] == (4, True)
    with registry.session() as s:
        rows = s.execute(select(CvatFrame.frame, CvatFrame.asset_id, CvatFrame.name)).all()
    assert {(f, a) for f, a, _n in rows} == {(k, frame_asset[3 * k]) for k in range(10)}
    assert {n for _f, _a, n in rows} == {f"frame_{3 * k:06d}" for k in range(10)}
    unchanged = _json(cli.invoke("cvat", "pull", task["id"], "--project", "p", "--json"))
    assert unchanged["batch_id"] is None
    label = task["labels"][0]["id"]
    box = {"type": "rectangle", "occluded": False, "z_order": 0, "rotation": 0.0, "attributes": [], "keyframe": True}
    task["tracks"].append({  # an annotator tracks a second car on task frames 6..8 (video frames 18..24)
        "id": 9002, "frame": 6, "label_id": label, "group": 0, "source": "manual", "attributes": [], "elements": [],
        "shapes": [{**box, "frame": 6, "points": [1.0, 1.0, 9.0, 9.0], "outside": False},
                   {**box, "frame": 8, "points": [5.0, 1.0, 13.0, 9.0], "outside": False}]})
    out = _json(cli.invoke("cvat", "pull", task["id"], "--project", "p", "--json"))
    assert out["added"] == 4  # no outside keyframe: CVAT shows the track to the task's last frame
    with registry.session() as s:
        new = s.execute(select(Annotation.asset_id, Annotation.bbox_x).where(Annotation.source_key.like("%track9002@%"))
                        .order_by(Annotation.asset_id)).all()
    assert [(a, x) for a, x in new] == [(frame_asset[18], 1.0), (frame_asset[21], 3.0), (frame_asset[24], 5.0),
                                        (frame_asset[27], 5.0)]
    assert cvat.violations == []


def test_chunks_of_a_video_are_video_tasks_and_as_images_makes_image_tasks(registry: Registry, cvat: StandIn,
                                                                           cli: Any, tmp_path: Path) -> None:
    _frames_with_a_track(registry, cli, tmp_path)
    pushed = _json(cli.invoke("cvat", "push", "--name", "v", "--project", "p", "--max-images-per-task", "4", "--json"))
    windows = [(cvat.tasks[t["id"]]["video"]["start"], cvat.tasks[t["id"]]["video"]["stop"]) for t in pushed["tasks"]]
    assert windows == [(0, 9), (12, 21), (24, 27)]
    images = _json(cli.invoke("cvat", "push", "--name", "i", "--project", "p", "--as-images", "--json"))
    task = cvat.tasks[images["tasks"][0]["id"]]
    assert "video" not in task and [f["name"] for f in task["frames"]][:2] == ["frame_000000.jpg", "frame_000003.jpg"]
    assert cvat.violations == []


def test_skeleton_tracks_keep_their_points_both_ways(registry: Registry, cvat: StandIn, cli: Any) -> None:
    """Review finding: a keypoints track went out as a CVAT track of empty skeletons, and a CVAT skeleton
    track came back with every point zero (its points are tracks of their own, ``elements``)."""
    from PIL import Image

    kp = {"id": 1, "name": "person", "keypoints": ["nose", "eye"], "skeleton": [[1, 2]]}
    doc = {"images": [{"id": i, "file_name": f"p{i}.png", "width": 64, "height": 48} for i in (1, 2)],
           "categories": [kp],
           "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [1, 1, 30, 30], "area": 900,
                            "iscrowd": 0, "keypoints": [10 + i, 10, 2, 20, 22, 2], "num_keypoints": 2,
                            "attributes": {"track_id": 5, "keyframe": True}} for i in (1, 2)]}
    root = Path(cli.cwd) / "kpt"
    (root / "images").mkdir(parents=True)
    for i in (1, 2):
        Image.new("RGB", (64, 48)).save(root / "images" / f"p{i}.png")
    (root / "a.json").write_text(json.dumps(doc))
    import_file(registry, root / "a.json", images=root / "images", project="p")
    pushed = _json(cli.invoke("cvat", "push", "--name", "k", "--project", "p", "--json"))
    task = cvat.tasks[pushed["tasks"][0]["id"]]
    assert task["tracks"] == [] and [len(s["elements"]) for s in task["shapes"]] == [2, 2]
    assert sorted(s["elements"][0]["points"][0] for s in task["shapes"]) == [11.0, 12.0]
    label = task["labels"][0]
    nose, eye = (sub["id"] for sub in label["sublabels"])
    pt = {"type": "points", "occluded": False, "z_order": 0, "rotation": 0.0, "attributes": [], "keyframe": True}
    task["tracks"].append({  # an annotator's skeleton track over both frames; the eye is hidden on the second
        "id": 777, "frame": 0, "label_id": label["id"], "group": 0, "source": "manual", "attributes": [],
        "shapes": [{**pt, "type": "skeleton", "frame": f, "points": [], "outside": False} for f in (0, 1)],
        "elements": [{"id": 778, "frame": 0, "label_id": nose, "group": 0, "source": "manual", "attributes": [],
                      "shapes": [{**pt, "frame": 0, "points": [3.0, 4.0], "outside": False}]},
                     {"id": 779, "frame": 0, "label_id": eye, "group": 0, "source": "manual", "attributes": [],
                      "shapes": [{**pt, "frame": 0, "points": [5.0, 6.0], "outside": False},
                                 {**pt, "frame": 1, "points": [5.0, 6.0], "outside": True}]}]})
    out = _json(cli.invoke("cvat", "pull", task["id"], "--project", "p", "--json"))
    assert out["added"] == 2
    with registry.session() as s:
        kps = [a.keypoints for a in s.scalars(select(Annotation).where(Annotation.source_key.like("%track777@%"))
                                                .order_by(Annotation.asset_id))]
    assert kps == [[3, 4, 2, 5, 6, 2], [3, 4, 2, 0, 0, 0]]


def test_every_frame_of_a_video_is_a_video_task_too(registry: Registry, cvat: StandIn, cli: Any, tmp_path: Path) -> None:
    """Review finding: cvat-sdk sends frame_filter "step=1" for every frame, which the check took for a mismatch."""
    from videos import make_video

    video = make_video(tmp_path / "clips" / "road.mp4", 12)
    assert cli.invoke("import", "video", video, "--project", "p").exit_code == 0
    with registry.session() as s:
        from dsgen_core.registry.ontology import add_classes
        from dsgen_core.registry.projects import get_project

        p = get_project(s, "p")
        car = LabelClass(project_id=p.id, key="car", display_name="car")
        s.add(car)
        s.flush()
        add_classes(s, p, [car])
    pushed = _json(cli.invoke("cvat", "push", "--name", "all", "--project", "p", "--json"))
    task = cvat.tasks[pushed["tasks"][0]["id"]]
    assert task["video"]["filter"] == "step=1" and len(task["frames"]) == 12 and pushed["tasks"][0]["status"] == "pushed"
