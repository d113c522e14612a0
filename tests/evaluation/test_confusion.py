"""confusion_matrix on a case worked out by hand, and its thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation import confusion_matrix

from .cases import coco, det

OBJECTS = [
    (1, "cat", [0, 0, 100, 100]),
    (1, "dog", [200, 0, 100, 100]),
    (1, "cat", [400, 300, 200, 150], 1),  # crowd
    (2, "bird", [10, 10, 50, 50]),
    (2, "dog", [100, 100, 80, 80]),
    (4, "cat", [0, 0, 100, 100]),
    (4, "cat", [50, 0, 100, 100]),
]
GT = coco(OBJECTS, ["cat", "dog", "bird"])
DETS = [
    det(GT, 1, "cat", [0, 0, 100, 100], 0.9),  # hit
    det(GT, 1, "cat", [205, 0, 100, 100], 0.8),  # on the dog (IoU 0.905): cat predicted for a dog
    det(GT, 1, "dog", [0, 300, 50, 50], 0.7),  # on nothing
    det(GT, 1, "bird", [0, 0, 100, 100], 0.1),  # below conf 0.25
    det(GT, 1, "dog", [450, 320, 50, 50], 0.6),  # inside the crowd region: not counted
    det(GT, 2, "dog", [104, 100, 80, 80], 0.95),  # IoU 0.905 with the dog, loses it to …
    det(GT, 2, "dog", [100, 100, 80, 80], 0.5),  # … the exact box: greedy by IoU, not score
    det(GT, 3, "bird", [10, 10, 20, 20], 0.3),  # image without objects
    det(GT, 4, "cat", [40, 0, 100, 100], 0.9),  # IoU 0.43 / 0.82 with the two cats: takes the second
]


def test_hand_made_case() -> None:
    matrix, names = confusion_matrix(GT, DETS)
    assert names == ["cat", "dog", "bird"]
    assert matrix.dtype == np.int64
    # rows: predicted cat, dog, bird, background; columns: true cat, dog, bird, background
    assert matrix.tolist() == [
        [2, 1, 0, 0],
        [0, 1, 0, 2],
        [0, 0, 0, 1],
        [1, 0, 1, 0],
    ]
    # Every non-crowd object is counted once in its column; the crowd one nowhere.
    assert matrix[:, :3].sum(axis=0).tolist() == [3, 2, 1]


def test_thresholds() -> None:
    # With conf 0.05 the bird box on the first cat counts; the cat box with the same IoU and a
    # higher score keeps the match, so the bird is a false detection.
    low_conf, _ = confusion_matrix(GT, DETS, conf=0.05)
    assert low_conf[2, 3] == 2 and low_conf[0, 0] == 2
    # At IoU 0.95 the cat boxes at 0.905 (on the dog) and 0.82 (on image 4) match nothing: two
    # more misses (a dog, a cat) and two false cats; the dog's duplicate still loses at IoU 1.
    strict, _ = confusion_matrix(GT, DETS, iou=0.95)
    assert strict.tolist() == [
        [1, 0, 0, 2],
        [0, 1, 0, 2],
        [0, 0, 0, 1],
        [2, 1, 1, 0],
    ]


def test_empty_detections_put_every_object_in_the_background_row() -> None:
    matrix, _ = confusion_matrix(GT, [])
    assert matrix[3].tolist() == [3, 2, 1, 0] and matrix[:3].sum() == 0


@pytest.mark.parametrize("iou", [0.0, 1.5, float("nan")])
def test_bad_iou_threshold_is_refused(iou: float) -> None:
    with pytest.raises(DsgenError, match="IoU threshold must be in"):
        confusion_matrix(GT, DETS, iou=iou)


def test_detection_on_an_unknown_image_is_refused() -> None:
    with pytest.raises(DsgenError, match="detection 0 names image_id 42"):
        confusion_matrix(GT, [det(GT, 42, "cat", [0, 0, 1, 1], 0.9)])
