"""``dsgen embed create|list|sync|reconcile|status``, ``dsgen similar`` and ``dsgen duplicates``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import numpy as np

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.embeddings import search, sync, versions
from dsgen_core.embeddings import store as vstore
from dsgen_core.errors import DsgenError
from dsgen_core.formats.images import open_image
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import EmbeddingVersion
from dsgen_core.storage import open_storage

version_option = click.option("--version", "version", default=None,
                              help="Embedding version name (default: every active one / the newest active one).")


@click.group("embed")
def embed() -> None:
    """Embedding versions and the sync of the registry into Chroma.

    The registry is the truth: imports queue outbox rows and never wait for Chroma. `sync` drains
    the queue, `reconcile` repairs any drift, `status` shows pending/synced/failed and lag.
    Chroma is embedded under $DSGEN_HOME/registry/chroma unless DSGEN_CHROMA_URL names a server.
    """


@embed.command("create")
@click.argument("name", required=False)
@project_option
@click.option("--model", "model_ref", help="Default encoder: the backbone of this dsgen model version (e.g. m1).")
@click.option("--encoder", "kind", type=click.Choice(["model", "timm", "open_clip", "onnx"]), default=None,
              help="Encoder kind; implied by --model. timm: DINOv2 and others, open_clip: CLIP, onnx: any ONNX encoder.")
@click.option("--arch", help="Architecture for timm/open_clip, e.g. dinov2-base, clip-vit-b32.")
@click.option("--weights", type=click.Path(path_type=Path), help="Local weights file (.pth/.pt/.safetensors/.onnx).")
@click.option("--image-size", type=int, default=None, help="Input size of the encoder (default: its own).")
@click.option("--level", type=click.Choice(["object", "image", "both"]), default="both", show_default=True)
@click.option("--no-backfill", is_flag=True, help="Queue nothing now: only later changes are embedded.")
@json_option
def create(name: str | None, project: str, model_ref: str | None, kind: str | None, arch: str | None,
           weights: Path | None, image_size: int | None, level: str, no_backfill: bool, as_json: bool) -> None:
    """Record an encoder as an embedding version (one per level) and queue everything for it."""
    from dsgen_core.embeddings.encoders import build_encoder
    from dsgen_core.ml import model_versions as mvs

    kind = kind or ("model" if model_ref else None)
    if kind is None:
        raise DsgenError("choose an encoder: --model M (a trained model version) or --encoder timm|open_clip|onnx "
                         "with --weights FILE")
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session() as s:
        proj = get_project(s, project)
        mv = None
        if kind == "model":
            if not model_ref:
                raise DsgenError("--encoder model needs --model M (a trained model version of the project)")
            mv = mvs.get_model_version(s, proj, model_ref)
            enc = sync.model_encoder(reg, s, mv, storage, image_size=image_size)
        else:
            if weights is None:
                raise DsgenError(f"--encoder {kind} needs --weights FILE (nothing is downloaded)")
            enc = build_encoder(kind, weights=weights.resolve(), arch=arch, image_size=image_size)
        spec = enc.spec
        vname = name or versions.default_version_name(proj, spec)
        levels = ("object", "image") if level == "both" else (level,)
        made = [versions.create_embedding_version(s, proj, vname, spec, level=lv, model_version=mv, actor=cli_actor(),
                                                  backfill=not no_backfill) for lv in levels]
    out = [vars(m) for m in made]
    emit(out, as_json, "\n".join(
        f"created embedding version {m.name!r} ({m.level} level): {m.model_name}, {m.dimension}-d, collection "
        f"{m.collection}; {m.queued} queued (run `dsgen embed sync`)" for m in made))


@embed.command("list")
@project_option
@json_option
def list_(project: str, as_json: bool) -> None:
    """The project's embedding versions."""
    reg = open_registry()
    with reg.session() as s:
        rows = [{**vars(versions.info(ev)), "active": ev.is_active, "fingerprint": ev.fingerprint,
                 "model_version": ev.model_version, "crop_policy": ev.crop_policy}
                for ev in versions.list_versions(s, get_project(s, project))]
    emit(rows, as_json, "\n".join(f"{r['name']:<24} {r['level']:<6} {r['encoder']:<9} {r['model_name']:<28} "
                                  f"{r['dimension']:>5}-d {'active' if r['active'] else 'inactive'}" for r in rows)
         or "no embedding versions; create one with `dsgen embed create --model m1`")


def _targets(reg: Registry, project: str, version: str | None) -> list[tuple[int, str, str]]:
    with reg.session() as s:
        proj = get_project(s, project)
        evs = ([ev for ev in versions.list_versions(s, proj) if ev.name == version] if version
               else versions.list_versions(s, proj, active_only=True))
        if version and not evs:
            versions.get_version(s, proj, version)  # raises the one-line NotFound
        return [(ev.id, ev.name, ev.level) for ev in evs]


