"""OnnxDetector and TorchDetector on the tiny model, against Ultralytics' own predict."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from dsgen_core.errors import DsgenError
from dsgen_core.inference import Detections, OnnxDetector, OnnxInfo, TorchDetector, compare_detections

from .conftest import IMGSZ, NAMES

CONF = 0.001  # low, so the untrained-ish model yields many boxes to compare


def as_detections(result) -> Detections:  # noqa: ANN001 - an ultralytics Results
    return Detections(result.boxes.xyxy.numpy(), result.boxes.conf.numpy(), result.boxes.cls.numpy().astype(np.int64))


def test_metadata_sets_names_and_size(tiny_onnx: OnnxInfo) -> None:
    detector = OnnxDetector(tiny_onnx.path)
    assert detector.names == NAMES
    assert detector.imgsz == IMGSZ


def test_detections_equal_ultralytics_predict_on_non_square_images(tiny_weights: Path, tiny_onnx: OnnxInfo,
                                                                    sample_images: list[Path]) -> None:
    """Same boxes in original pixels as YOLO.predict with a square letterbox (rect=False, as an export takes)."""
    from ultralytics import YOLO

    images = sample_images[-2:] + sample_images[:4]  # the non-square ones first
    reference = [as_detections(r) for r in YOLO(str(tiny_weights)).predict(
        [str(p) for p in images], imgsz=IMGSZ, conf=CONF, rect=False, device="cpu", verbose=False)]
    assert sum(len(d) for d in reference) > 10
    ours_torch = TorchDetector(tiny_weights, imgsz=IMGSZ, conf=CONF).predict(images)
    ours_onnx = OnnxDetector(tiny_onnx.path, conf=CONF).predict(images)
    report = compare_detections(reference, ours_torch, box_tol=1e-3, score_tol=1e-6)
    assert report.ok, report.problems
    report = compare_detections(reference, ours_onnx, box_tol=0.05, score_tol=1e-4)
    assert report.ok, report.problems
    for path, dets in zip(images[:2], ours_onnx):  # boxes are in the original image, inside it
        height, width = cv2.imread(str(path)).shape[:2]
        assert (dets.boxes >= 0).all() and (dets.boxes[:, 0::2] <= width).all() and (dets.boxes[:, 1::2] <= height).all()
        assert dets.boxes[:, 2].max() > IMGSZ or dets.boxes[:, 3].max() > IMGSZ


def test_arrays_and_paths_give_the_same_result(tiny_onnx: OnnxInfo, sample_images: list[Path]) -> None:
    detector = OnnxDetector(tiny_onnx.path, conf=CONF)
    from_paths = detector.predict(sample_images)
    from_arrays = detector.predict([cv2.imread(str(p)) for p in sample_images])
    assert [d.boxes.tolist() for d in from_paths] == [d.boxes.tolist() for d in from_arrays]


def test_batches(tiny_weights: Path, tiny_onnx: OnnxInfo, sample_images: list[Path], tmp_path: Path) -> None:
    """A fixed batch-1 model loops; a batch-dynamic export runs 5 at a time; the results agree."""
    one_by_one = OnnxDetector(tiny_onnx.path, conf=CONF).predict(sample_images)
    assert len(one_by_one) == len(sample_images)
    looped = OnnxDetector(tiny_onnx.path, conf=CONF).predict(sample_images, batch=5)
    assert [d.boxes.tolist() for d in looped] == [d.boxes.tolist() for d in one_by_one]

    from ultralytics import YOLO

    shutil.copyfile(tiny_weights, tmp_path / "dynamic.pt")
    dynamic = Path(YOLO(str(tmp_path / "dynamic.pt")).export(format="onnx", dynamic=True, imgsz=IMGSZ, device="cpu"))
    detector = OnnxDetector(dynamic, conf=CONF)
    assert detector._fixed_batch is None and detector.imgsz == IMGSZ
    batched = detector.predict(sample_images, batch=5)
    report = compare_detections(one_by_one, batched, box_tol=0.05, score_tol=1e-4)
    assert report.ok and report.detections > 0, report.problems


def test_torch_detector_batches_agree(tiny_weights: Path, sample_images: list[Path]) -> None:
    detector = TorchDetector(tiny_weights, imgsz=IMGSZ, conf=CONF)
    report = compare_detections(detector.predict(sample_images), detector.predict(sample_images, batch=7),
                                box_tol=0.05, score_tol=1e-4)
    assert report.ok and report.images == len(sample_images) and report.detections > 0, report.problems


def test_predict_refuses_a_bare_image(tiny_onnx: OnnxInfo, sample_images: list[Path]) -> None:
    detector = OnnxDetector(tiny_onnx.path)
    with pytest.raises(DsgenError, match="wrap a single image in a list"):
        detector.predict(cv2.imread(str(sample_images[0])))
    with pytest.raises(DsgenError, match="wrap a single image in a list"):
        detector.predict(sample_images[0])
    with pytest.raises(DsgenError, match="batch must be at least 1"):
        detector.predict(sample_images, batch=0)
    with pytest.raises(DsgenError, match="nowhere.png"):
        detector.predict([sample_images[0].with_name("nowhere.png")])
    assert detector.predict([]) == []


def test_missing_or_corrupt_files_are_named(tiny_onnx: OnnxInfo, tmp_path: Path) -> None:
    with pytest.raises(DsgenError, match="missing.onnx"):
        OnnxDetector(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_onnx.path.read_bytes()[: tiny_onnx.size_bytes // 2])
    with pytest.raises(DsgenError, match="corrupt.onnx"):
        OnnxDetector(corrupt)
    with pytest.raises(DsgenError, match="missing.pt"):
        TorchDetector(tmp_path / "missing.pt", imgsz=IMGSZ)
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(DsgenError, match="corrupt.pt"):
        TorchDetector(tmp_path / "corrupt.pt", imgsz=IMGSZ)
    with pytest.raises(DsgenError, match="tiny.onnx"):
        TorchDetector(tiny_onnx.path, imgsz=IMGSZ)


def test_torch_detector_refuses_an_imgsz_off_the_stride(tiny_weights: Path) -> None:
    with pytest.raises(DsgenError, match="imgsz 70 is not a positive multiple of the stride 32"):
        TorchDetector(tiny_weights, imgsz=70)
