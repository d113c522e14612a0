"""Small COCO files with real image files, written by the tests that need them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image


def png_bytes(w: int, h: int, color: tuple[int, int, int] | str = "black") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "PNG")
    return buf.getvalue()


class CocoWriter:
    """Writes COCO documents and image files under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images = root / "images"
        self.images.mkdir(parents=True, exist_ok=True)

    def image(self, name: str, data: bytes) -> Path:
        p = self.images / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def json(self, name: str, doc: Any) -> Path:
        p = self.root / name
        p.write_bytes(orjson.dumps(doc))
        return p


@pytest.fixture
def coco_files(tmp_path: Path) -> CocoWriter:
    return CocoWriter(tmp_path / "src")
