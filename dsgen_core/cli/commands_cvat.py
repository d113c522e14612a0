"""``dsgen cvat push|pull|status|clean``: the round-trip with a CVAT server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import click

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.cvat.files import FORMATS
from dsgen_core.cvat.pull import pull_from_cvat
from dsgen_core.cvat.push import WHICH, clean_push, push_to_cvat, resume_push
from dsgen_core.cvat.status import cvat_status
from dsgen_core.registry.projects import get_project
from dsgen_core.storage import open_storage


@click.group()
def cvat() -> None:
    """Push a selection to CVAT as new tasks and pull the annotators' work back (CVAT 2.23 and newer).

    The server is CVAT_URL; CVAT_ACCESS_TOKEN, or CVAT_USERNAME and CVAT_PASSWORD, log in.
    """


@cvat.command("push")
@click.option("--query", default="", help="The images to send ('' for all).")
@click.option("--name", help="The CVAT task's name (chunks get ' (k/n)').")
@click.option("--resume", "resume", type=int, metavar="PUSH_ID", help="Finish a push that stopped half-way.")
@click.option("--cvat-project", type=int, help="Make the tasks in this CVAT project (its labels must cover the classes).")
@click.option("--segment-size", type=int, help="Images per CVAT job.")
@click.option("--max-images-per-task", type=int, help="Split the selection into tasks of at most this many images.")
@click.option("--annotations", "which", type=click.Choice(WHICH), default="all", show_default=True,
              help="Which objects go along as pre-annotations.")
@click.option("--dry-run", is_flag=True, help="Show the tasks and the loss report; send nothing.")
@click.option("--share-root", type=click.Path(path_type=Path, file_okay=False),
              help="The images lie in CVAT's shared storage, mounted here: CVAT reads them from there.")
@click.option("--cloud-storage", type=int, metavar="ID",
              help="The images lie in this CVAT cloud storage, seen here at --share-root: CVAT reads them by key.")
@click.option("--as-images", is_flag=True,
              help="Frames of one video go as an image task, not as a CVAT video task of the video file.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True,
              help="How pre-annotations go: CVAT's annotations API (exact), or a file CVAT's importer reads.")
@project_option
@json_option
def push(query: str, name: str | None, resume: int | None, cvat_project: int | None, segment_size: int | None,
         max_images_per_task: int | None, which: str, dry_run: bool, share_root: Path | None, cloud_storage: int | None,
         as_images: bool, fmt: str,
         project: str, as_json: bool) -> None:
    """Make CVAT tasks of the images a query selects, with their objects as pre-annotations."""
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    if resume is not None:
        result = resume_push(reg, project, resume, storage=storage)
    else:
        if not name:
            raise click.UsageError("--name is required (or --resume PUSH_ID)")
        result = push_to_cvat(reg, project, query=query, name=name, storage=storage, annotations=which,  # type: ignore[arg-type]
                              max_images_per_task=max_images_per_task, segment_size=segment_size,
                              cvat_project=cvat_project, dry_run=dry_run, actor=cli_actor(), share_root=share_root,
                              fmt=fmt, cloud_storage=cloud_storage, video=not as_images)
    lines = [("would make" if dry_run else "task") + f" {t.name!r}: {t.images} images, {t.objects} objects"
             + (f" -> {t.url}" if t.url else "") for t in result.tasks]
    lines += ["loss report:", *("  " + ln for ln in result.loss_report.lines())]
    emit(result.to_dict(), as_json, "\n".join(lines))


@cvat.command("pull")
@click.argument("task_id", type=int, required=False)
@click.option("--job", "job_id", type=int, help="Pull one CVAT job (its frames) instead of a whole task.")
@click.option("--on-conflict", type=click.Choice(["cvat", "registry"]), default="cvat", show_default=True,
              help="Who wins when an object changed on both sides since the push.")
@click.option("--since", metavar="[WHEN]", is_flag=False, flag_value="last", default=None,
              help="Read only the jobs CVAT changed since the push or last pull (or since WHEN, an ISO time).")
@project_option
@json_option
def pull(task_id: int | None, job_id: int | None, on_conflict: str, since: str | None, project: str,
         as_json: bool) -> None:
    """Bring a pushed task's (or one of its jobs') annotations back as one annotation batch."""
    when: datetime | Literal["last"] | None = None
    if since == "last":
        when = "last"
    elif since is not None:
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"{since!r} is not an ISO time such as 2026-12-01T10:00:00Z",
                                     param_hint="--since") from None
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session() as s:
        r = pull_from_cvat(s, get_project(s, project), task_id, job_id=job_id, storage=storage,
                           on_conflict=on_conflict, actor=cli_actor(), since=when)  # type: ignore[arg-type]
    human = (f"task {r.task_id}{f' job {job_id}' if job_id else ''}: {r.added} added, {r.changed} changed, {r.deleted} deleted, {r.unchanged} unchanged"
             + (f" (batch {r.batch_id})" if r.batch_id else " (nothing to do)"))
    if r.jobs_read is not None:
        human += f"\n{r.jobs_read} job(s) changed in CVAT since {'the last pull' if since == 'last' else since}"
    human += "".join(f"\nconflict: {c}" for c in r.conflicts)
    human += "".join(f"\nnot pulled: {c}" for c in r.skipped)
    emit(r.to_dict(), as_json, human)


@cvat.command("status")
@click.option("--offline", is_flag=True, help="Only what the registry recorded; do not ask CVAT.")
@project_option
@json_option
def status(offline: bool, project: str, as_json: bool) -> None:
    """The pushed tasks, how far each push got, and (unless --offline) CVAT's state of each."""
    reg = open_registry()
    with reg.session() as s:
        rows = cvat_status(s, get_project(s, project), live=not offline)
    lines = [f"push {r.export_job_id} task {r.task_id or '-'} {r.name!r}: {r.images} images, {r.status}"
             + (f", CVAT: {r.cvat_state} {r.jobs}" if r.cvat_state else "")
             + (f", pulled {r.pulled_at:%Y-%m-%d %H:%M}" if r.pulled_at else "") for r in rows]
    emit([r.to_dict() for r in rows], as_json, "\n".join(lines) or "nothing pushed")


@cvat.command("clean")
@click.argument("push_id", type=int)
@project_option
@json_option
def clean(push_id: int, project: str, as_json: bool) -> None:
    """Delete in CVAT the unfinished tasks of a push that stopped half-way."""
    reg = open_registry()
    removed = clean_push(reg, project, push_id, actor=cli_actor())
    out = [{"task_id": t.id, "name": t.name} for t in removed]
    emit(out, as_json, "\n".join(f"removed task {t['task_id'] or '(never made)'} {t['name']!r}" for t in out)
         or "nothing unfinished")
