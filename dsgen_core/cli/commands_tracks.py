"""``dsgen tracks list|create|link|accept|reject``: objects followed across frames, made by hand or proposed.

Embedding vectors are the synced ones of an object-level embedding version (read from Chroma);
the vector store is opened only when a link run uses one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import click
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.config import Settings
from dsgen_core.embeddings.search import object_vectors
from dsgen_core.embeddings.store import open_store
from dsgen_core.errors import DsgenError
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import EmbeddingVersion, Project
from dsgen_core.storage import open_storage
from dsgen_core.storage.base import Storage
from dsgen_core.tracking.link import DEFAULT_PARAMS, MATCHINGS, Matching, VectorProvider, propose_tracks
from dsgen_core.tracking.tracks import MANUAL_SCOPE, Decision, TrackInfo, create_track, list_tracks, review_tracks
from dsgen_core.tracking.vectors import histogram_vectors, joined

NO_VECTORS, HISTOGRAM = "none", "histogram"


@click.group("tracks")
def tracks() -> None:
    """Objects followed across frames: list, create by hand, propose by linking, accept or reject proposals."""


def _parse_ids(text: str, what: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DsgenError(f"{what} must be comma-separated integers like 1,2,3, not {text!r}") from None
    if not ids:
        raise DsgenError(f"{what}: no id given")
    return ids


def _line(t: TrackInfo) -> str:
    score = f"{t.score:.3f}" if t.score is not None else "-"
    frames = f"{t.start_frame}-{t.end_frame}" if t.start_frame is not None else "-"
    return (f"{t.id}\t{t.scope}/{t.external_id}\t{t.origin}\t{t.status}\t{score}\t{t.label_class or '-'}\t"
            f"frames {frames}\t{t.object_count} objects")


@tracks.command("list")
@project_option
@click.option("--status", type=click.Choice(["proposed", "accepted", "rejected"]), help="Only tracks in this state.")
@click.option("--origin", type=click.Choice(["human", "model"]), help="Only human tracks, or only the linker's.")
@click.option("--scope", help="Only tracks of this scope (an import's file, manual, link:<run>).")
@click.option("--min-score", type=float, help="Only tracks scored at least this.")
@click.option("--limit", type=int, help="At most N tracks.")
@click.option("--members", is_flag=True, help="With their objects' ids, in track order.")
@json_option
def list_cmd(project: str, status: str | None, origin: str | None, scope: str | None, min_score: float | None,
             limit: int | None, members: bool, as_json: bool) -> None:
    """The project's tracks: ID, SCOPE/TRACK, origin, status, score, class, frames, objects."""
    with open_registry().session() as s:
        found = list_tracks(s, get_project(s, project), origin=origin, status=status, scope=scope,
                            min_score=min_score, limit=limit, with_members=members)
    lines = [_line(t) + (f"\t{','.join(map(str, t.members))}" if members else "") for t in found]
    emit([t.to_dict() for t in found], as_json, "\n".join(lines) if lines else "no tracks")


@tracks.command("create")
@click.argument("object_ids")
@project_option
@click.option("--scope", default=MANUAL_SCOPE, show_default=True, help="Whose numbering the track id is.")
@click.option("--external-id", help="The track's id in its scope (default: the next number).")
@click.option("--move", is_flag=True, help="Take objects out of the accepted track they are in.")
@json_option
def create_cmd(object_ids: str, project: str, scope: str, external_id: str | None, move: bool, as_json: bool) -> None:
    """Make one human track of OBJECT_IDS (comma-separated annotation ids), ordered by frame."""
    ids = _parse_ids(object_ids, "OBJECT_IDS")
    with open_registry().session() as s:
        info = create_track(s, get_project(s, project), ids, scope=scope, external_id=external_id, move=move,
                            actor=cli_actor())
    emit(info.to_dict(), as_json, f"created track {info.id} ({info.scope}/{info.external_id}): "
                                  f"{info.object_count} objects, frames {info.start_frame}-{info.end_frame}")


@tracks.command("link")
@click.option("--query", "query_text", required=True, help="The objects to link (object level), e.g. 'file:seq_03'.")
@project_option
@click.option("--embedding", help="Vectors to compare objects with: an object-level embedding version's NAME, "
                                  "'histogram' (colour histograms of the boxes) or 'none' (overlap and class only). "
                                  "Default: the project's active object-level embedding version, else none.")
@click.option("--colour/--no-colour", default=True, show_default=True,
              help="With an embedding version: also compare the boxes' colours (instances of one class often "
                   "differ by colour, which a detector's features learn to ignore).")
@click.option("--iou-weight", type=float, default=DEFAULT_PARAMS.iou_weight, show_default=True,
              help="Weight of box overlap against vector similarity in a link's score.")
@click.option("--min-score", type=float, default=DEFAULT_PARAMS.min_score, show_default=True,
              help="Links scoring less are never made.")
@click.option("--max-shift", type=float, default=DEFAULT_PARAMS.max_shift, show_default=True,
              help="How many object sizes an object may move between linked frames; 0: no limit.")
