"""Does an ONNX export detect what its PyTorch checkpoint detects? Box by box, within tolerances."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsgen_core.errors import DsgenError
from dsgen_core.inference.detections import Detections
from dsgen_core.inference.detector import OnnxDetector, TorchDetector
from dsgen_core.inference.preprocess import load_image

MAX_PROBLEMS = 50  # a broken export differs everywhere; the first lines say enough
_CHUNK = 32  # images decoded once for both detectors, a few at a time to bound memory


@dataclass(frozen=True)
class ParityReport:
    ok: bool
    images: int
    detections: int  # in the reference (the first list)
    max_box_diff_px: float  # over matched detections, largest coordinate difference
    max_score_diff: float
    problems: list[str]


def compare_detections(a: list[Detections], b: list[Detections], *, box_tol: float = 1.0, score_tol: float = 1e-3,
                       labels: Sequence[str] | None = None) -> ParityReport:
    """Match each image's detections one to one within a class (closest boxes first) and report
    every pair further apart than ``box_tol`` pixels (any coordinate) or ``score_tol``, and every
    detection left without a partner. ``labels`` name the images in messages (default: their index)."""
    problems: list[str] = []
    if len(a) != len(b):
        problems.append(f"{len(a)} images against {len(b)}")
    max_box = max_score = 0.0
    for i, (da, db) in enumerate(zip(a, b, strict=False)):
        image = labels[i] if labels is not None else f"image {i}"
        pairs, lonely_a, lonely_b = _match(da, db)
        for ia, ib in pairs:
            box_diff = float(np.abs(da.boxes[ia] - db.boxes[ib]).max())
            score_diff = abs(float(da.scores[ia]) - float(db.scores[ib]))
            max_box, max_score = max(max_box, box_diff), max(max_score, score_diff)
            if box_diff > box_tol or score_diff > score_tol:
                problems.append(f"{image}: detection {ia} ({_describe(da, ia)}) against {ib} ({_describe(db, ib)}): "
                                f"box differs by {box_diff:.2f} px, score by {score_diff:.2g}")
        problems += [f"{image}: detection {ia} ({_describe(da, ia)}) only in the first" for ia in lonely_a]
        problems += [f"{image}: detection {ib} ({_describe(db, ib)}) only in the second" for ib in lonely_b]
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
    return ParityReport(ok=not problems, images=len(a), detections=sum(len(d) for d in a),
                        max_box_diff_px=max_box, max_score_diff=max_score, problems=problems)


def check_onnx_parity(weights: Path, onnx_path: Path, images: Sequence[Path], *, imgsz: int,
                      conf: float = 0.25) -> ParityReport:
    """Run the same images through the checkpoint (:class:`TorchDetector`) and its export
    (:class:`OnnxDetector`) with identical pre- and post-processing, and compare."""
    onnx_detector = OnnxDetector(onnx_path, conf=conf)
    if onnx_detector.imgsz != imgsz:
        raise DsgenError(f"{onnx_path} takes {onnx_detector.imgsz} px input, not imgsz {imgsz}")
    torch_detector = TorchDetector(weights, imgsz=imgsz, conf=conf)
    reference: list[Detections] = []
    exported: list[Detections] = []
    for start in range(0, len(images), _CHUNK):
        arrays = [load_image(p) for p in images[start:start + _CHUNK]]
        reference += torch_detector.predict(arrays)
        exported += onnx_detector.predict(arrays)
    report = compare_detections(reference, exported, labels=[str(p) for p in images])
    if torch_detector.names != onnx_detector.names:
        problem = f"class names differ: {weights} has {torch_detector.names}, {onnx_path} has {onnx_detector.names}"
        report = dataclasses.replace(report, ok=False, problems=[problem, *report.problems])
    return report


def _match(a: Detections, b: Detections) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Greedy one-to-one pairs of same-class detections, closest boxes first; then what is left of each."""
    cost = np.abs(a.boxes[:, None, :] - b.boxes[None, :, :]).max(2) if len(a) and len(b) else np.zeros((len(a), len(b)))
    cost[a.class_ids[:, None] != b.class_ids[None, :]] = np.inf
    free_a, free_b = np.ones(len(a), bool), np.ones(len(b), bool)
    pairs: list[tuple[int, int]] = []
    # Equal costs (clipping can make two boxes identical) go to the pair closest in rank, so a
    # difference is reported against its own counterpart.
    rank_gap = np.abs(np.arange(len(a))[:, None] - np.arange(len(b))[None, :])
    for flat in np.lexsort((rank_gap.ravel(), cost.ravel())):
        ia, ib = divmod(int(flat), len(b))
        if not np.isfinite(cost[ia, ib]) or len(pairs) == min(len(a), len(b)):
            break
        if free_a[ia] and free_b[ib]:
            free_a[ia] = free_b[ib] = False
            pairs.append((ia, ib))
    return pairs, np.flatnonzero(free_a).tolist(), np.flatnonzero(free_b).tolist()


def _describe(d: Detections, i: int) -> str:
    x1, y1, x2, y2 = (float(v) for v in d.boxes[i])
    return f"class {int(d.class_ids[i])}, score {float(d.scores[i]):.4f}, box [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]"
