"""The PR-curve and confusion-matrix charts are real, non-trivial PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation import confusion_matrix, evaluate_detections
from dsgen_core.evaluation.charts import draw_confusion_matrix, draw_pr_curve

from .cases import coco, det, synthetic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path, min_bytes: int = 10_000) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes, f"{path} is suspiciously small ({len(data)} bytes)"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def test_pr_curve_and_confusion_matrix_pngs(tmp_path: Path) -> None:
    gt, dets = synthetic(seed=5, n_images=60)
    metrics = evaluate_detections(gt, dets)
    pr = draw_pr_curve(metrics, tmp_path / "charts" / "pr.png")
    assert pr == tmp_path / "charts" / "pr.png"
    width, height = _assert_png(pr, min_bytes=30_000)
    assert width >= 800 and height >= 600

    matrix, names = confusion_matrix(gt, dets)
    cm = draw_confusion_matrix(matrix, names, tmp_path / "cm.png")
    width, height = _assert_png(cm, min_bytes=30_000)
    assert width >= 600 and height >= 600


def test_charts_of_degenerate_results(tmp_path: Path) -> None:
    gt = coco([], ["cat"])
    metrics = evaluate_detections(gt, [det(gt, 1, "cat", [0, 0, 5, 5], 0.5)])
    _assert_png(draw_pr_curve(metrics, tmp_path / "pr.png"))
    # 80 classes: cells are not annotated, the chart stays readable and bounded.
    names = [f"class {i}" for i in range(80)]
    matrix = np.random.default_rng(0).integers(0, 50, (81, 81))
    _assert_png(draw_confusion_matrix(matrix, names, tmp_path / "cm80.png"))


def test_confusion_matrix_must_fit_the_names(tmp_path: Path) -> None:
    with pytest.raises(DsgenError, match=r"does not fit 2 classes \(expected 3x3"):
        draw_confusion_matrix(np.zeros((2, 2), dtype=np.int64), ["cat", "dog"], tmp_path / "cm.png")