@click.option("--matching", type=click.Choice(MATCHINGS), default=DEFAULT_PARAMS.matching, show_default=True)
@click.option("--run-id", help="Name of this run; its proposals get the scope link:RUN_ID (default: a fresh id).")
@json_option
def link_cmd(query_text: str, project: str, embedding: str | None, colour: bool, iou_weight: float, min_score: float,
             max_shift: float, matching: str, run_id: str | None, as_json: bool) -> None:
    """Propose tracks for the objects of a query, from consecutive frames of videos and bursts of images.

    Proposals are model-made tracks awaiting review (tracks accept|reject); running link again
    replaces the proposals still awaiting review on the same objects, and never proposes a track
    that was rejected or that exists already.
    """
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session() as s:
        proj = get_project(s, project)
        vectors, name = _vectors(s, proj, storage, reg.settings, embedding, colour)
        result = propose_tracks(s, proj, query_text, vectors=vectors, vectors_name=name, iou_weight=iou_weight,
                                min_score=min_score, max_shift=max_shift or None, matching=cast(Matching, matching),
                                run_id=run_id, actor=cli_actor())
    mean = f", mean score {result.mean_score:.3f}" if result.mean_score is not None else ""
    with_vectors = (f" ({result.objects_with_vectors} of {result.objects_linkable} objects have one)"
                    if result.vectors != NO_VECTORS else "")
    human = (f"proposed {result.tracks} track(s) ({result.scope}) holding {result.objects_in_tracks} of "
             f"{result.objects} objects ({result.objects_linkable} in frames of {result.sequences} sequence(s)), "
             f"vectors: {result.vectors}{with_vectors}{mean}")
    if result.replaced:
        human += f"; replaced {result.replaced} earlier proposal(s)"
    if result.skipped_rejected:
        human += f"; {result.skipped_rejected} rejected before, not proposed again"
    if result.skipped_existing:
        human += f"; {result.skipped_existing} exist already as accepted tracks"
    emit(result.to_dict(), as_json, human)


def _vectors(session: Session, project: Project, storage: Storage, settings: Settings, embedding: str | None,
             colour: bool) -> tuple[VectorProvider | None, str]:
    """The vector provider ``--embedding`` names (with the boxes' colours when ``colour``), and the run's name for it."""
    if embedding is not None and embedding.lower() == NO_VECTORS:
        return None, NO_VECTORS
    if embedding is not None and embedding.lower() == HISTOGRAM:
        return (lambda ids: histogram_vectors(session, project, storage, ids)), HISTOGRAM
    versions = select(EmbeddingVersion.name).where(
        EmbeddingVersion.level == "object",
        (EmbeddingVersion.project_id == project.id) | EmbeddingVersion.project_id.is_(None))
    if embedding is None:
        name = session.scalar(versions.where(EmbeddingVersion.is_active.is_(True)).order_by(
            EmbeddingVersion.id.desc()).limit(1))
        if name is None:
            return None, NO_VECTORS
    else:
        name = embedding
        if session.scalar(versions.where(EmbeddingVersion.name == name)) is None:
            raise DsgenError(f"no object-level embedding version {name!r} for project {project.name!r} "
                             f"(or pass --embedding {HISTOGRAM} or --embedding {NO_VECTORS})")
    store = open_store(settings)

    def synced(ids: Sequence[int]) -> dict[int, np.ndarray]:
        return object_vectors(session, project, ids, store=store, version=name)

    if not colour:
        return synced, name
    return joined(synced, lambda ids: histogram_vectors(session, project, storage, ids)), f"{name}+{HISTOGRAM}"


def _review_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in (
        json_option,
        project_option,
        click.option("--query", "query_text", help="Only proposals all of whose objects match this query."),
        click.option("--min-score", type=float, help="Only proposals scored at least this."),
        click.option("--ids", help="These tracks (comma-separated track ids)."),
        click.option("--proposed", is_flag=True, help="Every proposal awaiting review (narrowed by --min-score, --query)."),
    ):
        command = option(command)
    return command


def _review(decision: Decision, proposed: bool, ids: str | None, min_score: float | None, query_text: str | None,
            project: str, as_json: bool) -> None:
    if proposed == (ids is not None):
        raise click.UsageError("give --proposed (every proposal, narrowed by --min-score and --query) or --ids 1,2,3")
    track_ids: Sequence[int] | None = _parse_ids(ids, "--ids") if ids is not None else None
    with open_registry().session() as s:
        result = review_tracks(s, get_project(s, project), decision, track_ids=track_ids, min_score=min_score,
                               query=query_text, actor=cli_actor())
    verb = "accepted" if decision == "accept" else "rejected"
    human = f"{verb} {len(result.tracks)} track(s)"
    if decision == "accept":
        human += (f": {result.objects_assigned} object(s) now in them, {result.objects_kept} kept the track they "
                  "were in")
    emit(result.to_dict(), as_json, human)


@tracks.command("accept")
@_review_options
def accept_cmd(proposed: bool, ids: str | None, min_score: float | None, query_text: str | None, project: str,
               as_json: bool) -> None:
    """Accept proposed tracks: their objects now point at them (unless already in a track)."""
    _review("accept", proposed, ids, min_score, query_text, project, as_json)


@tracks.command("reject")
@_review_options
def reject_cmd(proposed: bool, ids: str | None, min_score: float | None, query_text: str | None, project: str,
               as_json: bool) -> None:
    """Reject proposed tracks: kept, with status rejected, and never proposed again."""
    _review("reject", proposed, ids, min_score, query_text, project, as_json)
