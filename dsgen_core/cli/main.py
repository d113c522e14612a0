"""The ``dsgen`` command line. Each domain adds its commands in its own module."""

from __future__ import annotations

import sys

import click

from dsgen_core.errors import DsgenError


class Group(click.Group):
    """Turns user-facing errors into a message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except DsgenError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dsgen")
def cli() -> None:
    """dsgen: a computer-vision dataset registry, query language, insights and pipelines.

    Data lives under $DSGEN_HOME (default ./data); $DSGEN_DATABASE_URL selects another database.
    """


def _register() -> None:
    """Import the command modules, each of which adds its commands to ``cli``."""
    from dsgen_core.cli import (  # noqa: F401, PLC0415 - imported for their side effect
        commands_demo,
        commands_insights,
        commands_models,
        commands_query,
        commands_registry,
        commands_versions,
    )


def main() -> None:
    _register()
    cli()


if __name__ == "__main__":
    main()
