"""Ground truths and detections for the evaluation tests, small enough to check by hand or
made up of seeded random draws."""

from __future__ import annotations

from typing import Any

import numpy as np

BACKENDS = ("faster", "pycocotools")


def coco(objects: list[tuple[int, str, list[float]] | tuple[int, str, list[float], int]], names: list[str],
         n_images: int = 4) -> dict[str, Any]:
    """A COCO dict of ``(image_id, class name, bbox[, iscrowd])`` objects on 640x480 images 1..n."""
    ids = {name: i + 1 for i, name in enumerate(names)}
    anns = []
    for n, (image_id, name, bbox, *crowd) in enumerate(objects, start=1):
        anns.append({"id": n, "image_id": image_id, "category_id": ids[name], "bbox": bbox,
                     "area": bbox[2] * bbox[3], "iscrowd": crowd[0] if crowd else 0})
    return {"images": [{"id": i, "width": 640, "height": 480} for i in range(1, n_images + 1)],
            "annotations": anns, "categories": [{"id": i, "name": name} for name, i in ids.items()]}


def det(gt: dict[str, Any], image_id: int, name: str, bbox: list[float], score: float) -> dict[str, Any]:
    cat = next(c["id"] for c in gt["categories"] if c["name"] == name)
    return {"image_id": image_id, "category_id": cat, "bbox": bbox, "score": score}


def synthetic(seed: int = 0, n_images: int = 300) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A few hundred images, five classes with objects (non-contiguous ids, image ids from 0)
    and one class with only false positives; ~5 % crowd objects, jittered hits, misses,
    duplicates, class confusions, false positives, and scores with ties (two decimals)."""
    rng = np.random.default_rng(seed)
    classes = {2: "person", 3: "car", 5: "dog", 8: "bicycle", 13: "traffic light"}
    names = {**classes, 21: "unicorn"}  # no ground truth, only false positives
    gt: dict[str, Any] = {
        "images": [{"id": i, "width": 640, "height": 480} for i in range(n_images)],
        "annotations": [],
        "categories": [{"id": cid, "name": name} for cid, name in names.items()],
    }
    dets: list[dict[str, Any]] = []

    def box() -> list[float]:
        # Sizes from 4 to 300 px on a log scale, so all three COCO area ranges are populated.
        w, h = np.exp(rng.uniform(np.log(4), np.log(300), 2))
        return [float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h)), float(w), float(h)]

    for image_id in range(n_images):
        for _ in range(int(rng.integers(0, 8))):
            cat = int(rng.choice(list(classes)))
            b = box()
            crowd = int(rng.random() < 0.05)
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                                      "bbox": b, "area": b[2] * b[3] * 0.9, "iscrowd": crowd})
            for _ in range(int(rng.choice([0, 1, 1, 1, 1, 2]))):  # missed, found, found twice
                j = rng.normal(0, rng.uniform(0.02, 0.25), 4) * [b[2], b[3], b[2], b[3]]
                found = int(rng.choice(list(classes))) if rng.random() < 0.05 else cat
                dets.append({"image_id": image_id, "category_id": found,
                             "bbox": [b[0] + j[0], b[1] + j[1], max(1.0, b[2] + j[2]), max(1.0, b[3] + j[3])],
                             "score": round(float(rng.beta(4, 2)), 2)})
        for _ in range(int(rng.integers(0, 4))):
            dets.append({"image_id": image_id, "category_id": int(rng.choice(list(names))), "bbox": box(),
                         "score": round(float(rng.beta(2, 4)), 2)})
    return gt, dets
