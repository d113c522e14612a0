"""evaluate_detections on real annotation files from the shared corpus.

cocoapi's fake results and their published summary are in the corpus, but not their ground truth
(instances_val2014.json comes from cocodataset.org, not the cocoapi repository), so that pair
cannot be evaluated here; the mmpose pair below is real detections against real ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation import evaluate_detections

from .cases import BACKENDS

backends = pytest.mark.parametrize("backend", BACKENDS)


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
