"""Writers at the same time: every one succeeds and the counts are exact (issue 9, defect 5)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select
from support import dsgen_executable

from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Annotation, Asset, AssetTag, LabelClass, OntologyVersion, Project


def _file(path: Path, prefix: str, classes: list[str], n: int = 20) -> Path:
    images = [{"id": i, "width": 64, "height": 48, "file_name": f"{prefix}/{i}.jpg"} for i in range(1, n + 1)]
    cats = [{"id": k + 1, "name": c} for k, c in enumerate(classes)]
    anns = [{"id": i * 10 + k, "image_id": i, "category_id": k + 1, "bbox": [1, 1, 5, 5], "area": 25.0,
             "iscrowd": 0, "segmentation": []} for i in range(1, n + 1) for k in range(len(classes))]
    path.write_bytes(orjson.dumps({"images": images, "categories": cats, "annotations": anns}))
    return path


def _all_at_once(env: dict[str, str], cwd: Path, *commands: list[Any]) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen([dsgen_executable(), *map(str, c)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL) for c in commands]
    done = []
    for p, c in zip(procs, commands, strict=True):
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    return done


def _count(reg: Registry, table: Any, *where: Any) -> int:
    with reg.session() as s:
        return s.scalar(select(func.count()).select_from(table).where(*where)) or 0


def test_parallel_imports_create_one_project_and_lose_nothing(cli: Any, registry: Registry, tmp_path: Path) -> None:
    files = [_file(tmp_path / f"f{k}.json", f"cam{k}", ["car", "bus"]) for k in range(3)]
    runs = _all_at_once(cli.env, tmp_path, *(["import", "coco", f, "--project", "new", "--json"] for f in files))
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert _count(registry, Project, Project.name == "new") == 1
    assert (_count(registry, Asset), _count(registry, Annotation), _count(registry, LabelClass)) == (60, 120, 2)


def test_parallel_imports_after_a_freeze_fork_the_ontology_once(cli: Any, registry: Registry, tmp_path: Path) -> None:
    cli("import", "coco", _file(tmp_path / "base.json", "base", ["car"]), "--project", "p", check=True)
    cli("version", "create", "v1", "--project", "p", check=True)
    cli("version", "freeze", "v1", "--project", "p", check=True)
    files = [_file(tmp_path / f"n{k}.json", f"new{k}", ["car", f"class{k}"]) for k in range(3)]
    runs = _all_at_once(cli.env, tmp_path, *(["import", "coco", f, "--project", "p", "--json"] for f in files))
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert _count(registry, OntologyVersion) == 2, "one fork for the three new classes"
    assert _count(registry, LabelClass) == 4 and _count(registry, Annotation) == 20 + 3 * 40


def test_parallel_bulk_tagging_is_exact(cli: Any, registry: Registry, tmp_path: Path) -> None:
    cli("import", "coco", _file(tmp_path / "f.json", "cam", ["car"], n=200), "--project", "p", check=True)
    runs = _all_at_once(cli.env, tmp_path, *(["tag", "add", f"t{k}", "--query", "", "--project", "p"] for k in range(4)),
                        ["query", "category:car", "--count", "--project", "p", "--json"])
    assert [r.returncode for r in runs] == [0] * 5, [r.stderr for r in runs]
    assert orjson.loads(runs[-1].stdout)["count"] == 200
    assert _count(registry, AssetTag) == 800


def test_imports_during_queries_freezes_and_tagging_stay_consistent(cli: Any, registry: Registry,
                                                                     tmp_path: Path) -> None:
    """Two imports, a freeze, two queries and two bulk taggings of the same tag, all at once: each
    reader sees the registry as of some commit (20, 40 or 60 images, never a part of an import),
    the frozen version verifies, and the tag rows are exactly what the taggers report adding."""
    cli("import", "coco", _file(tmp_path / "base.json", "base", ["car"]), "--project", "p", check=True)
    cli("version", "create", "v1", "--project", "p", check=True)
    files = [_file(tmp_path / f"n{k}.json", f"new{k}", ["car"]) for k in range(2)]
    runs = _all_at_once(cli.env, tmp_path, *(["import", "coco", f, "--project", "p", "--json"] for f in files),
                        ["version", "freeze", "v1", "--project", "p", "--json"],
                        *(["query", "category:car", "--count", "--project", "p", "--json"] for _ in range(2)),
                        *(["tag", "add", "same", "--query", "", "--project", "p", "--json"] for _ in range(2)))
    assert [r.returncode for r in runs] == [0] * 7, [r.stderr for r in runs]
    frozen = orjson.loads(runs[2].stdout)
    assert sum(frozen["splits"].values()) in (20, 40, 60) and sum(frozen["annotations"].values()) in (20, 40, 60)
    assert {orjson.loads(r.stdout)["count"] for r in runs[3:5]} <= {20, 40, 60}
    added = sum(orjson.loads(r.stdout)["changed"] for r in runs[5:7])
    assert added == _count(registry, AssetTag) and added in (20, 40, 60)
    assert (_count(registry, Asset), _count(registry, Annotation)) == (60, 60)
    assert cli("version", "verify", "v1", "--project", "p").returncode == 0
