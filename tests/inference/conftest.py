"""A tiny detection model trained on the spot, shared by the inference tests.

- ``shapes_dataset``: 16 images of 64x64, red (class 0) and green (class 1) filled rectangles,
  as an Ultralytics YOLO folder with ``data.yaml``.
- ``tiny_weights``: ``last.pt`` of a yolov8n built from its YAML and trained 2 epochs on it at
  imgsz 64 (a few seconds on 2 cores; it detects little, but its outputs are real).
- ``tiny_onnx``: the :class:`OnnxInfo` of its export at imgsz 64.
- ``sample_images``: the 16 training images plus two non-square ones (width x height 160x96 and 50x130).

Ultralytics runs offline (the root conftest's session fixture).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dsgen_core.inference import OnnxInfo, export_onnx

IMGSZ = 64
NAMES = {0: "red", 1: "green"}
COLOURS = {0: (0, 0, 255), 1: (0, 255, 0)}  # BGR


def draw_shapes(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list[str]]:
    """A grey image with 1-3 filled rectangles and their YOLO label lines."""
    image = np.full((height, width, 3), 60, np.uint8)
    lines = []
    for _ in range(rng.integers(1, 4)):
        cls = int(rng.integers(2))
        w, h = int(rng.integers(width // 5, width // 2)), int(rng.integers(height // 5, height // 2))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), COLOURS[cls], -1)
        lines.append(f"{cls} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}")
    return image, lines


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i in range(16):
        image, lines = draw_shapes(rng, IMGSZ, IMGSZ)
        cv2.imwrite(str(root / "images" / "train" / f"{i:02d}.png"), image)
        (root / "labels" / "train" / f"{i:02d}.txt").write_text("\n".join(lines) + "\n")
    names = "".join(f"  {k}: {v}\n" for k, v in NAMES.items())
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/train\nnames:\n{names}")
    return root


@pytest.fixture(scope="session")
def tiny_weights(shapes_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ultralytics import YOLO

    runs = tmp_path_factory.mktemp("runs")
    YOLO("yolov8n.yaml").train(
        data=str(shapes_dataset / "data.yaml"), epochs=2, imgsz=IMGSZ, batch=8, workers=0, device="cpu",
        plots=False, amp=False, val=False, project=str(runs), name="tiny", exist_ok=True, verbose=False, seed=0,
    )
    weights = runs / "tiny" / "weights" / "last.pt"
    assert weights.is_file()
    return weights


@pytest.fixture(scope="session")
def tiny_onnx(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> OnnxInfo:
    return export_onnx(tiny_weights, tmp_path_factory.mktemp("onnx") / "tiny.onnx", imgsz=IMGSZ)


@pytest.fixture(scope="session")
def sample_images(shapes_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    extra = tmp_path_factory.mktemp("non-square")
    rng = np.random.default_rng(1)
    paths = sorted((shapes_dataset / "images" / "train").glob("*.png"))
    for height, width in ((96, 160), (130, 50)):
        image, _ = draw_shapes(rng, height, width)
        paths.append(extra / f"{width}x{height}.png")  # width x height
        cv2.imwrite(str(paths[-1]), image)
    return paths
