"""Property-based fuzzing (Hypothesis) of the two things anyone can hand dsgen: a COCO file and a
query (issue 9). No input may crash the process, print a traceback or leave anything written when
it is refused; a query either runs or is refused with a :class:`DsgenError`, and what it returns
agrees with its count and with its negation.

The documents are mostly well-formed COCO with hostile values (ids past 64 bits, NaN, 1e308,
NUL, ``..`` paths, wrong types), sometimes a whole section of the wrong type, sometimes not JSON
at all; successive examples import into the same project, so merges and conflicts are exercised
too. ``DSGEN_FUZZ_EXAMPLES`` sets the examples per test (CI runs the default; the long mode of
``benchmarks/bench_faults.py`` runs thousands).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, table

from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.errors import DsgenError
from dsgen_core.query import count_query, run_query
from dsgen_core.query.parser import ALIASES, BOOL_FIELDS, BUILTIN_FIELDS, ENUM_FIELDS, NUMBER_FIELDS, TEXT_FIELDS
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.tagging import add_tags
from support import import_file

EXAMPLES = int(os.environ.get("DSGEN_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize="DSGEN_FUZZ_SEED" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

# --- COCO documents -------------------------------------------------------------------------------

small_ids = st.integers(0, 6)
ints = st.one_of(small_ids, st.integers(-(2**70), 2**70), st.sampled_from([2**63 - 1, 2**63, -(2**63), 2**64, -1]))
floats = st.one_of(st.floats(-1e3, 1e3), st.floats(), st.sampled_from([1e10, 1e308, -0.0, 1e-320]))
numbers = st.one_of(ints, floats)
names = st.one_of(st.text(max_size=12), st.sampled_from(
    ["", ".", "../x.jpg", "/abs.jpg", "c:x.jpg", "a\\b.jpg", "a\x00b.jpg", "d/" + "x" * 300 + ".jpg", "é/ü.png",
     "a/./b.jpg", "a//b.jpg", "x.jpg", "y.png", " x.jpg"]))
junk = st.one_of(st.none(), st.booleans(), numbers, names, st.lists(small_ids, max_size=3),
                 st.dictionaries(st.text(max_size=4), small_ids, max_size=2))


def mostly(strategy: st.SearchStrategy[Any], odds: int = 12) -> st.SearchStrategy[Any]:
    """``strategy``, and once in ``odds`` a value of some other type: rare enough that most
    documents get past the first check to the deeper ones, and to the registry."""
    return st.integers(1, odds).flatmap(lambda n: junk if n == 1 else strategy)


coords = st.one_of(st.floats(0, 64), st.floats(-5, 70), numbers)
image = st.fixed_dictionaries(
    {"id": mostly(small_ids), "file_name": mostly(names), "width": mostly(st.integers(1, 80)),
     "height": mostly(st.integers(1, 80))},
    optional={"license": junk, "date_captured": junk, "coco_url": names, "extra_key": junk, "id_": ints})
rle = st.fixed_dictionaries({"counts": st.one_of(st.text(max_size=12), st.lists(st.integers(-2, 30), max_size=8), junk),
                             "size": st.one_of(st.lists(st.integers(-1, 70), min_size=2, max_size=2), junk)})
segmentation = st.one_of(st.lists(st.lists(coords, max_size=10), max_size=2), rle, junk)
annotation = st.fixed_dictionaries(
    {"id": mostly(small_ids), "image_id": mostly(small_ids), "category_id": mostly(small_ids)},
    optional={"bbox": mostly(st.lists(coords, min_size=4, max_size=4)), "segmentation": segmentation,
              "area": mostly(coords), "iscrowd": st.sampled_from([0, 1, 2, True, "1", None]),
              "keypoints": mostly(st.lists(coords, max_size=9)), "num_keypoints": mostly(small_ids),
              "attributes": mostly(st.dictionaries(st.text(max_size=6), junk, max_size=3)),
              "score": mostly(st.floats(0, 1)), "caption": mostly(names), "track_id": junk})
category = st.fixed_dictionaries(
    {"id": mostly(small_ids), "name": mostly(st.sampled_from(["car", "dog", "Car", "", "a b"]) | st.text(max_size=8))},
    optional={"supercategory": mostly(names), "keypoints": mostly(st.lists(st.text(max_size=4), max_size=3)),
              "skeleton": mostly(st.lists(st.lists(small_ids, min_size=2, max_size=2), max_size=2))})
document = st.fixed_dictionaries(
    {"images": mostly(st.lists(image, max_size=4)), "annotations": mostly(st.lists(annotation, max_size=6)),
     "categories": mostly(st.lists(category, max_size=3))},
    optional={"info": junk, "licenses": junk, "extra": junk})


hostile = st.one_of(junk, numbers, names)


@st.composite
def coherent(draw: st.DrawFn) -> dict[str, Any]:
    """A valid COCO document (few name spaces, so later ones merge into or conflict with earlier
    ones), then up to two of its fields replaced by hostile values."""
    space = draw(st.integers(0, 2))
    w, h = draw(st.sampled_from([(64, 48), (32, 32), (1, 1)]))
    images = [{"id": i, "file_name": f"s{space}/{i}.jpg", "width": w, "height": h}
              for i in range(1, draw(st.integers(1, 4)) + 1)]
    names_ = draw(st.lists(st.sampled_from(["car", "dog", "bus", "cat", "Car"]), min_size=1, max_size=3, unique=True))
    categories = [{"id": k, "name": n, "supercategory": ""} for k, n in enumerate(names_, 1)]
    annotations = []
    for j in range(1, draw(st.integers(0, 6)) + 1):
        x, y = draw(st.floats(0, w - 1)), draw(st.floats(0, h - 1))
        bw, bh = draw(st.floats(0.5, max(0.5, w - x))), draw(st.floats(0.5, max(0.5, h - y)))
        a: dict[str, Any] = {"id": j, "image_id": draw(st.integers(1, len(images))),
                             "category_id": draw(st.integers(1, len(categories))), "bbox": [x, y, bw, bh],
                             "area": bw * bh, "iscrowd": 0, "segmentation": []}
        if draw(st.booleans()):
            a["segmentation"] = [[x, y, x + bw, y, x + bw, y + bh]]
        if draw(st.booleans()):
            a["attributes"] = draw(st.dictionaries(st.sampled_from(["occluded", "rotation", "color"]),
                                                   st.one_of(st.booleans(), st.floats(0, 360), st.text(max_size=5)),
                                                   max_size=3))
        annotations.append(a)
    doc: dict[str, Any] = {"images": images, "annotations": annotations, "categories": categories}
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        section = draw(st.sampled_from(["images", "annotations", "categories"]))
        if doc[section]:
            record = draw(st.sampled_from(doc[section]))
            record[draw(st.sampled_from(sorted(record)))] = draw(hostile)
    return doc


def _encoded(doc: Any, how: str) -> bytes:
    if how == "truncated":
        return json.dumps(doc).encode()[:-3]
    return json.dumps(doc, allow_nan=True).encode()  # NaN and Infinity tokens are not JSON: refused


coco_files = st.one_of(
    coherent().map(lambda d: _encoded(d, "json")),
    st.tuples(document, st.sampled_from(["json", "json", "json", "truncated"])).map(lambda t: _encoded(*t)),
    st.tuples(junk, st.just("json")).map(lambda t: _encoded(*t)),
    st.binary(max_size=40),
)


# The fuzzer's own inputs, and the refusal report a refused import writes on purpose.
EXEMPT = {"fuzz-input", "reports"}


def _state(registry: Registry) -> dict[str, Any]:
    """Every table's row count and every file under the home folder but the database's and EXEMPT."""
    with registry.engine.connect() as conn:
        counts = {name: conn.execute(select(func.count()).select_from(table(name))).scalar()
                  for name in registry.table_names()}
    home = Path(registry.settings.home)
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*")
                   if p.is_file() and not p.name.startswith("registry.db") and p.parts[len(home.parts)] not in EXEMPT)
    return {"rows": counts, "files": files}


def test_no_coco_document_crashes_the_import_or_is_half_written(cli: Any, registry: Registry, tmp_path: Path) -> None:
    inputs = tmp_path / "fuzz-input"
    inputs.mkdir()
    n = itertools.count()
    seen: dict[int, int] = {0: 0, 2: 0}

    @FUZZ
    @given(data=coco_files, skip=st.booleans(), on_conflict=st.sampled_from(["error", "keep", "replace"]))
    def run(data: bytes, skip: bool, on_conflict: str) -> None:
        path = inputs / f"doc{next(n)}.json"
        path.write_bytes(data)
        before = _state(registry)
        args = ["import", "coco", path, "--project", "p", "--on-conflict", on_conflict, *(["--skip-invalid"] if skip else [])]
        result = cli.invoke(*args, catch_exceptions=True)
        out = result.output
        assert result.exit_code in (0, 2), f"exit {result.exit_code} for {data[:300]!r}:\n{out}"
        assert isinstance(result.exception, (SystemExit, type(None))), f"{result.exception!r} for {data[:300]!r}"
        assert "Traceback" not in out, out
        if result.exit_code == 2:
            assert out.startswith("error: ") and str(path) in out, out
            assert _state(registry) == before, f"refused, yet something was written: {data[:300]!r}\n{out}"
        seen[result.exit_code] += 1

    run()
    # Both outcomes were reached: the generator is not all garbage, nor all valid.
    assert seen[0] > 0 and seen[2] > 0, seen
    _report(registry, "coco", {"documents imported": seen[0], "documents refused": seen[2]})


# --- queries --------------------------------------------------------------------------------------

keys = st.one_of(st.sampled_from([*sorted(BUILTIN_FIELDS | set(ALIASES)), "attr.occluded", "attr.x", "meta.width",
                                  "color", "Tag", "CATEGORY", "a.b"]),
                 st.text(max_size=6))
operators = st.sampled_from([":", "=", "!=", ">", ">=", "<", "<=", "", ":>", "=="])
values = st.one_of(
    st.sampled_from(["car", "circle", "square", "red", "true", "false", "0", "1", "*", "mask", "polygon", "keypoints",
                     "human", "model", "train", "v1", "1e999", "-1e999", "nan", "inf", "-0", "0x10", "1_000",
                     "99999999999999999999", "-9223372036854775809", "9223372036854775807", ".5", "5.", "1e-400",
                     "%", "_", "\\", "\"", "'"]),
    st.integers().map(str), st.floats().map(repr), st.text(max_size=8),
    st.text(max_size=8).map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'))
hostile_terms = st.one_of(st.builds(lambda k, o, v: f"{k}{o}{v}", keys, operators, values),
                          st.sampled_from(["AND", "OR", "NOT", "-", "(", ")", "()", "\"", "--x", "-(", "tag:"]))
# Terms the language accepts, so most queries get past the parser to the SQL and the data.
numeric = st.one_of(st.integers(-5, 10_000).map(str), st.floats(0, 2, allow_nan=False).map(lambda f: f"{f:.3g}"))
valid_terms = st.one_of(
    st.builds("{}{}{}".format, st.sampled_from(sorted(ENUM_FIELDS)), st.just(":"),
              st.sampled_from(sorted({v for vs in ENUM_FIELDS.values() for v in vs}))),
    st.builds("{}{}{}".format, st.sampled_from(sorted(TEXT_FIELDS | set(ALIASES))), st.sampled_from([":", "!="]),
              st.sampled_from(["circle", "square", "triangle", "Circle", "red", "small", "m1", "v1", "0", "1", ".jpg",
                               "%", "_", '"a b"'])),
    st.builds("{}{}{}".format, st.sampled_from(sorted(NUMBER_FIELDS)), st.sampled_from([":", ">", ">=", "<", "<=", "!="]),
              numeric),
    st.builds("{}:{}".format, st.sampled_from(sorted(BOOL_FIELDS)), st.sampled_from(["true", "false", "1", "0"])),
    st.builds("{}{}{}".format, st.sampled_from(["attr.occluded", "attr.rotation", "color", "meta.width", "shade"]),
              st.sampled_from([":", ">", "<", "!="]), st.sampled_from(["true", "false", "red", "0", "1.5", "*"])),
)
terms = st.integers(1, 10).flatmap(lambda n: hostile_terms if n == 1 else valid_terms)
structured = (
    st.recursive(terms, lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4).map(" ".join),
        st.lists(inner, min_size=2, max_size=3).map(" OR ".join),
        inner.map(lambda q: f"-({q})"), inner.map(lambda q: f"({q})"), inner.map(lambda q: f"-{q}")), max_leaves=12)
)
# Now and then plain text, which seldom parses.
queries = st.integers(1, 8).flatmap(lambda n: st.text(max_size=40) if n == 1 else structured)


@pytest.fixture
def queried(registry: Registry, tmp_path: Path) -> Registry:
    """Twelve demo images with masks, tracks and tags: something for every field to match."""
    demo = generate_demo_dataset(tmp_path / "demo", n_images=12, seed=6).root
    import_file(registry, demo / "annotations" / "instances_default.json", images=demo / "images", project="p")
    with registry.session() as s:
        p = get_project(s, "p")
        add_tags(s, p, ["red"], query="category:circle", actor="test")
        add_tags(s, p, ["small"], query="area<200", level="object", actor="test")
    return registry


def _run(registry: Registry, q: str, level: Any) -> set[int] | DsgenError:
    try:
        with registry.session() as s:
            p = get_project(s, "p")
            found = run_query(s, p, q, level=level)
            assert count_query(s, p, q, level=level) == len(found), q
            return set(found)
    except DsgenError as exc:  # refused with a message is fine; anything else fails the test
        assert str(exc).strip(), repr(exc)
        return exc


def test_no_query_crashes_and_every_answer_agrees_with_its_negation(queried: Registry) -> None:
    everything = {level: _run(queried, "", level) for level in ("image", "object")}
    ran = {"ran": 0, "refused": 0}

    @FUZZ
    @given(q=queries, level=st.sampled_from(["image", "object"]))
    def run(q: str, level: str) -> None:
        found = _run(queried, q, level)
        if isinstance(found, DsgenError):
            ran["refused"] += 1
            return
        ran["ran"] += 1
        negated = _run(queried, f"-({q})", level)
        if isinstance(negated, set):
            assert not found & negated and found | negated == everything[level], (q, level)

    run()
    assert ran["ran"] > 0 and ran["refused"] > 0, ran
    _report(queried, "query", {"queries run": ran["ran"], "queries refused": ran["refused"]})


def _report(registry: Registry, fuzz: str, counts: dict[str, int]) -> None:
    """What was tried, for benchmarks/bench_faults.py."""
    if report := os.environ.get("DSGEN_FAULT_REPORT"):
        with open(report, "a") as f:
            f.write(json.dumps({"fuzz": fuzz, "database": registry.dialect, "examples": sum(counts.values()),
                                **counts}) + "\n")