@embed.command("sync")
@project_option
@version_option
@click.option("--batch-size", default=sync.BATCH, show_default=True, help="Outbox rows per batch.")
@click.option("--max-tries", default=sync.MAX_TRIES, show_default=True, help="Tries before a row is marked failed.")
@click.option("--limit", type=int, default=None, help="Stop after this many outbox rows (per version).")
@click.option("--retry-failed", is_flag=True, help="Put failed rows back in the queue first.")
@json_option
def sync_cmd(project: str, version: str | None, batch_size: int, max_tries: int, limit: int | None,
             retry_failed: bool, as_json: bool) -> None:
    """Drain the outbox into Chroma: embed, upsert, mark synced (only what changed since the last sync)."""
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    targets = _targets(reg, project, version)
    if not targets:
        raise DsgenError(f"project {project!r} has no active embedding version; create one with `dsgen embed create`")
    store = vstore.open_store(reg.settings)
    progress = sys.stderr.isatty() and not as_json
    results = []
    for vid, _name, _level in targets:
        if retry_failed:
            with reg.session() as s:
                proj = get_project(s, project)
                ev = s.get(EmbeddingVersion, vid)
                assert ev is not None
                versions.retry_failed(s, proj, ev, actor=cli_actor())
        results.append(sync.sync_version(reg, project, vid, store=store,
                                         embedder=sync.encoder_factory(reg, vid, storage, progress=progress),
                                         batch_size=batch_size, max_tries=max_tries, progress=progress, limit=limit,
                                         actor=cli_actor()))
    emit([r.to_dict() for r in results], as_json, "\n".join(
        f"{r.version} ({r.level}): {r.upserted} embedded, {r.deleted} removed, {r.skipped} without a box, "
        f"{r.retried} to retry, {r.failed} failed, {r.pending} pending, {r.seconds} s"
        + "".join(f"\n  {e}" for e in r.errors) for r in results))


@embed.command("reconcile")
@project_option
@version_option
@click.option("--dry-run", is_flag=True, help="Report the drift; change nothing.")
@click.option("--no-sync", is_flag=True, help="Queue the repairs without syncing them now.")
@json_option
def reconcile_cmd(project: str, version: str | None, dry_run: bool, no_sync: bool, as_json: bool) -> None:
    """Compare the registry with Chroma (missing, extra, stale, drifted metadata) and repair it."""
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    store = vstore.open_store(reg.settings)
    out: list[dict[str, Any]] = []
    for vid, _name, _level in _targets(reg, project, version):
        res = sync.reconcile_version(reg, project, vid, store=store, dry_run=dry_run, actor=cli_actor())
        row = res.to_dict()
        if res.queued and not no_sync and not dry_run:
            row["sync"] = sync.sync_version(reg, project, vid, store=store,
                                            embedder=sync.encoder_factory(reg, vid, storage),
                                            actor=cli_actor()).to_dict()
        out.append(row)
    emit(out, as_json, "\n".join(
        f"{r['version']} ({r['level']}): registry {r['registry']}, chroma {r['chroma']}; missing {r['missing']}, "
        f"extra {r['extra']}, stale {r['stale']}, metadata drift {r['metadata_drift']}"
        + (" (dry run)" if r["dry_run"] else f"; queued {r['queued']}, deleted {r['deleted']}, "
                                             f"metadata updated {r['metadata_updated']}")
        + (f"; synced {r['sync']['upserted']}" if "sync" in r else "") for r in out) or "no embedding versions")


@embed.command("status")
@project_option
@version_option
@json_option
def status_cmd(project: str, version: str | None, as_json: bool) -> None:
    """Pending, synced and failed outbox rows, sync lag, registry and Chroma counts per version."""
    from dsgen_core.errors import ServiceUnavailable

    reg = open_registry()
    try:
        store: vstore.VectorStore | None = vstore.open_store(reg.settings)
        store_error = None
    except ServiceUnavailable as exc:  # status still answers from the registry
        store, store_error = None, str(exc)
    rows = []
    with reg.session() as s:
        proj = get_project(s, project)
        evs = [versions.get_version(s, proj, version)] if version else versions.list_versions(s, proj)
        for ev in evs:
            st = sync.version_status(s, proj, ev, store).to_dict()
            if store_error:
                st["chroma_error"] = store_error
            st["problems"] = sync.outbox_problem_rows(s, ev)
            rows.append(st)
    human = "\n".join(
        f"{r['name']} ({r['level']}): {r['pending']} pending, {r['synced']} synced, {r['failed']} failed, "
        f"lag {r['lag_s'] if r['lag_s'] is not None else 0} s; registry {r['registry_count']}, chroma "
        f"{r['chroma_count'] if r['chroma_count'] is not None else 'unreachable'}"
        + (f"\n  {r['chroma_error']}" if r["chroma_error"] else "")
        + "".join(f"\n  outbox {p['id']} ({p['status']}, {p['tries']} tries): {p['error']}" for p in r["problems"][:5])
        for r in rows) or "no embedding versions"
    emit({"project": project, "versions": rows}, as_json, human)


