"""What a detector returns for one image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Detections:
    """Boxes of one image, best score first.

    ``boxes`` are ``(N, 4)`` float32 ``x1, y1, x2, y2`` in the original image's pixels, ``scores``
    ``(N,)`` float32, ``class_ids`` ``(N,)`` int64 indices into the model's ``names``.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.scores)
