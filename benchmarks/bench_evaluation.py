"""COCO detection evaluation speed, side by side with its references.

    python benchmarks/bench_evaluation.py              # faster-coco-eval x3 (median), pycocotools x1
    python benchmarks/bench_evaluation.py --repeat 5

Input: the small set (5,000 images, 35,000 boxes, 10 classes; generated if missing) and 42,000
predictions made from it deterministically: 88 % of the objects found with jittered boxes
(a few of them under the wrong class), the rest missed, plus false positives, with
scores that rank hits above false positives only on average. Both backends of
``evaluate_detections`` are timed in the same run, end to end (input checks, COCOeval,
metrics), and their numbers compared. References measured earlier on this machine on the
same task: FiftyOne ``evaluate_detections(method="coco")`` ≈ 104 s, pycocotools COCOeval
≈ 12.2 s, faster-coco-eval ≈ 2.0 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

import datagen  # noqa: E402

from dsgen_core.evaluation import DetectionMetrics, evaluate_detections  # noqa: E402

N_PREDICTIONS = 42_000
FOUND_SHARE = 0.88
WRONG_CLASS_SHARE = 0.03
FIFTYONE_S = 104.0
PYCOCOTOOLS_S = 12.2
FASTER_COCO_EVAL_S = 2.0
TARGET_S = 2.5
TARGET_VS_FIFTYONE = 40.0
TARGET_VS_PYCOCOTOOLS = 4.0
TOLERANCE = 1e-6


def make_predictions(gt: dict[str, Any], n: int = N_PREDICTIONS, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` COCO results from ``gt``: jittered hits, some misses, the rest false positives."""
    rng = np.random.default_rng([seed, 42])
    anns = gt["annotations"]
    cat_ids = np.array(sorted(c["id"] for c in gt["categories"]))
    sizes = {img["id"]: (img["width"], img["height"]) for img in gt["images"]}
    boxes = np.array([a["bbox"] for a in anns], dtype=np.float64)
    found = rng.random(len(anns)) < FOUND_SHARE
    # Jitter of 0–15 % of the box size: most hits clear IoU 0.5, fewer clear 0.95.
    jitter = rng.normal(0.0, 1.0, (len(anns), 4)) * rng.uniform(0.0, 0.15, (len(anns), 1))
    wh = boxes[:, [2, 3, 2, 3]]
    jittered = boxes + jitter * wh
    jittered[:, 2:] = np.maximum(jittered[:, 2:], 1.0)
    wrong = rng.random(len(anns)) < WRONG_CLASS_SHARE
    hit_scores = rng.beta(5, 2, len(anns))
    preds = []
    for i in np.flatnonzero(found):
        a = anns[i]
        cat = int(rng.choice(cat_ids)) if wrong[i] else a["category_id"]
        preds.append({"image_id": a["image_id"], "category_id": cat, "bbox": [round(float(v), 2) for v in jittered[i]],
                      "score": round(float(hit_scores[i]), 4)})
    image_ids = np.array([img["id"] for img in gt["images"]])
    n_fp = n - len(preds)
    fp_images = rng.choice(image_ids, n_fp)
    fp_cats = rng.choice(cat_ids, n_fp)
    fp_rel = rng.uniform(0.0, 1.0, (n_fp, 4))
    fp_scores = rng.beta(2, 5, n_fp)
    for img_id, cat, (fx, fy, fw, fh), score in zip(fp_images, fp_cats, fp_rel, fp_scores):
        w, h = sizes[int(img_id)]
        bw, bh = max(2.0, fw * w / 2), max(2.0, fh * h / 2)
        preds.append({"image_id": int(img_id), "category_id": int(cat),
                      "bbox": [round(fx * (w - bw), 2), round(fy * (h - bh), 2), round(bw, 2), round(bh, 2)],
                      "score": round(float(score), 4)})
    return preds


def timed(gt: dict[str, Any], preds: list[dict[str, Any]], backend: str, repeat: int) -> tuple[list[float], DetectionMetrics]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        metrics = evaluate_detections(gt, preds, backend=backend)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t)
    return times, metrics


