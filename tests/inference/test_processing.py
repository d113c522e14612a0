"""Pre- and post-processing on their own, against Ultralytics' and torchvision's implementations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsgen_core.errors import DsgenError
from dsgen_core.inference import LetterboxParams, letterbox, load_image, postprocess
from dsgen_core.inference.nms import nms


@pytest.mark.parametrize(("height", "width", "imgsz"), [(64, 64, 64), (96, 160, 64), (130, 50, 64), (480, 640, 160),
                                                         (30, 20, 96), (1, 300, 64)])
def test_letterbox_equals_ultralytics(height: int, width: int, imgsz: int) -> None:
    from ultralytics.data.augment import LetterBox

    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = LetterBox((imgsz, imgsz), auto=False)(image=image)[..., ::-1].transpose(2, 0, 1) / np.float32(255)
    tensor, _ = letterbox(image, imgsz)
    assert tensor.dtype == np.float32 and tensor.shape == (3, imgsz, imgsz)
    assert np.array_equal(tensor, expected)


def test_letterbox_writes_into_the_given_buffer() -> None:
    buffer = np.zeros((2, 3, 64, 64), np.float32)
    tensor, _ = letterbox(np.zeros((32, 64, 3), np.uint8), 64, out=buffer[1])
    assert np.shares_memory(tensor, buffer)
    assert buffer[1, :, 0, 0] == pytest.approx([114 / 255] * 3)  # top padding
    assert buffer[1, :, 32, 32].tolist() == [0, 0, 0]  # the image


def test_boxes_map_back_to_a_non_square_original() -> None:
    """200x100 image at imgsz 64: scaled by 0.32 to 64x32, 16 px of padding above and below."""
    _, params = letterbox(np.zeros((100, 200, 3), np.uint8), 64)
    assert params == LetterboxParams(orig_shape=(100, 200), gain=(0.32, 0.32), pad=(0, 16))
    # (4 + 2 classes, 3 anchors) in input pixels, cx cy w h: the original box [50, 20, 150, 80] is
    # [16, 22.4, 48, 41.6] on the input; the second, [4, 15, 12, 25], starts in the padding and is clipped.
    pred = np.array([[32, 8, 60], [32, 20, 60], [32, 8, 4], [19.2, 10, 4], [0.1, 0.6, 0.01], [0.9, 0.2, 0.02]],
                    np.float32)
    dets = postprocess(pred, params, conf=0.25, iou=0.7, max_det=300)
    assert dets.class_ids.tolist() == [1, 0]
    assert dets.scores == pytest.approx([0.9, 0.6])
    np.testing.assert_allclose(dets.boxes, [[50, 20, 150, 80], [12.5, 0, 37.5, 28.125]], atol=1e-4)
    assert dets.boxes.dtype == np.float32 and dets.class_ids.dtype == np.int64


def test_postprocess_keeps_the_best_class_and_suppresses_within_a_class_only() -> None:
    _, params = letterbox(np.zeros((64, 64, 3), np.uint8), 64)
    # Anchors 0 and 1 overlap almost entirely (IoU 0.9) and are both class 0; anchor 2 is the same
    # box as anchor 0 but class 1; anchor 3 is below conf.
    boxes = np.array([[20, 20, 20, 20], [20, 20, 19, 19], [20, 20, 20, 20], [50, 50, 8, 8]], np.float32).T
    scores = np.array([[0.8, 0.7, 0.1, 0.2], [0.3, 0.1, 0.5, 0.2]], np.float32)
    dets = postprocess(np.vstack([boxes, scores]), params, conf=0.25, iou=0.7, max_det=300)
    assert dets.scores == pytest.approx([0.8, 0.5])
    assert dets.class_ids.tolist() == [0, 1]
    assert len(postprocess(np.vstack([boxes, scores]), params, conf=0.25, iou=0.7, max_det=1)) == 1
    assert len(postprocess(np.vstack([boxes, scores]), params, conf=0.9, iou=0.7, max_det=300)) == 0


def test_end2end_rows_are_filtered_not_suppressed() -> None:
    _, params = letterbox(np.zeros((32, 64, 3), np.uint8), 64)  # gain 1, 16 px padding on top
    rows = np.array([[0, 16, 10, 26, 0.9, 3], [0, 16, 10, 26, 0.8, 3], [5, 20, 9, 30, 0.1, 1]], np.float32)
    dets = postprocess(rows, params, conf=0.25, iou=0.7, max_det=300, end2end=True)
    assert dets.class_ids.tolist() == [3, 3]  # duplicates stay: an end-to-end head has already chosen
    np.testing.assert_allclose(dets.boxes, [[0, 0, 10, 10]] * 2)


@pytest.mark.parametrize("spread", [640, 100])  # scattered boxes, then crowded ones that suppress a lot
@pytest.mark.parametrize("max_det", [300, 20])
def test_nms_equals_torchvision_per_class(spread: int, max_det: int) -> None:
    import torch
    import torchvision

    rng = np.random.default_rng(spread + max_det)
    n = 2000  # more than one block of candidates
    xy = rng.uniform(0, spread, (n, 2)).astype(np.float32)
    boxes = np.hstack([xy, xy + rng.uniform(4, 80, (n, 2)).astype(np.float32)])
    scores = rng.uniform(0, 1, n).astype(np.float32)
    classes = rng.integers(0, 3, n)
    expected = np.concatenate([np.flatnonzero(classes == c)[torchvision.ops.nms(
        torch.from_numpy(boxes[classes == c]), torch.from_numpy(scores[classes == c]), 0.5).numpy()] for c in range(3)])
    expected = expected[np.argsort(-scores[expected], kind="stable")][:max_det]
    kept = nms(boxes, scores, classes, 0.5, max_det)
    assert kept.tolist() == expected.tolist()
    assert 0 < len(kept) <= max_det


def test_nms_of_nothing() -> None:
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), 0.7, 300).size == 0


def test_load_image_converts_and_refuses(tmp_path: Path) -> None:
    assert load_image(np.zeros((5, 7), np.uint8)).shape == (5, 7, 3)
    assert load_image(np.zeros((5, 7, 4), np.uint8)).shape == (5, 7, 3)
    with pytest.raises(DsgenError, match="uint8"):
        load_image(np.zeros((5, 7, 3), np.float32))
    with pytest.raises(DsgenError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DsgenError, match="broken.jpg"):
        load_image(tmp_path / "broken.jpg")
