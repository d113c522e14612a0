"""Finding, hashing and measuring the image files an annotation file refers to.

A folder is used in place; a ZIP is checked (no entry may escape the target folder, no
decompression bombs, only images and annotation files) and unpacked into a folder of its own
that carries a staging marker until its import is done. A failed import removes the folder; one
killed outright leaves it marked, and the next import (or ``dsgen gc``) sweeps it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from PIL import Image, UnidentifiedImageError

from dsgen_core.errors import DsgenError
from dsgen_core.storage import staging

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
ANNOTATION_SUFFIXES = {".json", ".xml", ".txt", ".yaml", ".yml"}
# A ZIP of images barely compresses (JPEG and PNG are compressed already); its annotation files
# do, ten to one. Far beyond that it is a decompression bomb, however its entries are sized.
ZIP_MAX_BYTES_ENV, ZIP_MAX_RATIO_ENV = "DSGEN_ZIP_MAX_BYTES", "DSGEN_ZIP_MAX_RATIO"
ZIP_MAX_BYTES = 64 * 1024**3
ZIP_MAX_RATIO = 50  # over all entries together
ZIP_ENTRY_MAX_RATIO = 200  # one entry of 64 KiB or more
MAX_IMAGE_PIXELS = 40_000 * 40_000
PROBE_CHUNK = 64


class Progress(Protocol):
    """What :meth:`ImageSource.probe_all` needs of a progress bar (a tqdm bar has it)."""

    def update(self, n: int = 1) -> object: ...


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    sha256: str
    bytes: int
    width: int
    height: int
    mime_type: str


class ImageProblem(Exception):
    """Why one image file could not be used; the importer turns it into a report line."""


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def open_image(fp: Any) -> Image.Image:
    """PIL's own ``Image.open``, whoever replaced it.

    Importing Ultralytics (training, the default encoder) replaces ``PIL.Image.open`` with a wrapper
    that, on a file PIL cannot identify, tries to pip-install a HEIF plugin: a download at run time
    and, offline, an ImportError instead of "not an image". dsgen reads images through this.
    """
    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is not None and Image.open is getattr(patches, "image_open", None):
        return patches._image_open(fp)
    return Image.open(fp)


def _fast_size(data: bytes) -> tuple[int, int, str] | None:
    """Width, height and format of a JPEG or PNG from its header bytes; None for anything else.

    PIL's ``Image.open`` costs ~150 us of Python per file and holds the GIL; this costs a few.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), "png"
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big"), "jpeg"
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def probe_image(path: Path) -> ImageInfo:
    """sha256, size and the real width/height from the file header (the pixels are not decoded)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageProblem("missing image file") from None
    except OSError as exc:
        raise ImageProblem(f"cannot read image file: {exc.strerror}") from None
    fast = _fast_size(data)
    if fast is not None and fast[0] > 0 and fast[1] > 0:
        width, height, fmt = fast
    else:
        try:
            with open_image(path) as im:
                width, height = im.size
                fmt = (im.format or "").lower()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise ImageProblem(f"not a readable image ({type(exc).__name__})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageProblem(f"image of {width}x{height} pixels exceeds the {MAX_IMAGE_PIXELS} pixel limit")
    return ImageInfo(path, hashlib.sha256(data).hexdigest(), len(data), width, height, f"image/{fmt or 'unknown'}")


class ImageSource:
    """Resolves COCO ``file_name``s against a folder (CVAT exports keep images under ``images/``)."""

    def __init__(self, root: Path, *, staged: bool = False) -> None:
        self.root = root.resolve()
        self.staged = staged  # True when root is an unpacked ZIP that must be cleaned up
        self._by_basename: dict[str, list[Path]] | None = None

    def resolve(self, file_name: str) -> Path | None:
        rel = PurePosixPath(file_name.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts:
            return None
        for base in (self.root, self.root / "images"):
            p = base / rel
            if p.is_file():
                return p
        if self._by_basename is None:
            self._by_basename = {}
            for dirpath, _dirs, files in os.walk(self.root):
                for f in files:
                    self._by_basename.setdefault(f, []).append(Path(dirpath) / f)
        found = self._by_basename.get(rel.name, [])
        return found[0] if len(found) == 1 else None

    def probe_all(self, file_names: list[str], progress: Progress | None = None) -> list[ImageInfo | ImageProblem]:
        def one(name: str) -> ImageInfo | ImageProblem:
            p = self.resolve(name)
            if p is None:
                return ImageProblem(f"missing image file (looked in {self.root})")
            try:
                return probe_image(p)
            except ImageProblem as exc:
                return exc

        def chunk_of(names: list[str]) -> list[ImageInfo | ImageProblem]:
            return [one(n) for n in names]

        # Chunks, not one task per file: a thread pool's per-task bookkeeping (its map ignores
        # chunksize) cost more than hashing a small image. Reads and hashing release the GIL.
        chunks = [file_names[i:i + PROBE_CHUNK] for i in range(0, len(file_names), PROBE_CHUNK)]
        out: list[ImageInfo | ImageProblem] = []
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
            for results in pool.map(chunk_of, chunks):
                out.extend(results)
                if progress is not None:
                    progress.update(len(results))
        return out

    def cleanup(self) -> None:
        if self.staged:
            shutil.rmtree(self.root, ignore_errors=True)

    def keep(self) -> None:
        """Its import is done: the unpacked files are the registry's now, no longer staged."""
        if self.staged:
            staging.unmark(self.root)


