"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import getpass
from typing import Any

import click
import orjson

from dsgen_core.registry.db import Registry


def cli_actor() -> str:
    """Who the audit log says wrote what a CLI command wrote: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in this environment (a container without a passwd entry)
        return "cli"


project_option = click.option("--project", default="default", show_default=True, help="Project name.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def open_registry() -> Registry:
    """The registry of ``$DSGEN_HOME``, closed (its connection pool too) when the command ends: a
    process that runs many commands (a test, a notebook) keeps no connection per command."""
    registry = Registry()
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(registry.dispose)
    return registry


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode())
    else:
        click.echo(human if human is not None else orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
