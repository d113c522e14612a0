"""evaluate_detections on real annotation files from the shared corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation import evaluate_detections

from .cases import BACKENDS

backends = pytest.mark.parametrize("backend", BACKENDS)


def _published_bbox_summary(corpus: Path) -> list[float]:
    """The 12 bbox numbers of cocoapi's expected output for its fake results."""
    text = (corpus / "cocoapi" / "results" / "val2014_fake_eval_res.txt").read_text()
    block = text.split("type=bbox", 1)[1].split("type=keypoints", 1)[0]
    return [float(v) for v in re.findall(r"\] = (-?\d\.\d{3})", block)]


@backends
def test_cocoapi_fake_bbox_results_match_the_published_summary(corpus: Path, backend: str) -> None:
    published = _published_bbox_summary(corpus)
    assert len(published) == 12 and published[:2] == [0.505, 0.697]
    # cocoapi evaluates its fake results against instances_val2014.json, which the corpus lacks
    # (downloaded from cocodataset.org, not part of the cocoapi repository); this runs once it is added.
    gt_path = corpus / "cocoapi" / "annotations" / "instances_val2014.json"
    if not gt_path.exists():
        pytest.skip(f"{gt_path.relative_to(corpus)} (ground truth of the cocoapi fake results) is not in the corpus")
    gt = json.loads(gt_path.read_text())
    # As pycocoEvalDemo: the first 100 image ids only.
    keep = set(sorted(img["id"] for img in gt["images"])[:100])
    gt = {**gt, "images": [i for i in gt["images"] if i["id"] in keep],
          "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
    dets = json.loads((corpus / "cocoapi" / "results" / "instances_val2014_fakebbox100_results.json").read_text())
    stats = evaluate_detections(gt, dets, backend=backend).coco_stats
    assert [round(s, 3) for s in stats] == published


@backends
def test_mmpose_person_detections_match_pycocotools_on_the_files(corpus: Path, backend: str) -> None:
    """A real COCO val2017 subset (4 images, 14 people) with a real detector's 118 boxes."""
    data = corpus / "mmpose" / "tests" / "data" / "coco"
    gt_path, dt_path = data / "test_coco.json", data / "test_coco_det_AP_H_56.json"
    m = evaluate_detections(json.loads(gt_path.read_text()), json.loads(dt_path.read_text()), backend=backend)

    coco_gt = COCO(str(gt_path))
    reference = COCOeval(coco_gt, coco_gt.loadRes(str(dt_path)), "bbox")
    reference.evaluate()
    reference.accumulate()
    reference.summarize()
    assert m.coco_stats == pytest.approx([float(s) for s in reference.stats], abs=1e-6)
    assert m.map50_95 == pytest.approx(float(reference.stats[0]), abs=1e-6)
    assert m.map50 == pytest.approx(float(reference.stats[1]), abs=1e-6)
    assert list(m.per_class) == ["person"] and m.per_class["person"].support == 14
    assert 0.3 < m.map50_95 < m.map50 < 1.0 and 0.5 < m.recall <= 1.0


def test_mmdetection_sample_with_an_undeclared_category_is_refused(corpus: Path) -> None:
    gt = json.loads((corpus / "mmdetection" / "tests" / "data" / "coco_sample.json").read_text())
    with pytest.raises(DsgenError, match=r"ground-truth annotation 5 names category_id 3, which is not in the ground truth's categories"):
        evaluate_detections(gt, [])


@backends
def test_mmdetection_annotations_sharing_an_id_are_two_objects(corpus: Path, backend: str) -> None:
    """Both annotations of this broken file have id 1; they are still two cars to find."""
    gt = json.loads((corpus / "mmdetection" / "tests" / "data" / "coco_wrong_format_sample.json").read_text())
    assert [a["id"] for a in gt["annotations"]] == [1, 1]
    dets = [{k: a[k] for k in ("image_id", "category_id", "bbox", "score")} for a in gt["annotations"]]
    m = evaluate_detections(gt, dets, backend=backend)
    assert m.per_class["car"].support == 2
    assert (m.precision, m.recall, m.map50) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    assert evaluate_detections(gt, dets[:1], backend=backend).recall == 0.5
