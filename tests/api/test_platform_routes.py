"""Insights, saved views, dataset versions (freeze as a Dagster run, its events as SSE, the export as a
ZIP), models, similarity, CVAT tasks, export jobs and uploads through the REST API (issue 13)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from api_world import World
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Asset
from dsgen_core.versions.lifecycle import freeze_version

RUN_TIMEOUT_S = 240


def _wait(world: World, started: dict[str, Any], who: str = "editor") -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        st = world.get(started["status_url"], who).json()
        if st["done"]:
            return st
        time.sleep(0.5)
    raise AssertionError(f"run {started['run_id']} did not finish in {RUN_TIMEOUT_S} s")


def _events(world: World, url: str, who: str = "viewer", **headers: str) -> list[tuple[str, dict[str, Any], str]]:
    """(event name, data, id) of a whole server-sent event stream."""
    out = []
    with world.client.stream("GET", url, headers=world.as_(who, **headers)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name, ident, data = "message", "", ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                out.append((name, json.loads(data), ident))
                name, ident, data = "message", "", ""
    return out


def test_insights_of_a_query_and_saved_views(world: World) -> None:
    all_ = world.get("/api/projects/alpha/insights", "viewer").json()
    some = world.get("/api/projects/alpha/insights", "viewer", params={"q": "category:circle"}).json()
    assert all_["images"] == 12 and 0 < some["images"] < 12
    classes = all_["class_distribution"]
    assert "circle" in json.dumps(classes)
    assert world.get("/api/projects/alpha/insights", "viewer", params={"q": "width>>"}).json()["column"] >= 1
    made = world.client.post("/api/projects/alpha/insights/views", headers=world.as_("editor"),
                             json={"name": "circles", "query": "category:circle", "charts": ["class_distribution"]})
    assert made.status_code == 201 and made.json()["saved_by"] == "editor@example.com"
    assert world.client.post("/api/projects/alpha/insights/views", headers=world.as_("viewer"),
                             json={"name": "x"}).status_code == 403
    shown = world.get("/api/projects/alpha/insights/views/circles", "viewer").json()
    assert shown["insights"]["images"] == some["images"] and list(shown["insights"]) >= ["class_distribution"]
    assert [v["name"] for v in world.get("/api/projects/alpha/insights/views", "viewer").json()] == ["circles"]
    assert world.get("/api/projects/beta/insights/views/circles", "outsider").status_code == 404
    assert world.client.delete("/api/projects/alpha/insights/views/circles",
                               headers=world.as_("editor")).status_code == 204
    assert world.get("/api/projects/alpha/insights/views", "viewer").json() == []


def test_a_version_is_made_frozen_by_a_run_followed_live_and_downloaded(world: World) -> None:
    made = world.client.post("/api/projects/alpha/versions", headers=world.as_("editor"),
                             json={"tag": "v1", "split": "train=0.7,val=0.15,test=0.15"})
    assert made.status_code == 201 and made.json()["frozen"] is False
    assert world.client.post("/api/projects/alpha/versions", headers=world.as_("editor"),
                             json={"tag": "v1"}).status_code == 400  # exists
    started = world.client.post("/api/projects/alpha/versions/v1/freeze", headers=world.as_("editor"))
    assert started.status_code == 202, started.text
    run = started.json()
    assert world.get(run["status_url"], "outsider").status_code == 404
    assert world.get(run["status_url"].replace("/alpha/", "/beta/"), "outsider").status_code == 404
    events = _events(world, run["events_url"])
    assert events[-1][0] == "end" and events[-1][1]["status"] == "SUCCESS", events[-3:]
    types = [d["type"] for n, d, _ in events if n == "message"]
    assert "RUN_START" in types and "ASSET_MATERIALIZATION" in types and types[-1] == "RUN_SUCCESS"
    state = _wait(world, run)
    assert state["status"] == "SUCCESS" and state["steps_done"] == state["steps_total"] > 1
    # a reconnect resumes after the last event it saw
    mid = [i for n, _d, i in events if n == "message"][len(types) // 2]
    again = _events(world, run["events_url"], **{"Last-Event-ID": mid})
    assert [d["type"] for n, d, _ in again if n == "message"] == types[len(types) // 2 + 1:]
    v1 = world.get("/api/projects/alpha/versions/v1", "viewer").json()
    assert v1["frozen"] and sum(v1["splits"].values()) == 12 and v1["classes"]
    assert [v["tag"] for v in world.get("/api/projects/alpha/versions", "viewer").json()] == ["v1"]
    z = world.get("/api/projects/alpha/versions/v1/exports/coco", "viewer")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert any(n.endswith(".json") for n in names) and sum(n.endswith((".jpg", ".png")) for n in names) == 12
    assert world.get("/api/projects/alpha/versions/v1/exports/xml", "viewer").status_code == 404
    # a second version and the diff
    world.client.post("/api/projects/alpha/versions", headers=world.as_("editor"),
                      json={"tag": "v2", "query": "category:circle"})
    assert _wait(world, world.client.post("/api/projects/alpha/versions/v2/freeze",
                                          headers=world.as_("editor")).json())["status"] == "SUCCESS"
    diff = world.get("/api/projects/alpha/versions/v1/diff/v2", "viewer").json()
    assert diff["from"] == "v1" and diff["to"] == "v2" and diff["images_removed"]
    assert world.client.post("/api/projects/alpha/versions/v2/freeze", headers=world.as_("editor")).status_code == 400


def test_models_similarity_cvat_and_export_jobs_answer_for_an_empty_project(world: World) -> None:
    assert world.get("/api/projects/alpha/models", "viewer").json() == []
    assert world.get("/api/projects/alpha/models/m1", "viewer").status_code == 404
    bad = world.client.post("/api/projects/alpha/models", headers=world.as_("editor"),
                            json={"version": "nope", "recipe": "demo"})
    assert bad.status_code in (400, 404) and bad.headers["content-type"].startswith("application/problem+json")
    assert world.client.post("/api/projects/alpha/models", headers=world.as_("editor"),
                             json={"version": "v1", "recipe": "no-such-recipe"}).status_code == 400
    sim = world.get("/api/projects/alpha/similar", "viewer", params={"object_id": 1})
    assert sim.status_code == 404 and "embedding" in sim.json()["detail"]
    assert world.get("/api/projects/alpha/cvat/tasks", "viewer").json() == []
    assert world.get("/api/projects/alpha/export-jobs", "viewer").json() == []
    assert world.get("/api/projects/alpha/export-jobs/1", "viewer").status_code == 404
    assert world.client.post("/api/projects/alpha/cvat/pull", headers=world.as_("editor"),
                             json={"task_id": 5}).status_code == 404
    assert world.client.post("/api/projects/alpha/cvat/push", headers=world.as_("editor"),
                             json={"name": "t", "query": "width>>"}).status_code == 400


def _images(world: World, project: str) -> int:
    with world.registry.session() as s:
        return int(s.scalar(select(func.count()).select_from(Asset).where(
            Asset.project_id == get_project(s, project).id)) or 0)


def test_a_coco_zip_upload_is_imported_by_a_run(world: World, demo: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(demo / "annotations" / "instances_default.json", "annotations/instances_default.json")
        for p in sorted(q for q in (demo / "images").rglob("*") if q.is_file()):
            zf.write(p, f"images/{p.relative_to(demo / 'images').as_posix()}")
    before = _images(world, "beta")
    with world.registry.session() as s:  # a fresh project, for the outsider who owns beta
        from dsgen_core.registry.projects import ensure_project

        ensure_project(s, "gamma", source="test")
    r = world.client.post("/api/projects/gamma/uploads", headers=world.as_("root", **{"Content-Type": "application/zip"}),
                          content=buf.getvalue())
    assert r.status_code == 202, r.text
    state = _wait(world, r.json(), "root")
    assert state["status"] == "SUCCESS", state["error"]
    assert _images(world, "gamma") == 12 and _images(world, "beta") == before
    page = world.get("/api/projects/gamma/assets", "root", params={"q": "category:circle", "count": "true"}).json()
    assert page["total"] > 0
    assert world.client.get(page["items"][0]["thumbnail_url"]).status_code == 200


def test_bad_uploads_are_refused_and_nothing_is_left(world: World, monkeypatch: Any) -> None:
    uploads = world.registry.settings.home / "uploads"
    post = world.client.post
    editor = world.as_("editor", **{"Content-Type": "application/zip"})
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("../../evil.json", "{}")
    r = post("/api/projects/alpha/uploads", headers=editor, content=slip.getvalue())
    assert r.status_code == 400 and "outside the target folder" in r.json()["detail"]
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.json", b"0" * (50 << 20))
    r = post("/api/projects/alpha/uploads", headers=editor, content=bomb.getvalue())
    assert r.status_code == 400 and "bomb" in r.json()["detail"]
    assert post("/api/projects/alpha/uploads", headers=editor, content=b"not a zip or json").status_code == 400
    assert post("/api/projects/alpha/uploads", headers=editor, content=b"").status_code == 400
    monkeypatch.setenv("DSGEN_MAX_UPLOAD_BYTES", "1000")
    r = post("/api/projects/alpha/uploads", headers=editor, content=b"{" + b" " * 5000 + b"}")
    assert r.status_code == 413 and r.json()["title"] == "Content Too Large"

    def chunks() -> Any:  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b" " * 500

    assert post("/api/projects/alpha/uploads", headers=editor, content=chunks()).status_code == 413
    assert post("/api/projects/alpha/uploads", headers=world.as_("viewer"), content=b"{}").status_code == 403
    assert not uploads.exists() or not any(uploads.iterdir())


def test_plan_limits_refuse_uploads_and_training_and_usage_is_recorded(world: World, demo: Path) -> None:
    from dsgen_core.registry.schema import UsageRecord, User

    def user(s: Any, who: str) -> Any:
        found = s.scalar(select(User).where(User.email == f"{who}@example.com"))
        assert found is not None
        return found

    with world.registry.session() as s:  # a user's own limits replace their plan's
        user(s, "owner").storage_gb_limit = 1e-9  # alpha's owner pays for what alpha stores
        user(s, "editor").gpu_hours_limit = 0.0  # who starts a training pays for it
    payload = (demo / "annotations" / "instances_default.json").read_bytes()
    headers = world.as_("editor", **{"Content-Type": "application/json"})
    r = world.client.post("/api/projects/alpha/uploads", headers=headers, content=payload)
    assert r.status_code == 403 and r.json()["title"] == "Plan limit reached", r.text
    assert "storage limit" in r.json()["detail"] and "owner@example.com" in r.json()["detail"]
    uploads = world.registry.settings.home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    world.client.post("/api/projects/alpha/versions", headers=world.as_("editor"), json={"tag": "t1"})
    r = world.client.post("/api/projects/alpha/models", headers=world.as_("editor"), json={"version": "t1", "recipe": "demo"})
    assert r.status_code == 400  # not frozen: refused before the plan is asked
    with world.registry.session() as s:
        freeze_version(s, get_project(s, "alpha"), "t1")
    r = world.client.post("/api/projects/alpha/models", headers=world.as_("editor"), json={"version": "t1", "recipe": "demo"})
    assert r.status_code == 403 and "training limit" in r.json()["detail"], r.text
    with world.registry.session() as s:
        user(s, "owner").storage_gb_limit = None
        owner_id = user(s, "owner").id
    r = world.client.post("/api/projects/alpha/uploads", headers=headers, content=payload)
    assert r.status_code == 202
    with world.registry.session() as s:
        rows = list(s.scalars(select(UsageRecord).where(UsageRecord.resource_type == "storage")))
        assert [(u.user_id, u.amount, u.unit) for u in rows] == [(owner_id, float(len(payload)), "bytes")]
    _wait(world, r.json())


def test_find_similar_objects_of_the_project_only(world: World, cli: Any, tmp_path: Path) -> None:
    from dsgen_core.registry.schema import Annotation
    from support import tiny_onnx_encoder

    weights = tiny_onnx_encoder(tmp_path / "enc.onnx", 16, 0)
    for project in ("alpha", "beta"):
        for args in (("create", f"vis-{project}", "--encoder", "onnx", "--weights", weights), ("sync",)):
            done = cli.invoke("embed", *args, "--project", project, "--json")
            assert done.exit_code == 0, done.output
    with world.registry.session() as s:
        def first_box(project: str) -> int:
            oid = s.scalar(select(Annotation.id).join(Asset).where(
                Asset.project_id == get_project(s, project).id, Annotation.bbox_w.is_not(None)).order_by(Annotation.id))
            assert oid is not None
            return int(oid)
        alpha_obj, beta_obj = first_box("alpha"), first_box("beta")
    r = world.get("/api/projects/alpha/similar", "viewer", params={"object_id": alpha_obj, "k": 5})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 5 and alpha_obj not in [h["object_id"] for h in hits]
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    alpha_images = {i["id"] for i in world.get("/api/projects/alpha/assets", "viewer", params={"limit": 100}).json()["items"]}
    assert {h["image_id"] for h in hits} <= alpha_images
    assert world.client.get(hits[0]["thumbnail_url"]).status_code == 200  # signed for <img src>
    circles = world.get("/api/projects/alpha/similar", "viewer",
                        params={"object_id": alpha_obj, "q": "category:circle"}).json()["hits"]
    assert circles and {h["category"] for h in circles} == {"circle"}
    # beta's object through alpha: not found, nothing of beta's told
    assert world.get("/api/projects/alpha/similar", "viewer", params={"object_id": beta_obj}).status_code == 404


def test_archiver_litter_and_a_bom_are_accepted_and_a_failed_import_leaves_nothing(world: World, demo: Path) -> None:
    coco = (demo / "annotations" / "instances_default.json").read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("annotations/instances_default.json", coco)
        zf.writestr("__MACOSX/annotations/._instances_default.json", b"\x00\x05\x16\x07")
        for p in sorted(q for q in (demo / "images").rglob("*") if q.is_file()):
            zf.write(p, f"images/{p.relative_to(demo / 'images').as_posix()}")
    h = world.as_("editor", **{"Content-Type": "application/zip"})
    r = world.client.post("/api/projects/alpha/uploads", headers=h, content=buf.getvalue())
    assert r.status_code == 202, r.text
    assert _wait(world, r.json())["status"] == "SUCCESS"  # the same images again: nothing new, nothing lost
    uploads = world.registry.settings.home / "uploads"
    kept = set(uploads.iterdir())
    bad = json.loads(coco)
    bad["annotations"][0]["category_id"] = 987654  # no such category: the import refuses the file
    r = world.client.post("/api/projects/alpha/uploads", headers=world.as_("editor", **{"Content-Type": "application/json"}),
                          content=b"\xef\xbb\xbf" + json.dumps(bad).encode())
    assert r.status_code == 202, r.text  # a byte-order mark is not a reason to refuse
    state = _wait(world, r.json())
    assert state["status"] == "FAILURE" and "987654" in (state["error"] or ""), state["error"]
    assert set(uploads.iterdir()) == kept  # the refused upload's folder is gone


def test_a_run_whose_process_is_killed_is_reported_failed(world: World) -> None:
    import os
    import signal

    world.client.post("/api/projects/alpha/versions", headers=world.as_("editor"), json={"tag": "k1"})
    run = world.client.post("/api/projects/alpha/versions/k1/freeze", headers=world.as_("editor")).json()
    runs = world.client.app.state.runs  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while world.get(run["status_url"], "viewer").json()["status"] == "STARTING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc = runs._procs[run["run_id"]][0]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = _wait(world, run)
    assert state["status"] in ("FAILURE", "SUCCESS"), state  # SUCCESS only if it finished before the kill
    if state["status"] == "FAILURE":
        assert "exit code" in (state["error"] or "")
        events = _events(world, run["events_url"])
        assert events[-1][0] == "end"
