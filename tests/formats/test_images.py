"""The fast JPEG/PNG header reader agrees with PIL; anything else falls back to PIL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from dsgen_core.formats.images import ImageProblem, _fast_size, probe_image


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [("JPEG", {}), ("JPEG", {"progressive": True}), ("JPEG", {"exif": Image.Exif()}), ("PNG", {}),
     ("JPEG", {"subsampling": 0, "quality": 95})],
)
@pytest.mark.parametrize("size", [(1, 1), (37, 19), (640, 480), (3000, 17)])
def test_fast_size_matches_pil(fmt: str, kw: dict, size: tuple[int, int]) -> None:
    buf = io.BytesIO()
    Image.new("L" if size == (1, 1) else "RGB", size, "gray").save(buf, fmt, **kw)
    w, h, _ = _fast_size(buf.getvalue())
    assert (w, h) == size


def test_corpus_images_match_pil(corpus: Path) -> None:
    paths = sorted(corpus.rglob("*.jpg")) + sorted(corpus.rglob("*.png"))
    assert len(paths) > 20
    for p in paths:
        with Image.open(p) as im:
            assert _fast_size(p.read_bytes())[:2] == im.size, p


def test_other_formats_fall_back_to_pil_and_junk_is_refused(tmp_path: Path) -> None:
    Image.new("RGB", (7, 5)).save(tmp_path / "a.bmp")
    assert _fast_size((tmp_path / "a.bmp").read_bytes()) is None
    info = probe_image(tmp_path / "a.bmp")
    assert (info.width, info.height) == (7, 5)
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageProblem, match="not a readable image"):
        probe_image(tmp_path / "junk.jpg")


def test_images_are_read_with_pils_own_open_after_ultralytics_patched_it(tmp_path: Path) -> None:
    """Ultralytics replaces PIL.Image.open with a wrapper that pip-installs a HEIF plugin when PIL cannot
    identify a file (a download at run time; offline an ImportError). dsgen's reads keep PIL's own."""
    import PIL.Image
    import ultralytics.utils.patches as patches

    from dsgen_core.formats.images import open_image

    assert PIL.Image.open is patches.image_open  # the patch is in place once Ultralytics is imported
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"no pixels here")
    with pytest.raises(PIL.UnidentifiedImageError):
        open_image(bad)
    good = tmp_path / "ok.png"
    PIL.Image.new("RGB", (3, 2)).save(good)
    with open_image(good) as im:
        assert im.size == (3, 2)
