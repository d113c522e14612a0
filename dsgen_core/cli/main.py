"""The ``dsgen`` command line.

Each command lives in the module of its domain (``commands_import``, ``commands_versions``,
...) as a plain click command; this module names them and loads a module only when one of its
commands runs. ``dsgen --help`` therefore imports no database, chart or model library, and the
command modules never import this one (no cycle).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from dsgen_core.errors import DsgenError, ServiceUnavailable, VersionTampered

# name -> (module:attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("commands_registry:init", "Create the registry (migrations run automatically) and a project."),
    "stats": ("commands_registry:stats", "Counts of images, objects, categories and tracks."),
    "import": ("commands_import:import_", "Import annotations into the registry."),
    "export": ("", "Export a selection of the registry, a frozen version or a model."),
    "thumbnails": ("commands_registry:thumbnails", "Make thumbnails for every image that has none yet."),
    "gc": ("commands_registry:gc", "Remove files no registry row refers to: masks, thumbnails, unpacked ZIPs of failed imports."),
    "query": ("commands_query:query_command", "Images (or objects) matching a query."),
    "tag": ("commands_query:tag", "Add or remove tags on images or objects, one at a time or in bulk."),
    "meta": ("commands_query:meta", "Set or unset key-value metadata on images or objects."),
    "insights": ("commands_insights:insights", "Class distribution, tags, metadata, sizes, attributes, duplicates."),
    "version": ("commands_versions:version", "Frozen, reproducible dataset versions with train/val/test splits."),
    "train": ("commands_models:train", "Train a YOLO model version from a frozen dataset version."),
    "recipes": ("commands_models:recipes", "The training recipes: built-in ones and $DSGEN_HOME/recipes/*.yaml."),
    "models": ("commands_models:models", "The project's model versions."),
    "model": ("commands_models:model_", "One model version."),
    "evaluate": ("commands_models:evaluate", "COCO metrics of a model's ONNX artifact on a frozen version's split."),
    "annotate": ("commands_models:annotate", "Write a model's detections into the registry as model annotations."),
    "policy": ("commands_loop:policy", "When the continuous loop cuts the next version, and what follows it."),
    "batches": ("commands_loop:batches", "The annotation batches: what each changed, which runs of it failed."),
    "backfill": ("commands_loop:backfill", "A Dagster asset backfill: re-embed, re-evaluate on a version, re-export."),
    "embed": ("commands_embed:embed", "Embedding versions, and the sync of the registry into Chroma."),
    "similar": ("commands_embed:similar", "Objects most similar to an object or an image (embeddings)."),
    "duplicates": ("commands_embed:duplicates", "Exact and near-duplicate images, as groups."),
    "tracks": ("commands_tracks:tracks", "Objects followed across frames: list, create, propose by linking, accept or reject."),
    "convert": ("commands_export:convert_cmd", "Any supported dataset format to any other, with a loss report."),
    "cvat": ("commands_cvat:cvat", "Push a selection to CVAT as new tasks; pull the annotators' work back."),
    "demo": ("commands_demo:demo", "The whole flow on generated data: import, query, charts, version, train."),
    "serve": ("commands_serve:serve", "The REST API (and the web app) on one port."),
    "users": ("commands_accounts:users", "Accounts: add and list users (the first admin is made here)."),
    "keys": ("commands_accounts:keys", "API keys: create (shown once), list, revoke."),
    "members": ("commands_accounts:members", "Who has which role in a project: grant, list."),
    "endpoints": ("commands_endpoints:endpoints", "Inference endpoints: deploy a model version, list, remove."),
    "usage": ("commands_accounts:usage", "API requests, training time and storage per user, against their plan."),
}
EXPORT_COMMANDS: dict[str, tuple[str, str]] = {
    "coco": ("commands_export:export_coco_cmd", "The project (or a query) as one COCO file, or a version per split."),
    "yolo": ("commands_export:export_yolo_cmd", "A frozen version as an Ultralytics YOLO dataset."),
    "datamaker": ("commands_export:export_datamaker_cmd", "Images a query selects as Datamaker annotatorData files."),
    "voc": ("commands_export:export_voc_cmd", "A frozen version as Pascal VOC."),
    "imagenet": ("commands_export:export_imagenet_cmd", "A frozen version as ImageNet class folders."),
    "cvat": ("commands_export:export_cvat_cmd", "A frozen version as CVAT for images 1.1 XML."),
    "onnx": ("commands_models:export_onnx_cmd", "A model version's best weights as an ONNX artifact."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when they run (or when their own help is asked for)."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in self.lazy:
            return found
        target = self.lazy[cmd_name][0]
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(f"dsgen_core.cli.{module}"), attr)
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_target, help_text) in sorted(self.lazy.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


EXIT_USER_ERROR = 2  # the input or the request is wrong
EXIT_ENVIRONMENT = 3  # the database, the disk or the storage failed: the same command may work later
EXIT_TAMPERED = 4  # stored data fails its integrity check (a frozen version's content hash)


class Cli(LazyGroup):
    """Turns user-facing errors into a one-line message and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DsgenError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_TAMPERED if isinstance(exc, VersionTampered)
                     else EXIT_ENVIRONMENT if isinstance(exc, ServiceUnavailable) else EXIT_USER_ERROR)
        except Exception as exc:
            message = environment_error(exc)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(EXIT_ENVIRONMENT)


def environment_error(exc: BaseException) -> str | None:
    """A one-line account of a failure of the environment (database, disk, storage), or None."""
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        return f"cannot read or write{where}: {exc.strerror or exc} (nothing was changed in the registry)"
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError) or isinstance(exc.orig, (TypeError, ValueError)):
        return None
    from dsgen_core.config import load_settings

    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    url = load_settings().database_shown
    if "database is locked" in detail:
        return f"the registry {url} is locked by another writer and stayed locked; try again when it is done"
    if exc.connection_invalidated or "connect" in detail.lower() or "does not exist" in detail:
        return f"cannot use the registry database {url}: {detail}"
    return f"the registry database {url} failed: {detail}"


@click.group(cls=Cli, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dsgen")
def cli() -> None:
    """dsgen: a computer-vision dataset registry, query language, insights and pipelines.

    Data lives under $DSGEN_HOME (default ./data); $DSGEN_DATABASE_URL selects another database.
    """


@cli.group("export", cls=LazyGroup, lazy=EXPORT_COMMANDS)
def export_() -> None:
    """Export a selection of the registry, a frozen version or a model."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