def staging_root(sources_dir: Path) -> Path:
    """The folder ZIPs of images are unpacked under, one folder each."""
    return sources_dir / "sources" / "images"


def sweep_staging(folder: Path, *, dry_run: bool = False) -> list[Path]:
    """Remove the unpacked ZIPs under ``folder`` whose import died without cleaning up (kill -9, a power cut)."""
    return staging.sweep((p for p in folder.glob("*") if p.is_dir()), dry_run=dry_run) if folder.is_dir() else []


def _zip_limit(env: str, default: float) -> float:
    raw = os.environ.get(env)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DsgenError(f"{env} must be a number, not {raw!r}") from None
    if value <= 0:
        raise DsgenError(f"{env} must be positive, not {raw!r}")
    return value


def unpack_zip(zip_path: Path, target: Path) -> ImageSource:
    """Checks every entry before writing anything, then unpacks into ``target``."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DsgenError(f"{zip_path}: not a readable ZIP file ({exc})") from None
    with zf:
        problems: list[str] = []
        total = packed = 0
        max_bytes, max_ratio = _zip_limit(ZIP_MAX_BYTES_ENV, ZIP_MAX_BYTES), _zip_limit(ZIP_MAX_RATIO_ENV, ZIP_MAX_RATIO)
        for info in zf.infolist():
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                problems.append(f"{name}: entry would be written outside the target folder")
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                problems.append(f"{name}: symbolic links are not accepted")
                continue
            if info.is_dir():
                continue
            total += info.file_size
            packed += info.compress_size
            if info.file_size >= 1 << 16 and info.file_size > ZIP_ENTRY_MAX_RATIO * max(info.compress_size, 1):
                problems.append(f"{name}: compression ratio {info.file_size // max(info.compress_size, 1)}:1 looks "
                                "like a decompression bomb")
            suffix = PurePosixPath(name).suffix.lower()
            if suffix not in IMAGE_SUFFIXES and suffix not in ANNOTATION_SUFFIXES:
                problems.append(f"{name}: not an image file ({suffix or 'no extension'})")
        totals: list[str] = []  # listed first: they say the most
        if total > max_bytes:
            totals.append(f"unpacked size {total} bytes exceeds the {max_bytes:g} byte limit ({ZIP_MAX_BYTES_ENV})")
        if total > 1 << 20 and total > max_ratio * max(packed, 1):
            totals.append(f"its entries unpack to {total} bytes from {packed}, {total // max(packed, 1)}:1 in all: a "
                            f"decompression bomb, not images (limit {max_ratio:g}:1, {ZIP_MAX_RATIO_ENV})")
        problems = totals + problems
        if problems:
            listing = "\n  ".join(problems[:50])
            raise DsgenError(f"{zip_path}: ZIP refused, nothing was written:\n  {listing}")
        target.mkdir(parents=True, exist_ok=True)
        try:
            staging.mark(target, zip=str(zip_path))
            for info in zf.infolist():
                if not info.is_dir():
                    _unpack_entry(zf, info, target, zip_path)
        except BaseException:  # a full disk, a lying entry, Ctrl-C: nothing half-unpacked stays behind
            shutil.rmtree(target, ignore_errors=True)
            raise
    return ImageSource(target, staged=True)


def _unpack_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, zip_path: Path) -> None:
    dest = target / PurePosixPath(info.filename.replace("\\", "/"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, open(dest, "wb") as out:
        # Read in bounded chunks and stop at the declared size, so a lying header cannot fill the disk.
        remaining = info.file_size
        while chunk := src.read(min(1 << 20, remaining + 1)):
            remaining -= len(chunk)
            if remaining < 0:
                raise DsgenError(f"{zip_path}: {info.filename}: entry is larger than its header says")
            out.write(chunk)
