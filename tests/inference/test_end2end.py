"""NMS-free heads (YOLO26): export_onnx's graph, TorchDetector and a foreign end-to-end export."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dsgen_core.inference import Detections, OnnxDetector, check_onnx_parity, compare_detections, export_onnx

from .conftest import IMGSZ

CONF = 0.001


@pytest.fixture(scope="module")
def yolo26(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO("yolo26n.yaml")  # random weights, 80 classes
    model.model.end2end = True  # how a trained YOLO26 is saved and run by Ultralytics: one-to-one head, no NMS
    with torch.no_grad():  # every class score sits at the head's prior until biased apart; ties would rank at random
        for name, p in model.model.model[-1].named_parameters():
            if "cv3" in name and name.endswith("bias"):
                p.add_(torch.randn_like(p) * 3)
    path = tmp_path_factory.mktemp("yolo26") / "yolo26n.pt"
    model.save(path)
    return path


def test_export_and_checkpoint_use_the_same_head(yolo26: Path, sample_images: list[Path], tmp_path: Path) -> None:
    info = export_onnx(yolo26, tmp_path / "y26.onnx", imgsz=IMGSZ)
    assert info.outputs[0]["shape"] == [1, 84, 84]  # one-to-many: boxes + 80 classes per anchor, NMS to follow
    report = check_onnx_parity(yolo26, info.path, sample_images, imgsz=IMGSZ, conf=CONF)
    assert report.ok, report.problems
    assert report.detections > 2 * len(sample_images)


def test_end_to_end_export_decodes_like_ultralytics(yolo26: Path, sample_images: list[Path], tmp_path: Path) -> None:
    """An export made with nms=False outputs (1, k, 6) final boxes; OnnxDetector filters them, no NMS."""
    from ultralytics import YOLO

    shutil.copyfile(yolo26, tmp_path / "e2e.pt")
    path = Path(YOLO(str(tmp_path / "e2e.pt")).export(format="onnx", nms=False, imgsz=IMGSZ, device="cpu"))
    detector = OnnxDetector(path, conf=CONF)
    assert detector._end2end
    images = sample_images[-2:] + sample_images[:2]
    reference = [Detections(r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy().astype(np.int64))
                 for r in YOLO(str(path), task="detect").predict([str(p) for p in images], imgsz=IMGSZ, conf=CONF,
                                                                 device="cpu", verbose=False)]
    report = compare_detections(reference, detector.predict(images), box_tol=1e-3, score_tol=1e-6)
    assert report.ok and report.detections > 0, report.problems
