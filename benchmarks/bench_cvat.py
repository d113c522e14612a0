"""The CVAT round-trip's figures (issue 12), each beside its reference, measured in this run.

    python benchmarks/bench_cvat.py [--images 1000] [--boxes-per-image 10]

Against the stand-in CVAT server of the tests (``tests/cvat_server.py``: CVAT's REST API subset,
every request and response validated against CVAT's 2.17 and 2.72 schemas), on one fresh SQLite
registry of generated JPEGs (320x240) with boxes:

- **push**: ``dsgen cvat push`` (``push_to_cvat``) of every image and box, as one task and chunked
  (4 and 10 tasks): wall time and HTTP requests made;
- **pull**: of the unchanged task, and after an annotator moved 10 % of the boxes and added 1 %;
- **reference**: the same work done with cvat-sdk's own calls, in the same run against the same
  server: ``tasks.create_from_data`` + PUT of the annotations + GET of them back (push), GET of
  the annotations (pull). The issue's target is dsgen <= 1.2x the SDK's own calls.

The stand-in validates every body against two OpenAPI documents, so its absolute times are not a
real CVAT's; the ratio is the figure. The issue's reference numbers from a real CVAT 2.23.1 (200
JPEGs, 2,000 boxes: create + upload 1.02 s, COCO import 1.25 s, COCO export 0.63 s) are printed
beside the 200-image run of this script for scale (``--images 200 --boxes-per-image 10``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from PIL import Image  # noqa: E402

from cvat_server import TOKEN, StandIn  # noqa: E402
from dsgen_core.cvat.pull import pull_from_cvat  # noqa: E402
from dsgen_core.cvat.push import push_to_cvat  # noqa: E402
from dsgen_core.registry.db import Registry  # noqa: E402
from dsgen_core.registry.projects import get_project  # noqa: E402
from dsgen_core.storage import open_storage  # noqa: E402
from support import import_file  # noqa: E402

REAL_CVAT_2_23 = {"create+upload": 1.02, "annotations in": 1.25, "annotations out": 0.63}  # 200 images, 2,000 boxes
TARGET = 1.2


def make_dataset(root: Path, n: int, per: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        name = f"img_{i:05d}.jpg"
        im = Image.new("RGB", (320, 240), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        (root / "images" / name).write_bytes(buf.getvalue())
        images.append({"id": i + 1, "file_name": name, "width": 320, "height": 240})
        for _ in range(per):
            w, h = rng.uniform(8, 80), rng.uniform(8, 80)
            x, y = rng.uniform(0, 320 - w), rng.uniform(0, 240 - h)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": rng.randint(1, 3),
                         "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": round(w * h, 2),
                         "iscrowd": 0, "segmentation": [],
                         "attributes": {"occluded": False, "rotation": 0.0, "color": rng.choice(["red", "blue"])}})
    cats = [{"id": k, "name": n, "supercategory": ""} for k, n in ((1, "car"), (2, "person"), (3, "bike"))]
    path = root / "instances_default.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def sdk_reference(server: StandIn, images: Path, coco: dict, name: str) -> dict[str, float]:
    """The SDK's own calls for the same push and pull."""
    from cvat_sdk import Client, Config, models

    out: dict[str, float] = {}
    client = Client(server.url, config=Config(status_check_period=0.2), check_server_version=False)
    client.api_client.set_default_header("Authorization", f"Bearer {TOKEN}")
    with client:
        labels = [models.PatchedLabelRequest(name=c["name"], attributes=[models.AttributeRequest(
            name="color", mutable=False, input_type="text", default_value="", values=[""])]) for c in coco["categories"]]
        files = [images / im["file_name"] for im in coco["images"]]
        t0 = time.perf_counter()
        task = client.tasks.create_from_data(models.TaskWriteRequest(name=name, labels=labels), resources=files,
                                             data_params={"image_quality": 95, "sorting_method": "predefined"})
        out["create+upload"] = time.perf_counter() - t0
        label_ids = {lb.name: lb for lb in task.get_labels()}
        cat = {c["id"]: c["name"] for c in coco["categories"]}
        frame = {im["id"]: k for k, im in enumerate(coco["images"])}
        shapes = []
        for a in coco["annotations"]:
            lb = label_ids[cat[a["category_id"]]]
            x, y, w, h = a["bbox"]
            shapes.append(models.LabeledShapeRequest(
                type=models.ShapeType("rectangle"), frame=frame[a["image_id"]], label_id=lb.id,
                points=[x, y, x + w, y + h], occluded=False, rotation=0.0, attributes=[
                    models.AttributeValRequest(spec_id=lb.attributes[0].id, value=a["attributes"]["color"])]))
        t0 = time.perf_counter()
        client.api_client.tasks_api.update_annotations(
            task.id, task_annotations_update_request=models.LabeledDataRequest(shapes=shapes, tags=[], tracks=[]))
        out["annotations in"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        task.get_annotations()
        out["annotations out"] = time.perf_counter() - t0
        # The same annotations as a COCO 1.0 file through CVAT's importer (the reference's way).
        t0 = time.perf_counter()
        second = client.tasks.create_from_data(models.TaskWriteRequest(name=name + " coco", labels=labels),
                                               resources=files,
                                               data_params={"image_quality": 95, "sorting_method": "predefined"})
        out["create+upload (file push)"] = time.perf_counter() - t0
        doc = {**coco, "annotations": [{**a, "attributes": {"color": a["attributes"]["color"]}}
                                       for a in coco["annotations"]]}
        path = images.parent / "coco_for_cvat.json"
        path.write_text(json.dumps(doc))
        t0 = time.perf_counter()
        second.import_annotations("COCO 1.0", path)
        out["COCO 1.0 import"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        second.get_annotations()
        out["annotations out (file push)"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--boxes-per-image", type=int, default=10)
    args = ap.parse_args()
    corpus = Path(os.environ.get("DSGEN_CORPUS", ROOT.parent / "shared" / "corpus"))
    with tempfile.TemporaryDirectory(prefix="bench-cvat-") as tmp_s, StandIn.start(corpus) as server:
        tmp = Path(tmp_s)
        ann = make_dataset(tmp / "data", args.images, args.boxes_per_image)
        coco = json.loads(ann.read_text())
        os.environ.update(CVAT_URL=server.url, CVAT_ACCESS_TOKEN=TOKEN, DSGEN_HOME=str(tmp / "home"))
        os.environ.pop("DSGEN_DATABASE_URL", None)
        reg = Registry()
        import_file(reg, ann, images=tmp / "data" / "images", project="default")
        storage = open_storage(reg.settings.storage_root)
        n_boxes = len(coco["annotations"])
        print(f"{args.images} images 320x240, {n_boxes} boxes; stand-in CVAT at {server.url}")

        ref = sdk_reference(server, tmp / "data" / "images", coco, "sdk")
        ref_push = ref["create+upload"] + ref["annotations in"] + ref["annotations out"]

        rows = []
        task_ids = []
        for per_task in (None, args.images // 4, args.images // 10):
            server.requests.clear()
            t0 = time.perf_counter()
            res = push_to_cvat(reg, "default", query="", name=f"bench {per_task}", storage=storage,
                               max_images_per_task=per_task)
            wall = time.perf_counter() - t0
            rows.append((len(res.tasks), wall, len(server.requests)))
            task_ids.append(res.tasks[0].id)
        print("\npush (dsgen cvat push)          tasks   wall s   requests   SDK's own calls   ratio")
        for n_tasks, wall, reqs in rows:
            print(f"  {'one task' if n_tasks == 1 else f'{n_tasks} chunks':<28} {n_tasks:>5} {wall:8.2f} {reqs:10d} "
                  f"{ref_push:15.2f} {wall / ref_push:7.2f}x")

        tid = task_ids[0]
        times: dict[str, Any] = {}
        with reg.session() as s:
            server.requests.clear()
            t0 = time.perf_counter()
            r = pull_from_cvat(s, get_project(s, "default"), tid, storage=storage)
            times["unchanged"] = (time.perf_counter() - t0, len(server.requests), r)
        shapes = server.tasks[tid]["shapes"]
        rng = random.Random(1)
        for sh in rng.sample(shapes, len(shapes) // 10):
            sh["points"] = [p + 1.0 for p in sh["points"]]
        for k in range(len(shapes) // 100):
            shapes.append({**shapes[k], "id": 10_000_000 + k, "points": [1.0, 1.0, 20.0, 20.0]})
        with reg.session() as s:
            server.requests.clear()
            t0 = time.perf_counter()
            r = pull_from_cvat(s, get_project(s, "default"), tid, storage=storage)
            times["10% moved, 1% added"] = (time.perf_counter() - t0, len(server.requests), r)
        ref_file = ref["create+upload (file push)"] + ref["COCO 1.0 import"] + ref["annotations out (file push)"]
        print("\npush --format (one task)        wall s   requests   SDK: create + import_annotations + GET   ratio")
        for fmt in ("COCO 1.0", "CVAT for images 1.1"):
            server.requests.clear()
            t0 = time.perf_counter()
            push_to_cvat(reg, "default", query="", name=f"bench {fmt}", storage=storage, fmt=fmt)
            wall = time.perf_counter() - t0
            print(f"  {fmt:<28} {wall:8.2f} {len(server.requests):10d} {ref_file:40.2f} {wall / ref_file:7.2f}x")

        chunked = task_ids[2]  # 10 tasks; a --since pull of one with nothing changed downloads nothing
        with reg.session() as s:
            server.requests.clear()
            t0 = time.perf_counter()
            r = pull_from_cvat(s, get_project(s, "default"), chunked, storage=storage, since="last")
            times["--since, nothing changed"] = (time.perf_counter() - t0, len(server.requests), r)
        print("\npull (dsgen cvat pull)          wall s   requests   added  changed  SDK GET   ratio")
        for label, (wall, reqs, r) in times.items():
            print(f"  {label:<28} {wall:8.2f} {reqs:10d} {r.added:7d} {r.changed:8d} {ref['annotations out']:8.2f} "
                  f"{wall / ref['annotations out']:6.2f}x")
        print("\nreference, the SDK's own calls here:", {k: round(v, 2) for k, v in ref.items()})
        print("a real CVAT 2.23.1 (issue, 200 images / 2,000 boxes, COCO files):", REAL_CVAT_2_23)
        print(f"target: dsgen <= {TARGET}x the SDK's own calls")
        reg.dispose()


if __name__ == "__main__":
    main()
