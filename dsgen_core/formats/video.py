"""Import of a video file into the registry: the video, the frames sampled from it, and one image per frame.

Annotation tools, detectors and training all work on images, so a video enters the registry as
its source asset (``asset_type='video'``: fps, frame count, duration, codec, sha256 of the file)
plus, for each sampled frame, a ``frames`` row (index and presentation time) pointing at an
ordinary image asset holding the decoded frame. Everything past that (queries, tags, versions,
``tracks link``) needs nothing video-specific.

Identity follows the images' rules: the video is the file's resolved path in the project, a
frame is that path plus the frame index, never the bytes. Importing the same video again adds
nothing (its frames are not even re-encoded), and a different sampling of it adds only the frames
that are new. Decoded frames are written as JPEG (quality 95, no chroma subsampling) into a
folder of their own under the local sources folder (where ZIPs of images are unpacked), marked as
staging until the ingest is done: a failed or killed import leaves nothing ``dsgen gc`` would keep.

    with registry.session(bulk=True) as s:
        result = import_video(s, ensure_project(s, "p"), "clip.mp4", storage=storage,
                              sources_dir=local_sources_dir(storage, home), every=5, actor="cli")
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from dsgen_core.errors import DsgenError
from dsgen_core.formats.images import ImageInfo, ImageSource, staging_root, sweep_staging
from dsgen_core.formats.report import ImportRefused, ValidationReport
from dsgen_core.registry.ingest import FrameRecord, ImageRecord, IngestBatch, IngestResult, MediaInfo, ingest
from dsgen_core.registry.schema import Asset, Frame, Project
from dsgen_core.storage import staging
from dsgen_core.storage.base import Storage

JPEG_QUALITY = 95
# Demuxers that read still images: PyAV opens a JPEG or PNG as a one-frame "video", which is
# almost always a mistake (images go in with their annotations, ``dsgen import coco``).
_IMAGE_DEMUXERS = ("image2",)


@dataclass
class VideoImportResult:
    """What a video import did."""

    project: str
    file: str
    video_asset_id: int
    source_key: str
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    duration_ms: int | None
    codec: str
    frames_sampled: int  # frames the sampling chose
    frames_encoded: int  # of those, decoded frames written as images (the rest were in the registry)
    ingest: IngestResult
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        r = self.ingest
        return {
            "batch_id": r.batch_id, "project": self.project, "file": self.file, "video_asset_id": self.video_asset_id,
            "source_key": self.source_key, "width": self.width, "height": self.height, "fps": self.fps,
            "frame_count": self.frame_count, "duration_ms": self.duration_ms, "codec": self.codec,
            "frames_sampled": self.frames_sampled, "frames_new": r.frames_new, "images_new": r.images_new,
            "images_existing": r.images_existing, "change_seq": r.change_seq, "seconds": round(self.seconds, 3),
        }


class _Sampling:
    """Which decoded frames to keep; stateful for ``fps`` (the time of the next one to keep)."""

    def __init__(self, every: int | None, fps: float | None, max_frames: int | None) -> None:
        self.every, self.fps, self.max_frames = every, fps, max_frames
        self.next_ms = 0.0

    def keep(self, idx: int, t_ms: int | None) -> bool:
        if self.every is not None:
            return idx % self.every == 0
        if self.fps is None or t_ms is None:  # no clock to sample by: every frame
            return True
        if t_ms < self.next_ms - 0.5:  # half a millisecond of slack for rounded timestamps
            return False
        # The next slot is the first of the 1/F grid after this frame: a gap in the stream fills one slot, not several.
        step = 1000.0 / self.fps
        while self.next_ms - 0.5 <= t_ms:
            self.next_ms += step
        return True


def check_sampling(every: int | None, fps: float | None, max_frames: int | None) -> None:
    """Refuse option combinations that cannot mean anything, before a byte is decoded."""
    if every is not None and fps is not None:
        raise DsgenError("give --every N or --fps F, not both: both say which frames to keep")
    if every is not None and every < 1:
        raise DsgenError(f"--every must be at least 1 (1 keeps every frame), not {every}")
    if fps is not None and not fps > 0:  # also refuses NaN
        raise DsgenError(f"--fps must be a positive number of frames per second, not {fps}")
    if max_frames is not None and max_frames < 1:
        raise DsgenError(f"--max-frames must be at least 1, not {max_frames}")


def import_video(
    session: Session,
    project: Project,
    path: Path | str,
    *,
    storage: Storage,
    sources_dir: Path,
    every: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    actor: str | None = None,
    progress: bool = False,
) -> VideoImportResult:
    """Decode ``path`` and ingest the video, its sampled frames and their images into ``project``.

    Sampling: every frame by default; ``every=N`` keeps frames 0, N, 2N, ...; ``fps=F`` keeps the
    first frame at or after each 1/F seconds of presentation time (every frame when F is at or
    above the video's own rate); ``max_frames`` stops after that many kept frames. All or nothing:
    a file that fails to decode part way writes no row and leaves no frame file.
    ``storage`` is where the ingest writes; the frame images go under ``sources_dir``.
    """
    t0 = time.perf_counter()
    check_sampling(every, fps, max_frames)
    path = Path(path)
    if path.is_dir():
        raise DsgenError(f"{path}: is a folder, not a video file")
    if not path.is_file():
        raise DsgenError(f"{path}: video file not found")
    sha, size = _hash_file(path)
    key = path.resolve().as_posix()
    known = _known_frames(session, project, key, sha, path)

    root = staging_root(sources_dir)
    sweep_staging(root)
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    staging.mark(folder, video=key)
    source = ImageSource(folder, staged=True)
    try:
        decoded = _decode(path, folder, _Sampling(every, fps, max_frames), known, progress)
        video = ImageRecord("video", key, path.name, decoded.width, decoded.height,
                            file=ImageInfo(path.resolve(), sha, size, decoded.width, decoded.height,
                                           mimetypes.guess_type(path.name)[0] or "video/unknown"),
                            record=str(path), asset_type="video",
                            media=MediaInfo(decoded.fps, decoded.frame_count, decoded.duration_ms, decoded.codec))
        batch = IngestBatch(
            operation="import", audit_action="import.video", format="video", source_uri=key, content_sha256=sha,
            namespace="video", images=[video, *decoded.images], classes=[], objects=[], report=ValidationReport(),
            file=str(path), frames=decoded.frames,
            detail={"every": every, "fps": fps, "max_frames": max_frames, "frames_sampled": len(decoded.frames)},
        )
        try:
            result = ingest(session, project, batch, storage=storage, actor=actor, progress=progress)
        except ImportRefused as exc:
            # A video has no records to skip: the first problem is the whole story.
            first = exc.report.errors[0] if exc.report.errors else None
            raise DsgenError(f"{path}: {first.reason if first else 'refused'}; nothing was written") from None
    except BaseException:
        source.cleanup()
        raise
    if result.images_new:
        source.keep()
    else:
        source.cleanup()
    video_id = session.scalar(select(Asset.id).where(Asset.project_id == project.id, Asset.source_key == key))
    assert video_id is not None  # the ingest just wrote or found it
    return VideoImportResult(project.name, str(path), video_id, key, decoded.width, decoded.height, decoded.fps,
                             decoded.frame_count, decoded.duration_ms, decoded.codec, len(decoded.frames),
                             decoded.encoded, result, seconds=time.perf_counter() - t0)


def frame_file_name(video: Path, frame_idx: int) -> str:
    """The frame image's name: ``clip/frame_000042.jpg``, the layout of a CVAT video task's export,
    so its frame number reads the same way as any burst of images."""
    return f"{video.stem}/frame_{frame_idx:06d}.jpg"


def frame_source_key(video_key: str, frame_idx: int) -> str:
    """A frame image's identity: its video's identity and the frame index."""
    return f"{video_key}#frame={frame_idx}"


# --------------------------------------------------------------------------- internals


def _hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise DsgenError(f"{path}: cannot read ({exc.strerror})") from None
    return h.hexdigest(), size


def _known_frames(session: Session, project: Project, key: str, sha: str, path: Path) -> set[int]:
    """Frame indices of this video the registry already has an image for (they are not decoded into files again)."""
    old = session.execute(select(Asset.id, Asset.sha256, Asset.asset_type).where(
        Asset.project_id == project.id, Asset.source_key == key)).first()
    if old is None:
        return set()
    if old.asset_type != "video":
        raise DsgenError(f"{path}: {key!r} is already in project {project.name!r} as an {old.asset_type}, not a video")
    if old.sha256 is not None and old.sha256 != sha:
        raise DsgenError(f"{path}: already in project {project.name!r} with different content (sha256 "
                         f"{old.sha256[:12]}…, this file {sha[:12]}…); a sample's bytes do not change: import it "
                         "under another path or into another project")
    return set(session.scalars(select(Frame.frame_idx).where(Frame.video_asset_id == old.id,
                                                             Frame.image_asset_id.is_not(None))))


@dataclass
class _Decoded:
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    duration_ms: int | None
    codec: str
    images: list[ImageRecord]
    frames: list[FrameRecord]
    encoded: int


def _open(path: Path) -> Any:
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DsgenError(f"{path}: not a video file, or one that cannot be decoded ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _decode(path: Path, folder: Path, sampling: _Sampling, known: set[int], progress: bool) -> _Decoded:
    key = path.resolve().as_posix()
    with _open(path) as container:
        if container.format.name in _IMAGE_DEMUXERS or container.format.name.endswith("_pipe"):
            raise DsgenError(f"{path}: is an image, not a video (import images with their annotations: dsgen import coco)")
        if not container.streams.video:
            raise DsgenError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        native_fps = float(rate) if rate else None
        tb: Fraction | None = stream.time_base
        start = stream.start_time or 0
        declared = int(stream.frames) or None
        images: list[ImageRecord] = []
        frames: list[FrameRecord] = []
        encoded = 0
        idx = -1
        finished = True
        with tqdm(total=declared, desc=f"decoding {path.name}", unit="frame", disable=not progress, leave=False) as bar:
            for idx, frame, t_ms in _frames(path, container, stream, tb, start, native_fps):
                bar.update(1)
                if not sampling.keep(idx, t_ms):
                    continue
                name = frame_file_name(path, idx)
                info = None
                if idx not in known:
                    info = _write_frame(frame.to_image(), folder / name)
                    encoded += 1
                ref = ("frame", idx)
                images.append(ImageRecord(ref, frame_source_key(key, idx), name, frame.width, frame.height, file=info,
                                          record=f"{path} frame {idx}"))
                frames.append(FrameRecord("video", idx, t_ms, ref))
                if sampling.max_frames is not None and len(frames) >= sampling.max_frames:
                    finished = False
                    break
        if idx < 0:
            raise DsgenError(f"{path}: no frame could be decoded (an empty or truncated video)")
        frame_count = idx + 1 if finished else declared
        width, height = int(ctx.width or images[0].width or 0), int(ctx.height or images[0].height or 0)
        return _Decoded(width, height, native_fps, frame_count, _duration_ms(container, stream, tb), str(ctx.name),
                        images, frames, encoded)


def _frames(path: Path, container: Any, stream: Any, tb: Fraction | None, start: int, native_fps: float | None,
            ) -> Iterator[tuple[int, Any, int | None]]:
    """(index, frame, presentation time in ms since the stream's start) in decode output order."""
    idx = -1
    try:
        for frame in container.decode(stream):
            idx += 1
            if frame.pts is not None and tb is not None:
                t_ms: int | None = round(float((frame.pts - start) * tb) * 1000)
            elif native_fps:
                t_ms = round(idx * 1000 / native_fps)
            else:
                t_ms = None
            yield idx, frame, t_ms
    except (av.FFmpegError, ValueError) as exc:
        raise DsgenError(f"{path}: cannot be decoded past frame {idx} ({_reason(exc)})") from None


def _write_frame(image: Image.Image, dest: Path) -> ImageInfo:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    data = buf.getvalue()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return ImageInfo(dest, hashlib.sha256(data).hexdigest(), len(data), image.width, image.height, "image/jpeg")


def _duration_ms(container: Any, stream: Any, tb: Fraction | None) -> int | None:
    if stream.duration and tb is not None:
        return round(float(stream.duration * tb) * 1000)
    if container.duration:
        return round(container.duration / 1000)  # AV_TIME_BASE: microseconds
    return None
