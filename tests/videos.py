"""Small videos made by the tests that need them (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

# mpeg4 is in every FFmpeg build PyAV ships; libx264 when the build has it.
CODEC = "mpeg4" if "mpeg4" in av.codecs_available else "libx264"


def make_video(path: Path, n_frames: int = 30, *, width: int = 64, height: int = 48, rate: int = 10) -> Path:
    """Coloured squares moving across a grey background: a red one right, a green one left and down."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODEC, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n_frames):
            a = np.full((height, width, 3), 96, np.uint8)
            x = i % (width - 10)
            a[8:18, x:x + 10] = (230, 30, 30)
            y = min(height - 10, 20 + i // 4)
            a[y:y + 10, width - 12 - x // 2:width - 2 - x // 2] = (30, 200, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
