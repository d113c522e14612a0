"""check_onnx_parity on the real export, and compare_detections catching real differences."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from dsgen_core.errors import DsgenError
from dsgen_core.inference import Detections, OnnxInfo, check_onnx_parity, compare_detections, export_onnx

from .conftest import IMGSZ


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    a = np.array(rows, np.float64).reshape(-1, 6)
    return Detections(a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int64))


def test_export_is_at_parity_with_its_checkpoint(tiny_weights: Path, tiny_onnx: OnnxInfo,
                                                 sample_images: list[Path]) -> None:
    report = check_onnx_parity(tiny_weights, tiny_onnx.path, sample_images, imgsz=IMGSZ, conf=0.001)
    assert report.ok, report.problems
    assert report.images == len(sample_images)
    assert report.detections >= 3 * len(sample_images)
    assert report.max_box_diff_px <= 1.0 and report.max_score_diff <= 1e-3


def test_parity_fails_against_an_export_of_another_model(tiny_weights: Path, sample_images: list[Path],
                                                         tmp_path: Path) -> None:
    from ultralytics import YOLO

    other = tmp_path / "other.pt"
    YOLO("yolov8n.yaml").save(other)  # same architecture, 80 random-weight classes
    onnx_path = export_onnx(other, tmp_path / "other.onnx", imgsz=IMGSZ).path
    report = check_onnx_parity(tiny_weights, onnx_path, sample_images, imgsz=IMGSZ, conf=0.001)
    assert not report.ok
    assert report.problems[0].startswith("class names differ")


def test_parity_refuses_an_export_of_another_size(tiny_weights: Path, tiny_onnx: OnnxInfo,
                                                  sample_images: list[Path]) -> None:
    with pytest.raises(DsgenError, match="tiny.onnx takes 64 px input, not imgsz 96"):
        check_onnx_parity(tiny_weights, tiny_onnx.path, sample_images, imgsz=96)


def test_a_box_moved_by_5_px_is_reported(tiny_onnx: OnnxInfo, sample_images: list[Path]) -> None:
    from dsgen_core.inference import OnnxDetector

    a = OnnxDetector(tiny_onnx.path, conf=0.001).predict(sample_images)
    b = copy.deepcopy(a)
    assert compare_detections(a, b).ok
    image = next(i for i, d in enumerate(b) if len(d) >= 3)
    b[image].boxes[2, 0] += 5
    report = compare_detections(a, b, labels=[p.name for p in sample_images])
    assert not report.ok
    assert report.max_box_diff_px == pytest.approx(5, abs=1e-3)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{sample_images[image].name}: detection 2 (class ")
    assert "box differs by 5.00 px" in report.problems[0]


def test_matching_ignores_order_but_not_class_score_or_count() -> None:
    a = [dets((0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.5, 1))]
    assert compare_detections(a, [dets((20, 20, 30, 30, 0.5, 1), (0, 0, 10, 10, 0.9, 0))]).ok
    assert compare_detections(a, [dets((0, 0, 10.5, 10, 0.9, 0), (20, 20, 30, 30, 0.5004, 1))]).ok

    wrong_class = compare_detections(a, [dets((0, 0, 10, 10, 0.9, 1), (20, 20, 30, 30, 0.5, 1))])
    assert wrong_class.problems == [
        "image 0: detection 0 (class 0, score 0.9000, box [0.0, 0.0, 10.0, 10.0]) only in the first",
        "image 0: detection 0 (class 1, score 0.9000, box [0.0, 0.0, 10.0, 10.0]) only in the second",
    ]
    score = compare_detections(a, [dets((0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.51, 1))])
    assert not score.ok and "score by 0.01" in score.problems[0]
    assert score.max_score_diff == pytest.approx(0.01, abs=1e-6)
    missing = compare_detections(a, [dets((0, 0, 10, 10, 0.9, 0))])
    assert missing.problems == ["image 0: detection 1 (class 1, score 0.5000, box [20.0, 20.0, 30.0, 30.0]) only in the first"]
    assert compare_detections(a, a + a).problems == ["1 images against 2"]
    assert compare_detections([Detections()], [Detections()]).ok