def row(name: str, ours: str, ref: str, verdict: str) -> None:
    print(f"  {name:<44} {ours:>12}   {ref:>34}   {verdict}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="runs of the faster-coco-eval backend (median reported)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    root = OUT / "small"
    if not (root / "annotations").exists():
        datagen.generate_small(root, progress=False)
    gt = orjson.loads((root / "annotations" / "instances_default.json").read_bytes())
    preds = make_predictions(gt)
    assert len(preds) == N_PREDICTIONS

    fast_times, fast = timed(gt, preds, "faster", args.repeat)
    ref_times, ref = timed(gt, preds, "pycocotools", 1)
    t_fast, t_ref = statistics.median(fast_times), ref_times[0]
    a, b = fast.numbers(), ref.numbers()
    assert a.keys() == b.keys()
    diff_key = max(a, key=lambda k: abs(a[k] - b[k]))
    max_diff = abs(a[diff_key] - b[diff_key])

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"{len(gt['images']):,} images, {len(gt['annotations']):,} GT boxes, {len(preds):,} predictions, "
          f"{len(gt['categories'])} classes: mAP50 {fast.map50:.4f}, mAP50-95 {fast.map50_95:.4f}, "
          f"P {fast.precision:.4f}, R {fast.recall:.4f}, F1 {fast.f1:.4f}")
    print(f"{'':2}{'measure':<44} {'dsgen':>12}   {'reference':>34}   result")
    row("evaluate_detections, faster-coco-eval", f"{t_fast:.2f} s", f"faster-coco-eval alone ≈{FASTER_COCO_EVAL_S:.1f} s",
        f"{verdict(t_fast <= TARGET_S)} (target <= {TARGET_S} s; runs: {', '.join(f'{t:.2f}' for t in fast_times)})")
    row("  vs FiftyOne evaluate_detections(coco)", f"{FIFTYONE_S / t_fast:.1f}x", f"FiftyOne ≈{FIFTYONE_S:.0f} s",
        f"{verdict(FIFTYONE_S / t_fast >= TARGET_VS_FIFTYONE)} (target >= {TARGET_VS_FIFTYONE:.0f}x)")
    row("evaluate_detections, pycocotools", f"{t_ref:.2f} s", f"pycocotools COCOeval ≈{PYCOCOTOOLS_S:.1f} s", "(reference backend)")
    row("  faster vs pycocotools, this run", f"{t_ref / t_fast:.1f}x", f"vs ≈{PYCOCOTOOLS_S:.1f} s: {PYCOCOTOOLS_S / t_fast:.1f}x",
        f"{verdict(t_ref / t_fast >= TARGET_VS_PYCOCOTOOLS)} (target >= {TARGET_VS_PYCOCOTOOLS:.0f}x)")
    row("max |faster - pycocotools| over all numbers", f"{max_diff:.1e}", f"{len(a):,} numbers, worst: {diff_key}",
        f"{verdict(max_diff <= TOLERANCE)} (must be <= {TOLERANCE:.0e})")

    results = {
        "images": len(gt["images"]), "gt_boxes": len(gt["annotations"]), "predictions": len(preds),
        "faster_seconds": fast_times, "faster_median_seconds": t_fast, "pycocotools_seconds": t_ref,
        "references_seconds": {"fiftyone": FIFTYONE_S, "pycocotools": PYCOCOTOOLS_S, "faster_coco_eval": FASTER_COCO_EVAL_S},
        "speedup_vs_fiftyone": FIFTYONE_S / t_fast, "speedup_vs_pycocotools_this_run": t_ref / t_fast,
        "max_abs_difference": max_diff, "max_abs_difference_at": diff_key, "numbers_compared": len(a),
        "metrics": {"faster": fast.to_dict(), "pycocotools": ref.to_dict()},
    }
    (OUT / "bench_evaluation.json").write_text(json.dumps(results, indent=2))
    ok = t_fast <= TARGET_S and FIFTYONE_S / t_fast >= TARGET_VS_FIFTYONE and t_ref / t_fast >= TARGET_VS_PYCOCOTOOLS and max_diff <= TOLERANCE
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