@click.command("similar")
@click.argument("object_id", type=int, required=False)
@click.option("--image", type=click.Path(path_type=Path), help="Search with this image (or crop) instead of an object.")
@click.option("--top-k", default=10, show_default=True)
@click.option("--query", "query", default=None, help="Only objects matching this query (e.g. 'category:car -tag:blurry').")
@project_option
@version_option
@json_option
def similar(object_id: int | None, image: Path | None, top_k: int, query: str | None, project: str,
            version: str | None, as_json: bool) -> None:
    """Objects most similar to an object (by id) or to an image, with their distance and registry facts."""
    if (object_id is None) == (image is None):
        raise DsgenError("give exactly one of OBJECT_ID or --image PATH")
    reg = open_registry()
    store = vstore.open_store(reg.settings)
    vector = None
    with reg.session() as s:
        proj = get_project(s, project)
        if image is not None:
            vector = _image_vector(reg, s, proj, image, version)
        res = search.similar_objects(s, proj, store=store, object_id=object_id, vector=vector, version=version,
                                     top_k=top_k, query=query)
    lines = [f"{len(res.hits)} similar objects in {res.version} ({res.seconds * 1000:.1f} ms"
             + (f"; chroma where {res.where}" if res.where else "") + (f"; sql {res.sql_terms}" if res.sql_terms else "")
             + ")"]
    lines += [f"  {h.object_id:>8}  d={h.distance:.4f}  {h.category or '-':<12} {h.source:<6} "
              f"{'' if h.confidence is None else f'conf={h.confidence:.2f} '}{h.file_name}" for h in res.hits]
    emit(res.to_dict(), as_json, "\n".join(lines))


def _image_vector(reg: Registry, s: Any, proj: Any, image: Path, version: str | None) -> np.ndarray:
    from PIL import UnidentifiedImageError

    from dsgen_core.embeddings.versions import get_version

    if not image.is_file():
        raise DsgenError(f"{image}: no such image file")
    try:
        with open_image(image) as im:
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise DsgenError(f"{image}: not a readable image ({exc})") from None
    ev = get_version(s, proj, version, level="object")
    emb = sync.encoder_factory(reg, ev.id, open_storage(reg.settings.storage_root))()
    assert isinstance(emb, sync.ImageEmbedder)
    box = np.array([[0, 0, rgb.width, rgb.height]], dtype=np.float32)
    return emb.encoder.embed_boxes([rgb], [box])[0][0]


@click.command("duplicates")
@click.option("--threshold", type=float, default=None,
              help="Cosine distance under which images are near copies (default: 0.1 x the median distance "
                   "between two images of the collection).")
@project_option
@version_option
@click.option("--limit", default=10, show_default=True, help="Groups listed per kind (all are in --json).")
@json_option
def duplicates(threshold: float | None, project: str, version: str | None, limit: int, as_json: bool) -> None:
    """Exact duplicates (equal bytes) and near ones (image embeddings within --threshold), as groups.

    Near groups are stored: `has:near_duplicate` finds them and a version's split keeps each group
    in one split. Near ones need an image-level embedding version (`dsgen embed create --level image`).
    """
    reg = open_registry()
    store = vstore.open_store(reg.settings)
    with reg.session() as s:
        rep = search.find_duplicates(s, get_project(s, project), store=store, version=version, threshold=threshold,
                                     actor=cli_actor())
    d = rep.to_dict()
    lines = [f"exact duplicates: {d['exact_groups']} groups ({d['images_in_exact_groups']} images); near duplicates "
             + (f"within {rep.threshold}{'' if threshold is not None else ' (0.1 x the median distance)'} in {rep.version}: {d['near_groups']} groups ({d['images_in_near_groups']} images "
                f"of {rep.images})" if rep.version else "not computed (no image-level embedding version)")]
    for g in rep.exact[:limit] + rep.near[:limit]:
        lines.append(f"  {g.kind:<5} d<={g.max_distance:.4f}  " + ", ".join(g.files[:4])
                     + (f" (+{len(g.files) - 4})" if len(g.files) > 4 else ""))
    emit(d, as_json, "\n".join(lines))
