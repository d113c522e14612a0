"""``dsgen query``, ``dsgen tag add|remove``, ``dsgen meta set|unset``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from sqlalchemy import select

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.query import Level, compile_query, count_query, run_query
from dsgen_core.registry import tagging
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Asset


def _objects_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--objects", is_flag=True, help=help_text)


def _level(objects: bool) -> Level:
    return "object" if objects else "image"


@click.command(
    "query",
    # Lets a query start with a negated term: `dsgen query -tag:blurry`.
    context_settings={"ignore_unknown_options": True},
)
@click.argument("terms", nargs=-1, type=click.UNPROCESSED)
@project_option
@_objects_option("Return objects (annotation ids) instead of images.")
@click.option("--count", "only_count", is_flag=True, help="Print only how many match.")
@json_option
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Print at most N results.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip the first N results.")
def query_command(
    terms: tuple[str, ...], project: str, objects: bool, only_count: bool, as_json: bool, limit: int | None, offset: int
) -> None:
    """Find images (or objects) matching a query, e.g. 'tag:car color:red width>1024'.

    Quote the query for the shell. Terms are ANDed; OR (upper case), parentheses and
    -term work; values may be "quoted". An empty query matches everything. Prints
    `ID<TAB>FILE` per image, one id per object, a JSON list of ids with --json, and
    {"count": N} with --count --json.

    \b
    tag:T  category:C (class:, label:)  file:SUBSTRING  id:N
    width height bytes aspect area confidence  with  : = != > >= < <=
    source:model|human  iscrowd:true|false  validated:true|false
    has:mask|polygon|keypoints|bbox|caption|track|tag|metadata
    attr.K:V  attr.K>N  track:X  model:m3  annotator:NAME
    version:v3  split:train|val|test  (together: that split of that version)
    KEY:V  KEY>N  KEY:*   any other key is metadata (meta.KEY for builtin names)

    Object predicates ANDed next to each other must hold for the same object:
    'category:car confidence<0.5' is an image with a low-confidence car.
    """
    text = " ".join(terms)
    level = _level(objects)
    with open_registry().session() as s:
        proj = get_project(s, project)
        if only_count:
            n = count_query(s, proj, text, level=level)
            emit({"count": n}, as_json, str(n))
            return
        if as_json or level == "object":
            ids = run_query(s, proj, text, level=level, limit=limit, offset=offset)
            emit(ids, as_json, "\n".join(map(str, ids)))
            return
        stmt = (
            select(Asset.id, Asset.file_name)
            .where(Asset.id.in_(compile_query(text, project_id=proj.id, level=level, session=s)))
            .order_by(Asset.id)
            .offset(offset)
            .limit(limit)
        )
        for asset_id, file_name in s.execute(stmt):
            click.echo(f"{asset_id}\t{file_name}")


# --------------------------------------------------------------------------- tag / meta


def _parse_ids(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like 1,2,3, got {value!r}") from None


def _target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in (
        json_option,
        project_option,
        _objects_option("Change objects instead of images; --ids are then annotation ids."),
        click.option("--ids", callback=_parse_ids, help="Comma-separated ids, e.g. 1,2,3."),
        click.option("--query", "query_text", help="Every image (or object) matching this query."),
    ):
        command = option(command)
    return command


def _run(
    change: Callable[..., int],
    *args: Any,
    project: str,
    objects: bool,
    ids: list[int] | None,
    query_text: str | None,
    as_json: bool,
    verb: str,
) -> None:
    """Apply one tagging operation to exactly one of --ids / --query and report the count."""
    if (ids is None) == (query_text is None):
        raise click.UsageError("give exactly one of --query Q or --ids 1,2,3")
    level = _level(objects)
    with open_registry().session() as s:
        changed = change(s, get_project(s, project), *args, asset_ids=ids, query=query_text, level=level,
                         actor=cli_actor())
    what = "object(s)" if objects else "image(s)"
    emit({"changed": changed, "level": level}, as_json, f"{verb}: {changed} change(s) on {what}")


@click.group()
def tag() -> None:
    """Add or remove tags on images or objects (by --ids or --query)."""


@tag.command("add")
@click.argument("tags", nargs=-1, required=True)
@_target_options
def tag_add(tags: tuple[str, ...], **target: Any) -> None:
    """Add TAGS; prints how many tags were newly added."""
    _run(tagging.add_tags, list(tags), verb="tag add", **target)


@tag.command("remove")
@click.argument("tags", nargs=-1, required=True)
@_target_options
def tag_remove(tags: tuple[str, ...], **target: Any) -> None:
    """Remove TAGS; prints how many tags were removed."""
    _run(tagging.remove_tags, list(tags), verb="tag remove", **target)


@click.group()
def meta() -> None:
    """Set or unset key-value metadata on images or objects (by --ids or --query)."""


# A negative number is a value, not an option: `dsgen meta set offset -3 --ids 1`.
@meta.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value", type=click.UNPROCESSED)
@_target_options
def meta_set(key: str, value: str, **target: Any) -> None:
    """Set KEY to VALUE. Numbers (12, 0.5) are also stored as numbers, so key>10 works;
    anything else (true, red, 007) is text. Prints how many rows changed."""
    _run(tagging.set_metadata, key, tagging.parse_value(value), verb="meta set", **target)


@meta.command("unset")
@click.argument("key")
@_target_options
def meta_unset(key: str, **target: Any) -> None:
    """Remove KEY; prints how many rows were removed."""
    _run(tagging.unset_metadata, key, verb="meta unset", **target)
