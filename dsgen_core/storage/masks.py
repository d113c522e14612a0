"""The sharded RLE mask store of seed 000: ``masks/{h[0:2]}/{h[2:4]}/{object_id}.rle``.

A mask file holds one compressed COCO RLE as JSON ``{"size": [h, w], "counts": "..."}``.
The shard hash is of the object id, so files spread evenly whatever the ids look like.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
from pycocotools import mask as mask_utils
from tqdm import tqdm

from dsgen_core.storage.base import Storage


def mask_key(object_id: int | str) -> str:
    h = hashlib.sha1(str(object_id).encode()).hexdigest()
    return f"masks/{h[0:2]}/{h[2:4]}/{object_id}.rle"


def to_compressed_rle(segmentation: dict[str, Any]) -> dict[str, Any]:
    """Uncompressed (``counts`` list) or compressed RLE in, compressed RLE out."""
    h, w = segmentation["size"]
    counts = segmentation["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(segmentation, h, w)
    else:
        rle = {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts}
    return {"size": [int(h), int(w)], "counts": rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]}


def rle_area_bbox(rle: dict[str, Any]) -> tuple[float, list[float]]:
    enc = {"size": rle["size"], "counts": rle["counts"].encode() if isinstance(rle["counts"], str) else rle["counts"]}
    return float(mask_utils.area(enc)), [float(v) for v in mask_utils.toBbox(enc)]


def polygon_area_bbox(polygon: list[list[float]], height: int, width: int) -> tuple[float, list[float]]:
    rles = mask_utils.frPyObjects(polygon, height, width)
    rle = mask_utils.merge(rles)
    return float(mask_utils.area(rle)), [float(v) for v in mask_utils.toBbox(rle)]


def decode(rle: dict[str, Any]) -> np.ndarray:
    enc = {"size": rle["size"], "counts": rle["counts"].encode() if isinstance(rle["counts"], str) else rle["counts"]}
    return mask_utils.decode(enc)


def to_uncompressed_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Compressed RLE to the ``counts`` list CVAT writes for masks (column-major runs)."""
    m = decode(rle)
    flat = m.flatten(order="F")
    counts: list[int] = []
    current, run = 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 1
        else:
            run += 1
    counts.append(run)
    return {"size": list(rle["size"]), "counts": counts}


class MaskStore:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def put(self, object_id: int | str, rle: dict[str, Any]) -> str:
        return self.storage.write_bytes(mask_key(object_id), orjson.dumps(rle))

    def put_many(self, items: Sequence[tuple[int | str, dict[str, Any]]], *, progress: bool = False,
                 ) -> dict[int | str, str]:
        """``put`` for many masks, all or none: after a failed write the ones done are deleted again.

        Threads, because each write to S3 is a network round trip (and local writes gain 2x as well).
        """
        written: list[str] = []

        def one(item: tuple[int | str, dict[str, Any]]) -> tuple[int | str, str]:
            uri = self.put(*item)
            written.append(uri)
            return item[0], uri

        pool = ThreadPoolExecutor(max_workers=16)
        try:
            bar = tqdm(pool.map(one, items), total=len(items), desc="masks", unit="mask", leave=False,
                       disable=not progress or not items)
            uris = dict(bar)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            for uri in written:
                with contextlib.suppress(Exception):  # the write error is the one worth reporting
                    self.delete(uri)
            raise
        pool.shutdown()
        return uris

    def get(self, uri: str) -> dict[str, Any]:
        return orjson.loads(self.storage.read_bytes(self.storage.key_of(uri)))

    def delete(self, uri: str) -> None:
        self.storage.delete(self.storage.key_of(uri))


def mask_outlines(rle: dict[str, Any]) -> list[list[float]]:
    """A mask's outer outlines as COCO polygon parts ``[x, y, x, y, ...]``, largest first: for
    drawing a mask and for formats that hold only polygons."""
    import cv2

    m = decode(rle).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in sorted(contours, key=cv2.contourArea, reverse=True)
            if len(c) >= 3]
