"""Video import: the video asset, its frames and one image per frame, through the ingest; identity and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import orjson
import pytest
from PIL import Image
from sqlalchemy import func, select

from dsgen_core.errors import DsgenError
from dsgen_core.formats.coco.importer import local_sources_dir
from dsgen_core.formats.images import staging_root
from dsgen_core.formats.video import import_video
from dsgen_core.registry.db import Registry
from dsgen_core.registry.gc import collect_garbage
from dsgen_core.query import run_query
from dsgen_core.registry.projects import ensure_project, get_project
from dsgen_core.registry.schema import (
    Asset,
    AuditLog,
    ChangeEvent,
    EmbeddingOutbox,
    EmbeddingVersion,
    Frame,
    ImportBatch,
)
from dsgen_core.storage import open_storage, staging

from .conftest import CODEC, make_video

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _import(registry: Registry, path: Path, **kw: Any) -> Any:
    storage = open_storage(registry.settings.storage_root)
    with registry.session(bulk=True) as s:
        return import_video(s, ensure_project(s, "p"), path, storage=storage,
                            sources_dir=local_sources_dir(storage, registry.settings.home), actor="test", **kw)


def _count(registry: Registry, table: Any, *where: Any) -> int:
    with registry.session() as s:
        return s.scalar(select(func.count()).select_from(table).where(*where)) or 0


def _ids(registry: Registry) -> list[int]:
    with registry.session() as s:
        return list(s.scalars(select(Asset.id)))


def test_video_frames_and_images_are_ingested_once(registry: Registry, video: Path) -> None:
    r = _import(registry, video, every=5)
    assert (r.frames_sampled, r.ingest.frames_new, r.ingest.images_new) == (6, 6, 7)
    with registry.session() as s:
        v = s.scalar(select(Asset).where(Asset.asset_type == "video"))
        assert v is not None and v.id == r.video_asset_id
        assert (v.source_key, v.file_name, v.width, v.height) == (video.resolve().as_posix(), "street.mp4", 64, 48)
        assert (v.fps, v.frame_count, v.duration_ms, v.codec) == (10.0, 30, 3000, CODEC)
        assert v.sha256 is not None and len(v.sha256) == 64 and v.mime_type == "video/mp4"
        frames = s.execute(select(Frame.frame_idx, Frame.timestamp_ms, Asset.file_name, Asset.source_key,
                                  Asset.storage_uri, Asset.width, Asset.asset_type)
                           .join(Asset, Asset.id == Frame.image_asset_id).order_by(Frame.frame_idx)).all()
        assert [(f.frame_idx, f.timestamp_ms) for f in frames] == [(i, i * 100) for i in (0, 5, 10, 15, 20, 25)]
        assert frames[1].file_name == "street/frame_000005.jpg"
        assert frames[1].source_key == f"{v.source_key}#frame=5"
        assert {f.asset_type for f in frames} == {"image"} and {f.width for f in frames} == {64}
        with Image.open(frames[2].storage_uri) as im:
            # frame 10: the red square's left edge is at x=10
            assert im.size == (64, 48) and im.convert("RGB").getpixel((14, 12))[0] > 180
        batch = s.scalar(select(ImportBatch))
        assert batch is not None and batch.format == "video" and batch.counts["frames_new"] == 6
        audit = s.scalar(select(AuditLog).where(AuditLog.action == "import.video"))
        assert audit is not None and audit.actor == "test" and audit.detail["every"] == 5
        event = s.scalar(select(ChangeEvent).where(ChangeEvent.entity == "assets"))
        assert event is not None and event.detail["frames"] == 6
    folder = Path(frames[0].storage_uri).parents[1]
    assert folder.parent == staging_root(local_sources_dir(open_storage(registry.settings.storage_root),
                                                           registry.settings.home))
    assert not staging.is_marked(folder)
    # The frames are the samples; the video's own file is not an image of any query (or version).
    with registry.session() as s:
        project = get_project(s, "p")
        assert sorted(run_query(s, project, "")) == sorted(a for a in _ids(registry) if a != r.video_asset_id)
        assert run_query(s, project, "file:street.mp4") == []

    # The same video again adds nothing and encodes nothing; every 2nd frame adds only the new ones.
    again = _import(registry, video, every=5)
    assert (again.ingest.frames_new, again.ingest.images_new, again.frames_encoded, again.ingest.change_seq) == (0, 0, 0, None)
    more = _import(registry, video, every=2)
    assert (more.frames_sampled, more.ingest.frames_new, more.frames_encoded) == (15, 12, 12)
    assert _count(registry, Frame) == 18 and _count(registry, Asset) == 19
    # No leftover folders of the runs that added nothing.
    root = staging_root(local_sources_dir(open_storage(registry.settings.storage_root), registry.settings.home))
    assert len([p for p in root.iterdir() if p.is_dir()]) == 2


@SQLITE_ONLY
def test_fps_and_max_frames_sampling(registry: Registry, tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.mp4", 30, rate=10)
    r = _import(registry, path, fps=4)
    with registry.session() as s:
        kept = list(s.scalars(select(Frame.frame_idx).order_by(Frame.frame_idx)))
    # 4 per second of a 10 fps video: the first frame at or after every 250 ms.
    assert kept == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28] and r.frames_sampled == 12
    capped = _import(registry, make_video(tmp_path / "w.mp4", 30), max_frames=4)
    assert capped.frames_sampled == 4 and capped.frame_count == 30  # the container says how many it has
    everything = _import(registry, make_video(tmp_path / "x.mp4", 12), fps=50)
    assert everything.frames_sampled == 12


@SQLITE_ONLY
def test_frames_get_image_embeddings_the_video_does_not_and_gc_keeps_them(registry: Registry, video: Path) -> None:
    with registry.session() as s:
        p = ensure_project(s, "p")
        s.add(EmbeddingVersion(project_id=p.id, name="images_v1", model_name="m", dimension=8, level="image"))
    r = _import(registry, video, every=10)
    assert _count(registry, EmbeddingOutbox) == 3 and _count(registry, EmbeddingOutbox,
                                                              EmbeddingOutbox.asset_id == r.video_asset_id) == 0
    storage = open_storage(registry.settings.storage_root)
    with registry.session() as s:
        report = collect_garbage(s, storage=storage, sources_dir=local_sources_dir(storage, registry.settings.home),
                                 min_age=0)
    assert (report.source_files, report.staging_folders) == (0, 0)


def _empty_video(path: Path) -> Path:
    """A container with a header and no frame: an AVI keeps its video stream, an MP4 keeps no stream at all."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODEC, rate=10)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    return path


