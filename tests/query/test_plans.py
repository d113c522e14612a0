"""SQLite query plans of the indexed predicates: each must be served by its index.

SQLite-only by nature (EXPLAIN QUERY PLAN); the results of the same queries are checked on
both databases in test_compiler.py. The registry is empty and never ANALYZEd, the state a
fresh registry is in, where SQLite's guesses are the ones that matter.
"""

from __future__ import annotations

import pytest

from dsgen_core.query import compile_query
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import ensure_project


def plan(registry: Registry, text: str, level: str) -> list[str]:
    with registry.session() as s:
        project_id = ensure_project(s).id
    compiled = compile_query(text, project_id=project_id, level=level).compile(registry.engine)  # type: ignore[arg-type]
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    with registry.engine.connect() as conn:
        return [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", params)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("text", "level", "uses"),
    [
        ("tag:car", "image", "SEARCH asset_tags USING COVERING INDEX ix_asset_tags_tag_asset (tag=?)"),
        ("category:car", "image", "SEARCH annotations USING COVERING INDEX ix_annotations_label_asset (label_class_id=?)"),
        ("width>1024", "image", "SEARCH assets USING INDEX ix_assets_width (width>?)"),
        ("height<=480", "image", "SEARCH assets USING INDEX ix_assets_height (height<?)"),
        ("confidence<0.5", "image", "ix_annotations_confidence (confidence<?)"),
        ("color:red", "image", "SEARCH asset_metadata USING INDEX ix_asset_metadata_key_text (key=? AND value_text=?)"),
        ("score>0.5", "image", "SEARCH asset_metadata USING INDEX ix_asset_metadata_key_num (key=? AND value_num>?)"),
        ("category:car confidence<0.5", "image", "ix_annotations_"),
        ("category:car", "object", "SEARCH annotations USING COVERING INDEX ix_annotations_label_asset (label_class_id=?)"),
        ("confidence>0.9", "object", "ix_annotations_confidence (confidence>?)"),
        ("track:17", "object", "ix_annotations_track_id (track_id=?)"),
    ],
)
def test_indexed_predicates_use_their_index(registry: Registry, text: str, level: str, uses: str) -> None:
    steps = plan(registry, text, level)
    assert any(uses in step for step in steps), steps
    # Walking every image of the project (or every object) is what the indexes are there to avoid.
    assert not any(step.startswith("SCAN assets") or step.startswith("SCAN annotations") for step in steps), steps
    assert not any("ix_assets_project_file_name" in step for step in steps), steps
