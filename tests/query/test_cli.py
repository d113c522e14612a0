"""``dsgen query``, ``dsgen tag``, ``dsgen meta``: the output and exit codes scripts rely on."""

from __future__ import annotations

import json

import pytest

from dsgen_core.query import run_query
from dsgen_core.registry import tagging
from dsgen_core.registry.schema import Project

from .conftest import Scene


def test_count_json_contract(scene: Scene, cli) -> None:  # noqa: ANN001 - conftest Cli
    proc = cli("query", "tag:car", "--count", "--json", check=True)
    assert json.loads(proc.stdout) == {"count": 1}
    assert proc.stdout.strip() == '{"count":1}'
    proc = cli("query", "category:car confidence<0.5", "--count", "--json", check=True)
    assert json.loads(proc.stdout) == {"count": 1}
    proc = cli("query", "category:car", "--objects", "--count", "--json", "--project", "other", check=True)
    assert json.loads(proc.stdout) == {"count": 1}
    assert cli("query", "", "--count", check=True).stdout.strip() == "4"


def test_bad_query_exits_2_with_a_caret(scene: Scene, cli) -> None:  # noqa: ANN001
    proc = cli("query", "tag:car width=>5", "--count", "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "error: unknown operator '=>' (use one of : = != > >= < <=) (column 14)"
    assert lines[1] == "  tag:car width=>5"
    assert lines[2] == "  " + " " * 13 + "^"


def test_listing_ids_and_files(scene: Scene, cli) -> None:  # noqa: ANN001
    a, o = scene.a, scene.o
    out = cli.invoke("query", "tag:blurry OR tag:day")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == [f"{a['street1']}\timages/street 01.jpg", f"{a['street2']}\timages/street_02.png"]
    out = cli.invoke("query", "width>100", "--json")
    assert json.loads(out.stdout) == sorted([a["street1"], a["street2"], a["dark"]])
    out = cli.invoke("query", "width>100", "--json", "--limit", "1", "--offset", "1")
    assert json.loads(out.stdout) == [sorted([a["street1"], a["street2"], a["dark"]])[1]]
    out = cli.invoke("query", "width>100", "--limit", "1")
    assert out.stdout.splitlines() == [f"{a['street1']}\timages/street 01.jpg"]
    out = cli.invoke("query", "category:car", "--objects")
    assert out.stdout.split() == [str(o["car1"]), str(o["car2"])]
    out = cli.invoke("query", "category:car", "--objects", "--json")
    assert json.loads(out.stdout) == [o["car1"], o["car2"]]
    # The query may be given as several words, and may start with a negated term.
    out = cli.invoke("query", "-tag:car", "-tag:blurry", "--json")
    assert json.loads(out.stdout) == sorted([a["dark"], a["nosize"]])
    out = cli.invoke("query", "tag:nothing", "--json")
    assert json.loads(out.stdout) == []


def test_unknown_project_exits_2(scene: Scene, cli) -> None:  # noqa: ANN001
    out = cli.invoke("query", "tag:car", "--project", "nope")
    assert out.exit_code == 2
    assert "project 'nope' does not exist" in out.stderr


def test_tag_add_and_remove(scene: Scene, cli) -> None:  # noqa: ANN001
    a = scene.a
    proc = cli("tag", "add", "review", "hard", "--query", "width>=1024", "--json", check=True)
    assert json.loads(proc.stdout) == {"changed": 4, "level": "image"}
    out = cli.invoke("tag", "add", "review", "--ids", f"{a['street2']},{a['street1']}")
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "tag add: 1 change(s) on image(s)"
    out = cli.invoke("tag", "remove", "hard", "--ids", str(a["dark"]), "--json")
    assert json.loads(out.stdout) == {"changed": 1, "level": "image"}
    out = cli.invoke("tag", "add", "check", "--objects", "--query", "category:car", "--json")
    assert json.loads(out.stdout) == {"changed": 2, "level": "object"}
    with scene.registry.session() as s:
        assert set(run_query(s, s.get(Project, scene.project_id), "tag:review")) == scene.images("street1", "street2", "dark")
        assert set(run_query(s, s.get(Project, scene.project_id), "tag:hard")) == scene.images("street1")
        assert tagging.get_object_tags(s, scene.o["car2"]) == ["check"]


def test_meta_set_and_unset(scene: Scene, cli) -> None:  # noqa: ANN001
    a = scene.a
    out = cli.invoke("meta", "set", "offset", "-3", "--ids", f"{a['dark']},{a['nosize']}")
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "meta set: 2 change(s) on image(s)"
    assert json.loads(cli.invoke("query", "offset<0", "--json").stdout) == sorted([a["dark"], a["nosize"]])
    out = cli.invoke("meta", "set", "night", "true", "--query", "file:night", "--json")
    assert json.loads(out.stdout) == {"changed": 1, "level": "image"}
    out = cli.invoke("meta", "set", "state", "ok", "--objects", "--query", "category:person", "--json")
    assert json.loads(out.stdout) == {"changed": 3, "level": "object"}
    out = cli.invoke("meta", "unset", "offset", "--query", "", "--json")
    assert json.loads(out.stdout) == {"changed": 2, "level": "image"}
    with scene.registry.session() as s:
        assert tagging.get_metadata(s, a["dark"]) == {"flag": "true", "night": "true", "score": "7"}
        assert tagging.get_object_metadata(s, scene.o["person3"]) == {"state": "ok"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tag", "add", "x"], "exactly one of --query Q or --ids"),
        (["tag", "add", "x", "--ids", "1", "--query", "tag:car"], "exactly one of --query Q or --ids"),
        (["meta", "unset", "k"], "exactly one of --query Q or --ids"),
        (["tag", "add", "x", "--ids", "1,two"], "comma-separated integers"),
        (["tag", "add", "a:b", "--query", ""], "contains ':'"),
        (["tag", "add", "x", "--query", "tag:(car"], "column"),
        (["tag", "add", "x", "--ids", "999999"], "not in the project"),
        (["meta", "set", "width", "3", "--query", ""], "builtin query field"),
        (["tag", "add", "--query", ""], "Missing argument"),
    ],
)
def test_usage_errors_exit_2(scene: Scene, cli, args: list[str], message: str) -> None:  # noqa: ANN001
    out = cli.invoke(*args)
    assert out.exit_code == 2, out.output
    assert message in out.stderr
    with scene.registry.session() as s:
        assert run_query(s, s.get(Project, scene.project_id), "tag:x") == []


@pytest.mark.parametrize(
    "command", [["query"], ["tag"], ["tag", "add"], ["tag", "remove"], ["meta"], ["meta", "set"], ["meta", "unset"]]
)
def test_help(cli, command: list[str]) -> None:  # noqa: ANN001
    out = cli.invoke(*command, "--help")
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("Usage: ") and f" {' '.join(command)} [OPTIONS]" in out.stdout
    if command[-1] in ("add", "remove", "set", "unset"):
        assert "--query" in out.stdout and "--ids" in out.stdout and "--objects" in out.stdout
