"""Hostile and broken input gets a one-line error (exit 2), a broken environment exit 3, never a
traceback, and nothing is written (issue 9, defects 4, 8, 9, 10)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text

from dsgen_core.errors import DsgenError
from dsgen_core.query import QueryTimeout, run_query, statement_timeout
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, Asset
from dsgen_core.registry.tagging import add_tags, set_metadata
from support import import_file

IMAGE = {"id": 1, "width": 64, "height": 48, "file_name": "a.jpg"}
CATEGORY = {"id": 1, "name": "x"}


def _doc(images: list[Any] | None = None, annotations: list[Any] | None = None, **top: Any) -> dict[str, Any]:
    return {**top, "images": images or [IMAGE], "categories": [CATEGORY], "annotations": annotations or []}


HOSTILE = {
    "id beyond 64 bits": (_doc([{**IMAGE, "id": 2**63}]), "beyond 64 bits"),
    "NUL in file_name": (_doc([{**IMAGE, "file_name": "a\x00b.jpg"}]), "NUL character"),
    "NUL in a caption": (_doc(annotations=[{"id": 1, "image_id": 1, "caption": "a\x00b"}]), "NUL character"),
    "file_name over 255 bytes": (_doc([{**IMAGE, "file_name": "d/" + "a" * 300 + ".jpg"}]), "longer than 255 bytes"),
    "polygon at 1e10": (_doc(annotations=[{"id": 1, "image_id": 1, "category_id": 1,
                                           "segmentation": [[0, 0, 1e10, 0, 1e10, 1e10]]}]), "far outside"),
    "box of 1e308": (_doc(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1e308, 1e308]}]),
                     "far outside"),
    "keypoints at 1e9": (_doc(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2],
                                            "keypoints": [1e9, 1, 2]}]), "far outside"),
    "image side of 2^63 pixels": (_doc([{**IMAGE, "height": 2**63}]), "at most 100000 pixels"),
    "num_keypoints of 2^40": (_doc(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2],
                                                 "keypoints": [1, 1, 2], "num_keypoints": 2**40}]), "count of keypoints"),
    "class name of 1000 characters": ({"images": [IMAGE], "categories": [{"id": 1, "name": "c" * 1000}],
                                       "annotations": []}, "longer than 128"),
    "attributes of 2 MB": (_doc(annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2],
                                              "attributes": {"note": "x" * (2 << 20)}}]), "bytes of JSON"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_records_are_refused_with_a_reason(cli: Any, registry: Registry, tmp_path: Path, case: str) -> None:
    doc, reason = HOSTILE[case]
    path = tmp_path / "hostile.json"
    path.write_bytes(orjson.dumps(doc))
    r = cli("import", "coco", path, "--project", "p")
    assert r.returncode == 2 and reason in r.stderr and "Traceback" not in r.stderr, r.stderr
    with registry.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 0
        assert s.scalar(select(func.count()).select_from(Annotation)) == 0


def test_a_nul_in_the_header_is_refused_even_with_skip_invalid(cli: Any, registry: Registry, tmp_path: Path) -> None:
    # Found by the long COCO fuzz run: --skip-invalid skipped nothing and PostgreSQL refused the header.
    path = tmp_path / "nul-header.json"
    path.write_bytes(orjson.dumps(_doc(licenses="a\x00b")))
    r = cli("import", "coco", path, "--project", "p", "--skip-invalid")
    assert r.returncode == 2 and "'licenses'" in r.stderr and "NUL" in r.stderr, r.stderr
    with registry.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == 0


def test_a_category_id_past_32_bits_is_kept(cli: Any, registry: Registry, tmp_path: Path) -> None:
    # Found by the COCO fuzzer: PostgreSQL held class ids in 32 bits and refused the import as a database failure.
    path = tmp_path / "big-id.json"
    path.write_bytes(orjson.dumps({"images": [IMAGE], "categories": [{"id": 2**63 - 1, "name": "x"}], "annotations": [
        {"id": 1, "image_id": 1, "category_id": 2**63 - 1, "bbox": [1, 1, 2, 2]}]}))
    assert cli("import", "coco", path, "--project", "p").returncode == 0
    r = cli("export", "coco", tmp_path / "out.json", "--project", "p")
    assert r.returncode == 0, r.stderr
    doc = orjson.loads((tmp_path / "out.json").read_bytes())
    assert [c["id"] for c in doc["categories"]] == [2**63 - 1] and doc["annotations"][0]["category_id"] == 2**63 - 1


def test_a_header_of_500_mb_is_not_stored(cli: Any, registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps(_doc(info={"description": "x" * (3 << 20)})))
    r = cli("import", "coco", path, "--project", "p")
    assert r.returncode == 2 and "more than 1048576" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("query", [
    "width>1e999", "id:99999999999999999999", "(" * 500 + "tag:a" + ")" * 500, "-" * 100 + "tag:a",
    " ".join(f"category:c{i}" for i in range(65)), "tag:" + "x" * 5000, "height<-1e400",
])
def test_hostile_queries_are_refused_in_one_message(cli: Any, registry: Registry, query: str) -> None:
    cli("init", "--project", "p", check=True)
    r = cli("query", "--project", "p", "--count", "--", query)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr


NUL_WRITES = {
    "query": lambda s, p: run_query(s, p, "color:a\x00b"),
    "tag": lambda s, p: add_tags(s, p, ["a\x00b"], query=""),
    "metadata key": lambda s, p: set_metadata(s, p, "k\x00", "v", query=""),
    "metadata text": lambda s, p: set_metadata(s, p, "k", "a\x00b", query=""),
    "metadata JSON": lambda s, p: set_metadata(s, p, "k", {"a": ["b\x00"]}, query=""),
}


@pytest.mark.parametrize("case", sorted(NUL_WRITES))
def test_a_nul_character_in_a_query_tag_or_metadata_is_refused(registry: Registry, case: str) -> None:
    # Found by the query fuzzer: PostgreSQL refused the parameter and the CLI said "database failed".
    # (No command line can carry a NUL; the REST API and the library can.)
    path = Path(registry.settings.home) / "one.json"
    path.write_bytes(orjson.dumps(_doc()))
    import_file(registry, path, project="p")
    with pytest.raises(DsgenError, match="NUL character"), registry.session() as s:
        NUL_WRITES[case](s, get_project(s, "p"))


def test_many_alternative_classes_compile_to_one_lookup(registry: Registry) -> None:
    from dsgen_core.query import compile_query

    from sqlalchemy.dialects import sqlite

    sql = str(compile_query(" OR ".join(f"category:c{i}" for i in range(64)), project_id=1).compile(dialect=sqlite.dialect()))
    assert sql.count("FROM annotations") == 1 and sql.count("FROM label_classes") == 1


def test_a_query_past_its_time_limit_is_stopped(registry: Registry) -> None:
    with registry.session() as s:
        with pytest.raises(QueryTimeout, match="ran longer than"):
            with statement_timeout(s, 0.05):
                if registry.dialect == "postgresql":
                    s.execute(text("SELECT pg_sleep(2)"))
                else:
                    s.execute(text("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                                   "SELECT count(*) FROM n"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_that_cannot_be_reached_is_an_environment_error(cli: Any, registry: Registry) -> None:
    env = {**cli.env, "DSGEN_DATABASE_URL": "postgresql+psycopg://ana:hunter2@127.0.0.1:1/nowhere"}
    r = cli("stats", "--project", "p", env=env)
    assert r.returncode == 3 and "cannot use the registry database" in r.stderr and "Traceback" not in r.stderr
    assert "hunter2" not in r.stderr and "ana:***@" in r.stderr


def test_a_missing_postgresql_database_is_an_environment_error(cli: Any, pg_server: Any) -> None:
    env = {**cli.env, "DSGEN_DATABASE_URL": pg_server.url("no_such_database")}
    r = cli("init", env=env)
    assert r.returncode == 3 and "no_such_database" in r.stderr and "Traceback" not in r.stderr


def test_the_password_is_never_printed(cli: Any, registry: Registry, pg_server: Any) -> None:
    url = pg_server.url(pg_server.create_database()).replace("://postgres@", "://postgres:hunter2@")
    r = cli("init", "--project", "p", env={**cli.env, "DSGEN_DATABASE_URL": url}, check=True)
    assert "hunter2" not in r.stdout + r.stderr and "postgres:***@" in r.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_lock_held_too_long_is_an_environment_error(cli: Any, registry: Registry) -> None:
    cli("init", "--project", "p", check=True)
    db = registry.settings.database_url.split("///", 1)[1]
    holder = sqlite3.connect(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r = cli("tag", "add", "x", "--query", "", "--project", "p", env={**cli.env, "DSGEN_SQLITE_BUSY_TIMEOUT": "0.5"})
    finally:
        holder.rollback()
        holder.close()
    assert r.returncode == 3 and "locked by another writer" in r.stderr and "Traceback" not in r.stderr


def test_unwritable_storage_is_an_environment_error_and_writes_nothing(cli: Any, registry: Registry, corpus: Path,
                                                                        tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage folder should be")
    env = {**cli.env, "DSGEN_STORAGE": str(blocker / "storage")}
    dm = corpus / "datumaro/tests/assets/coco_dataset/coco"
    r = cli("import", "coco", dm / "annotations/instances_val.json", "--images", dm / "images/val", "--project", "p",
            env=env)  # it has a mask to write
    assert r.returncode == 3 and "cannot read or write" in r.stderr and "Traceback" not in r.stderr, r.stderr
    with registry.session() as s:
        assert s.scalar(select(func.count()).select_from(Annotation)) == 0


def test_a_zip_bomb_of_many_one_mib_entries_is_refused(cli: Any, registry: Registry, tmp_path: Path) -> None:
    """300 entries of exactly 1 MiB of zeros (a 300 KB ZIP, 315 MB unpacked) slipped under the
    per-entry check; the ratio over all entries catches it, before anything is unpacked."""
    import zipfile

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for k in range(300):
            z.writestr(f"images/{k}.jpg", b"\0" * (1 << 20))
    path = tmp_path / "a.json"
    path.write_bytes(orjson.dumps(_doc()))
    r = cli("import", "coco", path, "--images", bomb, "--project", "p")
    assert r.returncode == 2 and "decompression bomb" in r.stderr and "Traceback" not in r.stderr
    assert not list((tmp_path / "registry").rglob("*.jpg")), "nothing unpacked"
    # The limits are the user's to set (a ZIP of well-compressing TIFFs, say).
    r = cli("import", "coco", path, "--images", bomb, "--project", "p",
            env={**cli.env, "DSGEN_ZIP_MAX_RATIO": "5000", "DSGEN_ZIP_MAX_BYTES": "1000"})
    assert r.returncode == 2 and "exceeds the 1000 byte limit" in r.stderr
