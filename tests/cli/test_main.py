"""The dsgen command loads a command's module only when it runs, and every listed command exists."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from dsgen_core.cli.main import COMMANDS, EXPORT_COMMANDS, cli, export_

HEAVY = ("sqlalchemy", "matplotlib", "torch", "ultralytics", "dsgen_core.registry", "dsgen_core.cli.commands_registry")


def test_help_imports_no_library() -> None:
    code = ("import sys; from dsgen_core.cli.main import cli\n"
            "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert "import      Import annotations into the registry." in out


@pytest.mark.parametrize(("group", "table"), [(cli, COMMANDS), (export_, EXPORT_COMMANDS)])
def test_every_listed_command_resolves_to_a_click_command(group: click.Group, table: dict) -> None:
    ctx = click.Context(group)
    for name in table:
        command = group.get_command(ctx, name)
        assert isinstance(command, click.Command), name
    assert group.list_commands(ctx) == sorted(table)
