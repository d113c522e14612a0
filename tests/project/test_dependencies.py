"""What the code imports is what pyproject.toml declares: no package that works only because
something else happened to install it."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib

from support import REPO_ROOT

# Declared for what they run, not for an import: servers, CLIs, database drivers.
RUNTIME_ONLY = {"dagster-webserver", "dagster-dg-cli", "psycopg", "python-multipart"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503: cvat_sdk and cvat-sdk are one project


def _declared() -> set[str]:
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_canonical(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in deps}


def _imported() -> set[str]:
    found: set[str] = set()
    for pkg in ("dsgen_core", "dsgen_pipelines", "dsgen_api"):
        for path in (REPO_ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("dsgen_core", "dsgen_pipelines", "dsgen_api")}


def test_every_imported_package_is_declared() -> None:
    dists = md.packages_distributions()
    needed = {_canonical(d) for m in _imported() for d in dists.get(m, [m])}
    assert needed - _declared() == set()


def test_every_declared_package_is_imported_or_a_runtime_tool() -> None:
    dists = md.packages_distributions()
    needed = {_canonical(d) for m in _imported() for d in dists.get(m, [m])}
    assert _declared() - needed - RUNTIME_ONLY == set()
