"""``dsgen insights`` and its view subcommands: exit codes, JSON, summaries, chart folders."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dsgen_core.registry.db import Registry

from .conftest import PROJECT, Sample

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_json_with_charts(cli, registry: Registry, sample: Sample) -> None:  # noqa: ANN001 - fixture
    result = cli.invoke("insights", "--project", PROJECT, "--json", "--which", "class_distribution,objects_per_image")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.output)
    assert (data["images"], data["objects"], data["project_id"]) == (5, 7, sample.project_id)
    assert [c["key"] for c in data["class_distribution"]["classes"]] == ["car", "person", "(unlabeled)", "dog"]
    assert "tag_counts" not in data
    out = registry.settings.home / "insights" / PROJECT
    assert data["charts"] == {name: str(out / f"{name}.png") for name in ("class_distribution", "objects_per_image", "overview")}
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in data["charts"].values())


def test_summary_query_and_out_dir(cli, sample: Sample, tmp_path: Path) -> None:  # noqa: ANN001 - fixture
    result = cli.invoke("insights", "--project", PROJECT, "--query", "tag:day", "--out", tmp_path / "day")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "query 'tag:day': 2 images, 4 objects" in text
    assert "car" in text and "tags (2 distinct, 0 images untagged): day (2), city (1)" in text
    assert "most common 1920×1080 (1), 640×480 (1)" in text
    assert "occluded (3 objects): false (2), true (1)" in text
    assert str(tmp_path / "day" / "overview.png") in text
    assert (tmp_path / "day" / "attributes.png").is_file()

    no_charts = cli.invoke("insights", "--project", PROJECT, "--no-charts", "--json")
    assert orjson.loads(no_charts.output)["charts"] == {}


def test_views_subcommands(cli, sample: Sample, tmp_path: Path) -> None:  # noqa: ANN001 - fixture
    saved = cli.invoke("insights", "save", "night", "--project", PROJECT, "--query", "tag:night", "--charts", "sources,bbox_size", "--viz", '{"top": 5}', "--json")
    assert saved.exit_code == 0, saved.output
    assert orjson.loads(saved.output)["charts"] == ["bbox_size", "sources"]
    # --project may also be given to the group.
    assert cli.invoke("insights", "--project", PROJECT, "save", "everything").exit_code == 0

    listed = cli.invoke("insights", "views", "--project", PROJECT)
    assert listed.exit_code == 0
    assert listed.output.splitlines() == [
        "everything  query: <whole project>  charts: all",
        "night       query: tag:night  charts: bbox_size,sources",
    ]
    as_json = orjson.loads(cli.invoke("insights", "views", "--project", PROJECT, "--json").output)
    assert [v["name"] for v in as_json] == ["everything", "night"]

    shown = cli.invoke("insights", "show", "night", "--project", PROJECT, "--json", "--out", tmp_path / "night")
    assert shown.exit_code == 0, shown.output
    data = orjson.loads(shown.output)
    assert (data["images"], data["objects"], data["view"]["name"]) == (1, 2, "night")
    assert set(data["charts"]) == {"bbox_size", "sources", "overview"}
    assert (tmp_path / "night" / "sources.png").is_file()
    human = cli.invoke("insights", "show", "night", "--project", PROJECT)
    assert human.exit_code == 0 and "insight view 'night'" in human.output and "sources: 2 human, 0 model" in human.output

    assert cli.invoke("insights", "delete", "night", "--project", PROJECT).exit_code == 0
    assert "night" not in cli.invoke("insights", "views", "--project", PROJECT).output


def test_errors_exit_2_without_traceback(cli, sample: Sample) -> None:  # noqa: ANN001 - fixture
    for args, message in [
        (("insights", "--project", "nope"), "project 'nope' does not exist"),
        (("insights", "--project", PROJECT, "--which", "pie"), "unknown insight(s) pie"),
        (("insights", "--project", PROJECT, "--query", "width>>3", "--no-charts"), "error:"),
        (("insights", "show", "missing", "--project", PROJECT), "no insight view named 'missing'"),
        (("insights", "save", "x", "--project", PROJECT, "--viz", "[1]"), "--viz must be a JSON object"),
        (("insights", "save", "x", "--project", PROJECT, "--charts", "pie"), "unknown insight(s) pie"),
    ]:
        result = cli.invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


@sqlite_only
def test_real_process_and_help(cli, sample: Sample) -> None:  # noqa: ANN001 - fixture
    proc = cli("insights", "--project", PROJECT, "--no-charts", "--which", "tag_counts", "--json")
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["tag_counts"]["tags"] == {"day": 2, "city": 1, "night": 1}
    bad = cli("insights", "--project", "nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "error: project 'nope'" in bad.stderr
    for args in (("insights",), ("insights", "save"), ("insights", "views"), ("insights", "show"), ("insights", "delete")):
        result = cli.invoke(*args, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output, args
