"""The query syntax: precedence, quoting, negation, typed values and error columns (no database)."""

from __future__ import annotations

import pytest

from dsgen_core.errors import DsgenError
from dsgen_core.query import And, Not, Or, Predicate, QueryError, parse


def P(field: str, value: object, op: str = "=", key: str | None = None, column: int = 1) -> Predicate:  # noqa: N802
    return Predicate(field, key, op, value, column)  # type: ignore[arg-type]


def test_empty_query_is_everything() -> None:
    assert parse("") == And(())
    assert parse("  \t ") == And(())


def test_seed_example() -> None:
    assert parse("tag:car color:red width>1024") == And((
        P("tag", "car"),
        P("meta", "red", key="color", column=9),
        P("width", 1024.0, op=">", column=19),
    ))


def test_and_binds_tighter_than_or() -> None:
    assert parse("tag:a tag:b OR tag:c") == Or((
        And((P("tag", "a"), P("tag", "b", column=7))),
        P("tag", "c", column=16),
    ))
    assert parse("tag:a OR tag:b tag:c") == Or((
        P("tag", "a"),
        And((P("tag", "b", column=10), P("tag", "c", column=16))),
    ))
    assert parse("tag:a AND tag:b") == And((P("tag", "a"), P("tag", "b", column=11)))


def test_parentheses_and_negation() -> None:
    assert parse("(tag:a OR tag:b) -tag:c") == And((
        Or((P("tag", "a", column=2), P("tag", "b", column=11))),
        Not(P("tag", "c", column=19)),
    ))
    assert parse("-(tag:a OR tag:b)") == Not(Or((P("tag", "a", column=3), P("tag", "b", column=12))))
    assert parse("--tag:a") == Not(Not(P("tag", "a", column=3)))
    assert parse("((tag:a))") == P("tag", "a", column=3)


def test_quoting_and_escapes() -> None:
    assert parse('tag:"with spaces"') == P("tag", "with spaces")
    assert parse("tag:'single'") == P("tag", "single")
    assert parse(r'tag:"say \"hi\""') == P("tag", 'say "hi"')
    assert parse(r"tag:'it\'s'") == P("tag", "it's")
    assert parse(r'tag:"back\\slash"') == P("tag", "back\\slash")
    assert parse('tag:"x\' OR 1=1 --"') == P("tag", "x' OR 1=1 --")
    assert parse('tag:"(not a group)"') == P("tag", "(not a group)")
    assert parse('(tag:"a b")') == P("tag", "a b", column=2)
    # OR inside quotes is a value, not the keyword.
    assert parse('tag:"OR"') == P("tag", "OR")


def test_operators_and_values() -> None:
    assert parse("width>=640") == P("width", 640.0, op=">=")
    assert parse("height<=480") == P("height", 480.0, op="<=")
    assert parse("width=640") == parse("width:640") == P("width", 640.0)
    assert parse("width!=640") == P("width", 640.0, op="!=")
    assert parse("confidence<.5") == P("confidence", 0.5, op="<")
    assert parse("score>-1.5e2") == P("meta", -150.0, op=">", key="score")
    assert parse("time:12:30") == P("meta", "12:30", key="time")  # only the first ':' is the operator
    assert parse("iscrowd:TRUE") == P("iscrowd", True)
    assert parse("validated:0") == P("validated", False)
    assert parse("source:Model") == P("source", "model")
    assert parse("has:polygon") == P("has", "polygon")
    assert parse("split:train") == P("split", "train")
    assert parse("version:v3") == P("version", "v3")


def test_fields_aliases_and_keys() -> None:
    assert parse("class:person") == parse("label:person") == parse("Category:person") == P("category", "person")
    assert parse("filename:a.jpg") == P("file", "a.jpg")
    assert parse("attr.Occluded:true") == P("attr", "true", key="Occluded")
    assert parse("attr.rotation>10") == P("attr", 10.0, op=">", key="rotation")
    assert parse("color:*") == P("meta", None, key="color")
    assert parse('color:"*"') == P("meta", "*", key="color")  # a quoted star is a value
    assert parse("attr.track_id:*") == P("attr", None, key="track_id")
    assert parse("meta.width:5") == P("meta", "5", key="width")
    assert parse("camera-model:x") == P("meta", "x", key="camera-model")
    assert parse("id:12") == P("id", 12.0)


@pytest.mark.parametrize(
    ("query", "column", "message"),
    [
        ("width=>5", 6, "unknown operator '=>'"),
        ("width<>5", 6, "unknown operator '<>'"),
        ("tag:car width==5", 14, "unknown operator '=='"),
        ("(tag:a", 1, "'(' is never closed"),
        ("tag:a (tag:b OR (tag:c)", 7, "'(' is never closed"),
        ("tag:a)", 6, "')' has no matching '('"),
        (")", 1, "')' has no matching '('"),
        ("()", 1, "empty parentheses"),
        ("tag:", 5, "empty value"),
        ('tag:""', 5, "empty value"),
        ("tag:a color:", 13, "empty value"),
        ("width>abc", 7, "needs a number"),
        ("score>high", 7, "needs a number"),
        ("attr.rotation<=x", 16, "needs a number"),
        ("width>nan", 7, "needs a number"),
        ("id:1.5", 4, "id needs an integer"),
        ("has:wings", 5, "unknown has: value 'wings'"),
        ("source:robot", 8, "unknown source: value"),
        ("split:holdout", 7, "unknown split: value"),
        ("iscrowd:maybe", 9, "true, false, 1 or 0"),
        ("tag>5", 4, "does not apply to tag"),
        ("category!=car", 9, "does not apply to category"),
        ("width:*", 7, "'*'"),
        ("car", 1, "expected key:value"),
        ("tag:a or tag:b", 7, "upper case"),
        ('"car"', 1, "needs a key"),
        (":car", 1, "missing key"),
        ('tag:"abc', 5, "unterminated quote"),
        ('tag:"a"b', 8, "after a closing quote"),
        ("OR tag:a", 1, "OR needs a term on both sides"),
        ("tag:a OR", 7, "OR needs a term on both sides"),
        ("tag:a OR OR tag:b", 7, "OR needs a term on both sides"),
        ("(tag:a OR)", 8, "OR needs a term on both sides"),
        ("AND tag:a", 1, "AND needs a term on both sides"),
        ("- tag:a", 1, "'-' must be followed"),
        ("tag:a -", 7, "'-' must be followed"),
        ("-OR tag:a", 1, "'-' must be followed"),
        ("attr.:x", 1, "missing key"),
    ],
)
def test_errors_point_at_the_column(query: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as err:
        parse(query)
    assert err.value.column == column, str(err.value)
    assert err.value.query == query
    assert message in err.value.message
    lines = str(err.value).splitlines()
    # The caret sits under the column, in the copy of the query shown above it.
    assert lines[1] == f"  {query}"
    assert lines[2] == " " * (column + 1) + "^"


def test_query_error_is_a_dsgen_error() -> None:
    with pytest.raises(DsgenError):
        parse("width>>1")


def test_caret_stays_aligned_with_tabs() -> None:
    with pytest.raises(QueryError) as err:
        parse("tag:a\twidth>>1")
    lines = str(err.value).splitlines()
    assert lines[1] == "  tag:a width>>1"
    assert lines[2].index("^") == lines[1].index(">>")