@SQLITE_ONLY
@pytest.mark.parametrize(("setup", "args", "message"), [
    (None, ["missing.mp4"], "missing.mp4: video file not found"),
    ("text", ["notes.mp4"], "notes.mp4: not a video file, or one that cannot be decoded"),
    ("png", ["still.png"], "still.png: is an image, not a video"),
    ("empty", ["empty.avi"], "empty.avi: no frame could be decoded"),
    ("empty", ["empty.mp4"], "empty.mp4: has no video stream"),
    ("video", ["clip.mp4", "--every", "2", "--fps", "5"], "give --every N or --fps F, not both"),
    ("video", ["clip.mp4", "--every", "0"], "--every must be at least 1"),
    ("video", ["clip.mp4", "--fps", "-1"], "--fps must be a positive number"),
    ("video", ["clip.mp4", "--max-frames", "0"], "--max-frames must be at least 1"),
    ("folder", ["clips"], "clips: is a folder, not a video file"),
])
def test_bad_input_is_one_line_and_writes_nothing(cli: Any, tmp_path: Path, registry: Registry, setup: str | None,
                                                  args: list[str], message: str) -> None:
    target = tmp_path / args[0]
    if setup == "text":
        target.write_text("not a video at all\n")
    elif setup == "png":
        Image.new("RGB", (8, 8), "red").save(target)
    elif setup == "empty":
        _empty_video(target)
    elif setup == "video":
        make_video(target, 4)
    elif setup == "folder":
        target.mkdir()
    out = cli.invoke("import", "video", target, *args[1:], catch_exceptions=True)
    assert out.exit_code == 2, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert _count(registry, Asset) == 0 and _count(registry, ImportBatch) == 0
    root = staging_root(local_sources_dir(open_storage(registry.settings.storage_root), registry.settings.home))
    assert not root.exists() or not any(root.iterdir())


@SQLITE_ONLY
def test_changed_video_under_the_same_path_is_refused(registry: Registry, tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.mp4", 6)
    _import(registry, path)
    make_video(path, 8)
    with pytest.raises(DsgenError, match="with different content"):
        _import(registry, path)
    assert _count(registry, Frame) == 6


def test_cli_import_video_json(cli: Any, video: Path) -> None:
    out = cli.invoke("import", "video", video, "--project", "cam", "--every", "10", "--json")
    assert out.exit_code == 0, out.output
    summary = orjson.loads(out.stdout)
    assert (summary["project"], summary["frames_sampled"], summary["frames_new"], summary["codec"]) == ("cam", 3, 3, CODEC)
    text = cli.invoke("import", "video", video, "--project", "cam", "--every", "10")
    assert "0 new frames" in text.stdout
