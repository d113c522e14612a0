"""Inference endpoints (issue 13 item 4): deploy a model version's ONNX artifact, infer over HTTP
with the real ONNX Runtime (the same detections as OnnxDetector on the file), request counts kept
under concurrent requests on a real server, write-back as model annotations, bad input, access."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import select

from api_world import World
from dsgen_core.inference import OnnxDetector, export_onnx
from dsgen_core.inference import endpoints as eps
from dsgen_core.loop.promotion import promote
from dsgen_core.ml.model_versions import ArtifactFile, create_model_version, ensure_model, register_artifacts
from dsgen_core.ml.onnx_artifacts import ONNX_ROLE
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, Asset, Deployment
from dsgen_core.storage import open_storage
from dsgen_core.versions.lifecycle import create_version

IMGSZ = 64
CLASSES = ["circle", "square"]  # two of the demo project's classes: write-back needs the project to know them
COLOURS = ((0, 0, 255), (0, 255, 0))
CONF = 0.001  # two epochs make a model of low scores; enough to compare detections, not to judge them


@dataclass(frozen=True)
class Tiny:
    onnx: Path
    images: list[Path]  # PNGs, and a JPEG of a non-square one


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    """yolov8n from its YAML, trained 2 epochs at 64 px on filled rectangles (seconds), exported to ONNX."""
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for sub in ("images", "labels"):
        (root / sub / "train").mkdir(parents=True)
    images = []
    for i in range(16):
        image = np.full((IMGSZ, IMGSZ, 3), 60, np.uint8)
        lines = []
        for _ in range(rng.integers(1, 4)):
            c = int(rng.integers(2))
            w, h = (int(v) for v in rng.integers(IMGSZ // 5, IMGSZ // 2, 2))
            x, y = int(rng.integers(0, IMGSZ - w)), int(rng.integers(0, IMGSZ - h))
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), COLOURS[c], -1)
            lines.append(f"{c} {(x + w / 2) / IMGSZ:.6f} {(y + h / 2) / IMGSZ:.6f} {w / IMGSZ:.6f} {h / IMGSZ:.6f}")
        images.append(root / "images" / "train" / f"{i:02d}.png")
        cv2.imwrite(str(images[-1]), image)
        (root / "labels" / "train" / f"{i:02d}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/train\n"
                                    f"names:\n  0: {CLASSES[0]}\n  1: {CLASSES[1]}\n")
    wide = cv2.resize(cv2.imread(str(images[0])), (150, 90))
    images.append(root / "wide.jpg")
    cv2.imwrite(str(images[-1]), wide, [cv2.IMWRITE_JPEG_QUALITY, 90])
    runs = tmp_path_factory.mktemp("runs")
    YOLO("yolov8n.yaml").train(data=str(root / "data.yaml"), epochs=2, imgsz=IMGSZ, batch=8, workers=0, device="cpu",
                               plots=False, amp=False, val=False, project=str(runs), name="tiny", exist_ok=True,
                               verbose=False, seed=0)
    onnx = export_onnx(runs / "tiny" / "weights" / "last.pt", tmp_path_factory.mktemp("onnx") / "tiny.onnx",
                       imgsz=IMGSZ).path
    return Tiny(onnx, images)


@pytest.fixture
def models(world: World, tiny: Tiny) -> Iterator[dict[str, str]]:
    """alpha's m1 (the production model) and m2, both this ONNX file; beta's m1 too."""
    storage = open_storage(world.registry.settings.storage_root)
    out = {}
    with world.registry.session() as s:
        for project in ("alpha", "beta"):
            p = get_project(s, project)
            version = create_version(s, p, "v1")
            made = []
            for _ in range(2 if project == "alpha" else 1):
                mv = create_model_version(s, ensure_model(s, p, "yolo", "detect"), version, "tiny",
                                          training_config={"classes": CLASSES})
                mv.status = "succeeded"
                register_artifacts(s, mv, [ArtifactFile(tiny.onnx, f"models/p{p.id}/{mv.human_id}/onnx/model.onnx",
                                                        ONNX_ROLE, "onnx")], storage)
                out[f"{project}:{mv.human_id}"] = mv.human_id
                made.append(mv)
            if project == "alpha":
                promote(s, p, made[0], reason={"reason": "test"})
    yield out
    eps.MODELS.clear()


def _deploy(world: World, name: str, who: str = "padmin", project: str = "alpha", **body: str) -> httpx.Response:
    return world.client.post(f"/api/projects/{project}/endpoints", json={"name": name, **body},
                             headers=world.as_(who))


def _infer(world: World, name: str, data: bytes, who: str | None = "viewer", *, content_type: str = "image/png",
           **params: object) -> httpx.Response:
    return world.client.post(f"/api/infer/{name}", content=data, params=params,
                             headers=world.as_(who, **{"Content-Type": content_type}))


def _direct(onnx: Path, image: Path, conf: float) -> list[dict[str, object]]:
    det = OnnxDetector(onnx, conf=conf).predict([image])[0]
    return [{"class": CLASSES[c], "box": [x1, y1, x2 - x1, y2 - y1], "score": score}
            for (x1, y1, x2, y2), score, c in zip(det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist(),
                                                  strict=True)]


def test_deploy_infer_and_the_counts(world: World, tiny: Tiny, models: dict[str, str]) -> None:
    r = _deploy(world, "shapes")  # no model named: the production model
    assert r.status_code == 201, r.text
    assert r.json()["model_version"] == "m1" and r.json()["status"] == "active"
    assert r.json()["url"] == "/api/infer/shapes"
    seen = 0
    for image in tiny.images:
        kind = "image/jpeg" if image.suffix == ".jpg" else "image/png"
        got = _infer(world, "shapes", image.read_bytes(), content_type=kind, conf=CONF)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["endpoint"] == "shapes" and body["model_version"] == "m1"
        assert [{k: d[k] for k in ("class", "box", "score")} for d in body["detections"]] == \
            _direct(tiny.onnx, image, CONF)
        assert all(d["name"] == d["class"] for d in body["detections"])  # the demo's names are its keys
        seen += len(body["detections"])
    assert seen > 0  # the comparison compared something
    # multipart, and the thresholds passed on
    image = tiny.images[-1]
    multi = world.client.post("/api/infer/shapes", params={"conf": 0.0015, "iou": 0.5}, headers=world.as_("viewer"),
                              files={"file": ("x.jpg", image.read_bytes(), "image/jpeg")})
    assert multi.status_code == 200, multi.text
    det = OnnxDetector(tiny.onnx, conf=0.0015, iou=0.5).predict([image])[0]
    assert [d["score"] for d in multi.json()["detections"]] == det.scores.tolist()
    listed = world.get("/api/projects/alpha/endpoints", "viewer").json()
    assert [(e["name"], e["total_requests"]) for e in listed] == [("shapes", len(tiny.images) + 1)]
    assert listed[0]["last_request_at"] is not None
    with world.registry.session() as s:
        row = s.scalar(select(Deployment).where(Deployment.name == "shapes"))
        assert row.total_requests == len(tiny.images) + 1 and row.target == "cloud"


def test_concurrent_requests_on_a_real_server_are_each_counted(world: World, tiny: Tiny,
                                                               models: dict[str, str]) -> None:
    assert _deploy(world, "shapes", model="m2").status_code == 201
    with world.served() as base:
        data = tiny.images[3].read_bytes()
        expected = _direct(tiny.onnx, tiny.images[3], CONF)
        headers = world.as_("viewer", **{"Content-Type": "image/png"})

        def call(_i: int) -> tuple[int, list[dict[str, object]]]:
            r = httpx.post(f"{base}/api/infer/shapes?conf={CONF}", content=data, headers=headers,
                           timeout=60)
            return r.status_code, [{k: d[k] for k in ("class", "box", "score")} for d in r.json()["detections"]]

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(24)))
    assert all(status == 200 and dets == expected for status, dets in results)
    listed = world.get("/api/projects/alpha/endpoints", "viewer").json()
    assert listed[0]["model_version"] == "m2" and listed[0]["total_requests"] == 24


def test_write_back_creates_model_annotations(world: World, tiny: Tiny, models: dict[str, str]) -> None:
    assert _deploy(world, "shapes").status_code == 201
    with world.registry.session() as s:
        asset = s.scalar(select(Asset).where(Asset.project_id == get_project(s, "alpha").id).order_by(Asset.id))
        asset_id, path = asset.id, Path(asset.storage_uri)
    data = path.read_bytes()
    # a viewer may infer but not write
    assert _infer(world, "shapes", data, "viewer", write_back_asset_id=asset_id, conf=CONF).status_code == 403
    r = _infer(world, "shapes", data, "editor", write_back_asset_id=asset_id, conf=CONF)
    assert r.status_code == 200, r.text
    dets = r.json()["detections"]
    assert dets and r.json()["written"] == len(dets)
    shown = world.get(f"/api/projects/alpha/assets/{asset_id}", "viewer").json()["objects_list"]
    model_objs = [o for o in shown if o["source"] == "model"]
    stored = sorted((o["category"], o["confidence"]) for o in model_objs)
    sent = sorted((d["class"], d["score"]) for d in dets)
    assert [c for c, _ in stored] == [c for c, _ in sent]
    assert [v for _, v in stored] == pytest.approx([v for _, v in sent])
    # again: the model's annotations of that image are replaced, not added to
    assert _infer(world, "shapes", data, "editor", write_back_asset_id=asset_id, conf=CONF).status_code == 200
    with world.registry.session() as s:
        n = len(s.scalars(select(Annotation.id).where(Annotation.asset_id == asset_id,
                                                      Annotation.source == "model")).all())
    assert n == len(dets)
    # an image of another project is not found, and nothing is written
    with world.registry.session() as s:
        beta_asset = s.scalar(select(Asset.id).where(Asset.project_id == get_project(s, "beta").id))
    r = _infer(world, "shapes", data, "editor", write_back_asset_id=beta_asset, conf=CONF)
    assert r.status_code == 404
    with world.registry.session() as s:
        assert not s.scalars(select(Annotation.id).where(Annotation.asset_id == beta_asset,
                                                         Annotation.source == "model")).all()


def test_bad_images_are_refused_with_problems(world: World, tiny: Tiny, models: dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert _deploy(world, "shapes").status_code == 201
    good = tiny.images[0].read_bytes()
    for data, status, words in ((b"", 400, "no image bytes"), (b"hello, not an image", 400, "not a JPEG or PNG"),
                                (good[:60], 400, "cannot be decoded")):
        r = _infer(world, "shapes", data)
        assert r.status_code == status and words in r.json()["detail"], r.text
        assert r.headers["content-type"] == "application/problem+json"
    monkeypatch.setenv(eps.MAX_PIXELS_ENV, str(IMGSZ * IMGSZ - 1))
    r = _infer(world, "shapes", good)
    assert r.status_code == 413 and "pixel limit" in r.json()["detail"]
    monkeypatch.setenv("DSGEN_INFER_MAX_BYTES", "100")
    assert _infer(world, "shapes", good).status_code == 413
    assert _infer(world, "shapes", b"{}", content_type="application/json").status_code == 415
    assert _infer(world, "shapes", good, conf=2).status_code == 422
    listed = world.get("/api/projects/alpha/endpoints", "viewer").json()
    assert listed[0]["total_requests"] == 0  # refused requests ran nothing and are not counted


def test_access_cross_project_and_undeployed(world: World, tiny: Tiny, models: dict[str, str]) -> None:
    good = tiny.images[0].read_bytes()
    assert _deploy(world, "shapes", who="editor").status_code == 403  # deploying needs admin
    assert _deploy(world, "shapes").status_code == 201
    assert _infer(world, "shapes", good, None).status_code == 401
    assert _infer(world, "shapes", good, "key:read").status_code == 200  # a read key reaches viewer
    # beta's owner has no role in alpha: the endpoint does not exist for them
    r = _infer(world, "shapes", good, "outsider")
    assert r.status_code == 404 and r.json()["detail"] == "no endpoint 'shapes'"
    assert _infer(world, "nothing-here", good).status_code == 404
    # the name is alpha's while it is live; beta cannot take it
    taken = _deploy(world, "shapes", who="outsider", project="beta", model="m1")
    assert taken.status_code == 409
    assert world.client.delete("/api/projects/beta/endpoints/shapes", headers=world.as_("outsider")).status_code == 404
    assert world.client.delete("/api/projects/alpha/endpoints/shapes", headers=world.as_("editor")).status_code == 403
    gone = world.client.delete("/api/projects/alpha/endpoints/shapes", headers=world.as_("padmin"))
    assert gone.status_code == 200 and gone.json()["status"] == "inactive" and gone.json()["total_requests"] == 1
    assert _infer(world, "shapes", good).status_code == 404
    assert world.get("/api/projects/alpha/endpoints", "viewer").json() == []
    history = world.get("/api/projects/alpha/endpoints?history=true", "viewer").json()
    assert [(e["status"], e["url"]) for e in history] == [("inactive", None)]
    # freed: beta may take the name now, and alpha's viewer cannot reach it
    assert _deploy(world, "shapes", who="outsider", project="beta", model="m1").status_code == 201
    assert _infer(world, "shapes", good, "viewer").status_code == 404
    assert _infer(world, "shapes", good, "outsider").status_code == 200
    # names and models that are not right
    assert _deploy(world, "production").status_code == 400
    assert _deploy(world, "Bad Name!").status_code == 400
    assert _deploy(world, "other", model="m9").status_code == 404


def test_redeploy_swaps_the_model(world: World, tiny: Tiny, models: dict[str, str]) -> None:
    assert _deploy(world, "shapes", model="m1").status_code == 201
    good = tiny.images[0].read_bytes()
    assert _infer(world, "shapes", good).json()["model_version"] == "m1"
    again = _deploy(world, "shapes", model="m2")
    assert again.status_code == 201 and again.json()["model_version"] == "m2"
    assert _infer(world, "shapes", good).json()["model_version"] == "m2"
    history = world.get("/api/projects/alpha/endpoints?history=true", "viewer").json()
    assert [(e["model_version"], e["status"], e["total_requests"]) for e in history] == [
        ("m2", "active", 1), ("m1", "inactive", 1)]


def test_the_cli_deploys_lists_and_removes(world: World, tiny: Tiny, models: dict[str, str], cli: Any) -> None:
    def ok(*args: str) -> Any:
        r = cli.invoke("endpoints", *args, "--project", "alpha", "--json")
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    deployed = ok("deploy", "shapes")
    assert (deployed["model_version"], deployed["status"], deployed["url"]) == ("m1", "active", "/api/infer/shapes")
    assert ok("deploy", "shapes", "--model", "m2")["model_version"] == "m2"
    assert _infer(world, "shapes", tiny.images[0].read_bytes()).json()["model_version"] == "m2"
    assert [(e["name"], e["model_version"], e["status"]) for e in ok("list")] == [("shapes", "m2", "active")]
    # the server's counts (this process's app): written by its own listing at the latest
    assert world.get("/api/projects/alpha/endpoints", "viewer").json()[0]["total_requests"] == 1
    assert ok("remove", "shapes")["status"] == "inactive"
    assert ok("list") == [] and len(ok("list", "--history")) == 2
    missing = cli.invoke("endpoints", "remove", "shapes", "--project", "alpha")
    assert missing.exit_code == 2 and "no endpoint 'shapes'" in missing.output
    unknown = cli.invoke("endpoints", "deploy", "x", "--model", "m9", "--project", "alpha")
    assert unknown.exit_code == 2 and "m9" in unknown.output


def test_a_model_that_does_not_load_leaves_the_endpoint_in_error(world: World, tiny: Tiny, models: dict[str, str],
                                                                  tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an ONNX file" * 64)
    storage = open_storage(world.registry.settings.storage_root)
    with world.registry.session() as s:
        p = get_project(s, "alpha")
        mv = create_model_version(s, ensure_model(s, p, "yolo", "detect"), create_version(s, p, "v2"), "tiny",
                                  training_config={"classes": CLASSES})
        mv.status = "succeeded"
        register_artifacts(s, mv, [ArtifactFile(broken, "models/broken.onnx", ONNX_ROLE, "onnx")], storage)
        human = mv.human_id
    r = _deploy(world, "shapes", model=human)
    assert r.status_code == 201 and r.json()["status"] == "error" and "cannot load ONNX model" in r.json()["error"]
    refused = _infer(world, "shapes", tiny.images[0].read_bytes())
    assert refused.status_code == 409 and "is error" in refused.json()["detail"]
    assert _deploy(world, "shapes", model="m1").json()["status"] == "active"  # deploying again mends it
    assert _infer(world, "shapes", tiny.images[0].read_bytes()).status_code == 200
