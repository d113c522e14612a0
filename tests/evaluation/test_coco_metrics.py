"""evaluate_detections: the two backends agree, hand-checkable cases come out as computed by
hand, the numbers match pycocotools used directly, and bad input is refused clearly."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation import ClassMetrics, DetectionMetrics, evaluate_detections

from .cases import BACKENDS, coco, det, synthetic

backends = pytest.mark.parametrize("backend", BACKENDS)


def close(*expected: float) -> Any:
    # pycocotools divides by tp + fp + eps, so its "1.0" is 1 - 2e-16.
    return pytest.approx(expected, abs=1e-12)


def overall(m: DetectionMetrics) -> tuple[float, ...]:
    return (m.precision, m.recall, m.f1, m.map50, m.map50_95)


def _reference_stats(gt: dict[str, Any], dets: list[dict[str, Any]], tmp_path: Path) -> list[float]:
    """pycocotools used the documented way: files on disk, loadRes, evaluate, summarize."""
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dets))
    coco_gt = COCO(str(gt_path))
    e = COCOeval(coco_gt, coco_gt.loadRes(str(dt_path)), "bbox")
    e.evaluate()
    e.accumulate()
    e.summarize()
    return [float(s) for s in e.stats]


# --------------------------------------------------------------------------- backends agree


def test_backends_agree_on_every_number_of_synthetic_predictions(tmp_path: Path) -> None:
    gt, dets = synthetic(seed=7)
    crowd = sum(a["iscrowd"] for a in gt["annotations"])
    assert len(gt["images"]) == 300 and len(dets) > 1000 and crowd > 20
    fast = evaluate_detections(gt, dets, backend="faster")
    ref = evaluate_detections(gt, dets, backend="pycocotools")
    assert (fast.backend, ref.backend) == ("faster-coco-eval", "pycocotools")

    a, b = fast.numbers(), ref.numbers()
    assert a.keys() == b.keys()
    worst = max(a, key=lambda k: abs(a[k] - b[k]))
    assert abs(a[worst] - b[worst]) <= 1e-6, worst
    assert list(fast.per_class) == list(ref.per_class) == ["person", "car", "dog", "bicycle", "traffic light", "unicorn"]
    assert [m.support for m in fast.per_class.values()] == [m.support for m in ref.per_class.values()]

    # Not a vacuous agreement: a middling detector, every class scored, the GT-less one excluded.
    assert 0.3 < fast.map50 < 0.9 and 0.1 < fast.map50_95 < fast.map50
    assert 0.3 < fast.precision < 1 and 0.3 < fast.recall < 1
    assert set(fast.pr_curves) == {"person", "car", "dog", "bicycle", "traffic light"}
    assert fast.per_class["unicorn"] == ClassMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0)

    # Same numbers as pycocotools driven directly from files (this module prepares its own input).
    reference = _reference_stats(gt, dets, tmp_path)
    assert ref.coco_stats == pytest.approx(reference, abs=1e-12)
    assert fast.coco_stats == pytest.approx(reference, abs=1e-6)
    # The overall mAPs are COCO's: the per-class means equal summarize()'s first two numbers.
    assert fast.map50_95 == pytest.approx(reference[0], abs=1e-12)
    assert fast.map50 == pytest.approx(reference[1], abs=1e-12)


@backends
def test_inputs_are_not_modified(backend: str) -> None:
    gt, dets = synthetic(seed=1, n_images=40)
    before = copy.deepcopy((gt, dets))
    evaluate_detections(gt, dets, backend=backend)
    assert (gt, dets) == before


@backends
def test_numpy_values_give_the_same_result_as_plain_ones(backend: str) -> None:
    gt, dets = synthetic(seed=2, n_images=40)
    as_numpy = [{"image_id": np.int64(d["image_id"]), "category_id": np.int32(d["category_id"]),
                 "bbox": np.array(d["bbox"]), "score": np.float64(d["score"])} for d in dets]
    assert evaluate_detections(gt, as_numpy, backend=backend) == evaluate_detections(gt, dets, backend=backend)


# --------------------------------------------------------------------------- by hand

# One object per class and image, one in each COCO area range, so all 12 summary numbers exist.
PERFECT_OBJECTS = [
    (1, "cat", [10, 10, 20, 20]),  # small
    (1, "dog", [100, 100, 50, 60]),  # medium
    (2, "cat", [0, 0, 300, 200]),  # large
    (3, "dog", [5, 5, 10, 25]),
    (3, "cat", [200, 150, 40, 40]),
]


@backends
def test_perfect_predictions_score_one_everywhere(backend: str) -> None:
    gt = coco(PERFECT_OBJECTS, ["cat", "dog"])
    dets = [det(gt, img, name, box, 0.9) for img, name, box in PERFECT_OBJECTS]
    m = evaluate_detections(gt, dets, backend=backend)
    assert overall(m) == close(1, 1, 1, 1, 1)
    assert m.coco_stats == close(*[1] * 12)
    assert list(m.per_class) == ["cat", "dog"]
    assert dataclasses.astuple(m.per_class["cat"]) == close(1, 1, 1, 1, 1, 3)
    assert dataclasses.astuple(m.per_class["dog"]) == close(1, 1, 1, 1, 1, 2)
    recall, precision = m.pr_curves["cat"]
    assert recall == close(*[i / 100 for i in range(101)]) and precision == close(*[1] * 101)


@backends
def test_no_predictions_score_zero_without_failing(backend: str) -> None:
    gt = coco(PERFECT_OBJECTS, ["cat", "dog"])
    m = evaluate_detections(gt, [], backend=backend)
    assert overall(m) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert m.coco_stats == [0.0] * 12
    assert m.per_class["cat"] == ClassMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 3)
    assert m.pr_curves["dog"][1] == [0.0] * 101


@backends
def test_one_class_half_detected(backend: str) -> None:
    objects = [(i, "cat", [10.0 * i, 20, 50, 50]) for i in (1, 2, 3, 4)] + [(1, "dog", [300, 300, 60, 40]), (2, "dog", [0, 0, 80, 80])]
    gt = coco(objects, ["cat", "dog"])
    dets = [det(gt, 1, "cat", [10, 20, 50, 50], 0.9), det(gt, 3, "cat", [30, 20, 50, 50], 0.8),
            det(gt, 1, "dog", [300, 300, 60, 40], 0.7), det(gt, 2, "dog", [0, 0, 80, 80], 0.6)]
    m = evaluate_detections(gt, dets, backend=backend)
    cat = m.per_class["cat"]
    # Recall points 0, 0.01 … 0.5 have precision 1, the 50 above none: AP = 51/101 at every IoU.
    assert dataclasses.astuple(cat) == close(1, 0.5, 2 / 3, 51 / 101, 51 / 101, 4)
    assert dataclasses.astuple(m.per_class["dog"]) == close(1, 1, 1, 1, 1, 2)
    assert overall(m) == close(1, 0.75, (2 / 3 + 1) / 2, (51 / 101 + 1) / 2, (51 / 101 + 1) / 2)
    assert m.coco_stats[8] == pytest.approx(0.75, abs=1e-12)  # AR@100: the mean of the class recalls


@backends
def test_false_positive_ranked_above_the_hit_halves_precision(backend: str) -> None:
    gt = coco([(1, "cat", [0, 0, 100, 100])], ["cat"])
    dets = [det(gt, 2, "cat", [0, 0, 100, 100], 0.9), det(gt, 1, "cat", [0, 0, 100, 100], 0.8)]
    cat = evaluate_detections(gt, dets, backend=backend).per_class["cat"]
    assert dataclasses.astuple(cat) == close(0.5, 1, 2 / 3, 0.5, 0.5, 1)


@backends
def test_loose_box_counts_at_low_iou_thresholds_only(backend: str) -> None:
    gt = coco([(1, "cat", [0, 0, 100, 100])], ["cat"])
    m = evaluate_detections(gt, [det(gt, 1, "cat", [0, 0, 100, 72], 0.9)], backend=backend)  # IoU 0.72
    # Found at IoU 0.50 … 0.70, 5 of the 10 thresholds; not at 0.75.
    assert overall(m) == close(1, 1, 1, 1, 0.5)
    assert m.coco_stats[2] == 0.0


@backends
def test_class_without_ground_truth_is_listed_but_left_out_of_the_means(backend: str) -> None:
    gt = coco([(1, "cat", [0, 0, 100, 100])], ["cat", "zebra"])
    dets = [det(gt, 1, "cat", [0, 0, 100, 100], 0.9), det(gt, 2, "zebra", [0, 0, 50, 50], 0.95)]
    m = evaluate_detections(gt, dets, backend=backend)
    assert m.per_class["zebra"] == ClassMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    assert list(m.pr_curves) == ["cat"]
    assert overall(m) == close(1, 1, 1, 1, 1)


@backends
def test_detection_on_a_crowd_region_is_ignored_not_a_false_positive(backend: str) -> None:
    gt = coco([(1, "person", [0, 0, 50, 100]), (1, "person", [200, 200, 300, 200], 1)], ["person"])
    dets = [det(gt, 1, "person", [0, 0, 50, 100], 0.8), det(gt, 1, "person", [250, 250, 40, 80], 0.9)]
    m = evaluate_detections(gt, dets, backend=backend)
    assert dataclasses.astuple(m.per_class["person"]) == close(1, 1, 1, 1, 1, 1)


@backends
def test_annotations_sharing_an_id_or_with_id_zero_are_separate_objects(backend: str) -> None:
    # Handed to the backends as they are, pycocotools would see the second box twice and
    # faster-coco-eval would take id 0 for "unmatched".
    gt = coco([(1, "cat", [0, 0, 50, 50]), (1, "cat", [100, 100, 50, 50]), (2, "cat", [0, 0, 30, 30])], ["cat"])
    for ann, ann_id in zip(gt["annotations"], (0, 0, 7)):
        ann["id"] = ann_id
    dets = [det(gt, 1, "cat", [0, 0, 50, 50], 0.9), det(gt, 1, "cat", [100, 100, 50, 50], 0.8),
            det(gt, 2, "cat", [0, 0, 30, 30], 0.7)]
    m = evaluate_detections(gt, dets, backend=backend)
    assert dataclasses.astuple(m.per_class["cat"]) == close(1, 1, 1, 1, 1, 3)


@backends
def test_ground_truth_without_annotations_gives_zeros(backend: str) -> None:
    gt = coco([], ["cat"])
    m = evaluate_detections(gt, [det(gt, 1, "cat", [0, 0, 10, 10], 0.5)], backend=backend)
    assert overall(m) == (0.0, 0.0, 0.0, 0.0, 0.0)
    assert m.pr_curves == {} and m.per_class["cat"].support == 0
    assert m.coco_stats == [-1.0] * 12  # COCO's "nothing to evaluate"


# --------------------------------------------------------------------------- output


def test_to_dict_is_plain_json() -> None:
    gt, dets = synthetic(seed=3, n_images=30)
    d = evaluate_detections(gt, dets).to_dict()
    assert set(d) == {"precision", "recall", "f1", "map50", "map50_95", "per_class", "coco_stats", "backend"}
    assert set(d["per_class"]["car"]) == {"precision", "recall", "f1", "map50", "map50_95", "support"}
    assert len(d["coco_stats"]) == 12 and d["backend"] == "faster-coco-eval"

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(type(k) is str and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return type(value) in (float, int, str)

    assert plain(d)
    assert json.loads(json.dumps(d, allow_nan=False)) == d


@backends
def test_backend_output_is_silent_unless_verbose(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    gt = coco(PERFECT_OBJECTS, ["cat", "dog"])
    dets = [det(gt, img, name, box, 0.9) for img, name, box in PERFECT_OBJECTS]
    evaluate_detections(gt, dets, backend=backend)
    assert capsys.readouterr().out == ""
    evaluate_detections(gt, dets, backend=backend, verbose=True)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in capsys.readouterr().out


# --------------------------------------------------------------------------- refused input

GT = coco([(1, "cat", [0, 0, 10, 10])], ["cat"])
GOOD = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.5}


@pytest.mark.parametrize(("detection", "message"), [
    ({**GOOD, "image_id": 999}, "detection 1 names image_id 999, which is not in the ground truth's images"),
    ({**GOOD, "image_id": "1"}, "names image_id '1'"),
    ({**GOOD, "category_id": 7}, "detection 1 names category_id 7, which is not in the ground truth's categories"),
    ({k: v for k, v in GOOD.items() if k != "score"}, "detection 1 has no 'score'"),
    ({**GOOD, "bbox": [0, 0, 10]}, "detection 1 bbox must be [x, y, width, height] numbers"),
    ({**GOOD, "bbox": ["0", 0, 10, 10]}, "detection 1 bbox must be [x, y, width, height] numbers"),
    ({**GOOD, "bbox": [0, math.inf, 10, 10]}, "detection 1 bbox must be finite numbers"),
    ({**GOOD, "bbox": [0, 0, -10, 10]}, "detection 1 bbox has a negative width or height"),
    ({**GOOD, "score": math.nan}, "detection 1 score must be a finite number"),
    ({**GOOD, "score": "high"}, "detection 1 score must be a finite number"),
    ([1, 0, 0, 10, 10, 0.5], "detection 1 is not an object"),
])
def test_bad_detection_is_refused_with_its_index(detection: Any, message: str) -> None:
    with pytest.raises(DsgenError) as err:
        evaluate_detections(GT, [GOOD, detection])
    assert message in str(err.value)


@pytest.mark.parametrize(("gt", "message"), [
    ({**GT, "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "cat"}]}, "category name 'cat' is declared twice"),
    ({**GT, "categories": [{"id": 1, "name": "cat"}, {"id": 1, "name": "dog"}]}, "category id 1 is declared twice"),
    ({**GT, "categories": []}, "ground truth has no 'categories' list"),
    ({k: v for k, v in GT.items() if k != "images"}, "ground truth has no 'images' list"),
    ({**GT, "images": [{"id": 1}, {"id": 1}]}, "image id 1 appears twice"),
    ({**GT, "annotations": [{**GT["annotations"][0], "image_id": 5}]}, "ground-truth annotation 0 names image_id 5"),
    ({**GT, "annotations": [{**GT["annotations"][0], "category_id": 3}]}, "ground-truth annotation 0 names category_id 3"),
    ({**GT, "annotations": [{"image_id": 1, "category_id": 1}]}, "ground-truth annotation 0 has no 'bbox'"),
    ([GT], "ground truth must be a COCO dict"),
])
def test_bad_ground_truth_is_refused(gt: Any, message: str) -> None:
    with pytest.raises(DsgenError, match=None) as err:
        evaluate_detections(gt, [])
    assert message in str(err.value)


def test_detections_must_be_a_list_and_the_backend_known() -> None:
    with pytest.raises(DsgenError, match="detections must be a list of COCO results"):
        evaluate_detections(GT, GOOD)  # type: ignore[arg-type]
    with pytest.raises(DsgenError, match="unknown evaluation backend 'fiftyone'"):
        evaluate_detections(GT, [GOOD], backend="fiftyone")  # type: ignore[arg-type]
