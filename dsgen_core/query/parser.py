"""Parsing the query language into a small typed tree; see :mod:`dsgen_core.query` for the syntax.

Every value is checked here (numbers, booleans, enumerations, operators), so a query that
parses always compiles, and every error can point at the column where it went wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Literal

from dsgen_core.errors import DsgenError

Op = Literal["=", "!=", ">", ">=", "<", "<="]
Value = str | float | bool | None

OPERATORS: frozenset[str] = frozenset({":", "=", "!=", ">", ">=", "<", "<="})
HAS_VALUES: tuple[str, ...] = ("mask", "polygon", "keypoints", "bbox", "caption", "track", "tag", "metadata",
                               "duplicate", "near_duplicate")
SOURCES: tuple[str, ...] = ("model", "human")
SPLITS: tuple[str, ...] = ("train", "val", "test", "unassigned")
TRUE_WORDS: frozenset[str] = frozenset({"true", "1"})
FALSE_WORDS: frozenset[str] = frozenset({"false", "0"})

# Builtin fields by kind; any other key is a metadata key.
TEXT_FIELDS = frozenset({"tag", "category", "track", "file", "model", "annotator", "version"})
NUMBER_FIELDS = frozenset({"width", "height", "bytes", "area", "aspect", "confidence", "id"})
INTEGER_FIELDS = frozenset({"width", "height", "bytes", "id"})
BOOL_FIELDS = frozenset({"iscrowd", "validated"})
ENUM_FIELDS: dict[str, tuple[str, ...]] = {"has": HAS_VALUES, "source": SOURCES, "split": SPLITS}
BUILTIN_FIELDS = TEXT_FIELDS | NUMBER_FIELDS | BOOL_FIELDS | frozenset(ENUM_FIELDS)
ALIASES = {"class": "category", "label": "category", "filename": "file"}

# A query is written by people (and, through the REST API, by anyone with a key): bounded, so its
# cost is too. Within these the compiled SQL stays small and linear in the query.
MAX_QUERY_CHARS = 4096
MAX_TERMS = 64
MAX_NESTING = 16  # parentheses and negations inside each other
INT_MAX = 2**63 - 1  # integer fields compare with 64-bit columns

NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
# Characters that end a key; a bare value runs to whitespace or a parenthesis.
_KEY_STOP = frozenset(" \t\r\n()\"':<>=!")
_OP_CHARS = frozenset(":<>=!")
_VALUE_STOP = frozenset(" \t\r\n()")


class QueryError(DsgenError):
    """A query that cannot be parsed; ``column`` is 1-based, ``str()`` draws a caret under it."""

    def __init__(self, message: str, query: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.query = query
        self.column = column

    def __str__(self) -> str:
        # Tabs and newlines in the query would misalign the caret.
        shown = re.sub(r"\s", " ", self.query)
        return f"{self.message} (column {self.column})\n  {shown}\n  {' ' * (self.column - 1)}^"


@dataclass(frozen=True)
class Predicate:
    """One ``key op value`` term. ``field`` is a builtin name, ``"attr"`` or ``"meta"``.

    ``key`` is the attribute or metadata key (None for builtins); ``value`` is None for
    ``key:*`` (the key exists), a float for numeric comparisons, a bool for boolean fields,
    otherwise the string as written (quotes and escapes removed).
    """

    field: str
    key: str | None
    op: Op
    value: Value
    column: int = dataclass_field(compare=False)  # where it was written; the same term elsewhere is the same term


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Predicate | Not | And | Or


@dataclass(frozen=True)
class _Token:
    kind: Literal["(", ")", "-", "OR", "AND", "term"]
    column: int
    term: Predicate | None = None


def parse(text: str) -> Node:
    """Parse a query; the empty query is ``And(())`` (everything)."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is longer than {MAX_QUERY_CHARS} characters ({len(text)})", text[:80], 1)
    if (nul := text.find("\x00")) >= 0:  # no stored text can hold one, and PostgreSQL refuses it as a parameter
        raise QueryError("the query contains a NUL character", text.replace("\x00", " "), nul + 1)
    tokens = _tokenize(text)
    terms = [t for t in tokens if t.kind == "term"]
    if len(terms) > MAX_TERMS:
        raise QueryError(f"more than {MAX_TERMS} terms ({len(terms)}); group values instead, e.g. "
                         "category:car OR category:bus, or tag the images first", text, terms[MAX_TERMS].column)
    return _Parser(text, tokens).parse()


# --------------------------------------------------------------------------- tokens


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token(ch, i + 1))  # type: ignore[arg-type]
            i += 1
        elif ch == "-":
            if i + 1 >= n or text[i + 1].isspace() or text[i + 1] == ")":
                raise QueryError("'-' must be followed directly by a term or '('", text, i + 1)
            tokens.append(_Token("-", i + 1))
            i += 1
        else:
            token, i = _read_term(text, i)
            tokens.append(token)
    return tokens


def _read_term(text: str, start: int) -> tuple[_Token, int]:
    n = len(text)
    i = start
    while i < n and text[i] not in _KEY_STOP:
        i += 1
    key = text[start:i]
    if i >= n or text[i] not in _OP_CHARS:
        if key in ("OR", "AND"):
            return _Token(key, start + 1), i  # type: ignore[arg-type]
        if i < n and text[i] in "\"'":
            raise QueryError("a quoted value needs a key before it, e.g. tag:\"a b\"", text, i + 1)
        hint = " (OR and AND are upper case)" if key.upper() in ("OR", "AND") else ""
        raise QueryError(f"expected key:value, key>number, ... after {key!r}{hint}", text, start + 1)
    if not key:
        raise QueryError("missing key before the operator", text, i + 1)
    op_start = i
    while i < n and text[i] in _OP_CHARS:
        i += 1
    op = text[op_start:i]
    if op not in OPERATORS:
        raise QueryError(f"unknown operator {op!r} (use one of : = != > >= < <=)", text, op_start + 1)
    value_column = i + 1
    if i < n and text[i] in "\"'":
        value, i = _read_quoted(text, i)
        quoted = True
    else:
        v_start = i
        while i < n and text[i] not in _VALUE_STOP:
            i += 1
        value = text[v_start:i]
        quoted = False
    if value == "":
        raise QueryError(f"empty value after {key}{op}", text, value_column)
    term = _resolve(text, key, op, value, quoted, start + 1, value_column)
    return _Token("term", start + 1, term), i


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif ch == quote:
            i += 1
            if i < len(text) and text[i] not in _VALUE_STOP:
                raise QueryError("unexpected character after a closing quote", text, i + 1)
            return "".join(out), i
        else:
            out.append(ch)
            i += 1
    raise QueryError("unterminated quote", text, start + 1)


# --------------------------------------------------------------------------- fields and values


def _resolve(text: str, raw_key: str, raw_op: str, value: str, quoted: bool, column: int, value_column: int) -> Predicate:
    """Turn ``key op value`` into a typed predicate, validating the value for its field."""

    def fail(message: str, at: int = value_column) -> QueryError:
        return QueryError(message, text, at)

    op: Op = "=" if raw_op == ":" else raw_op  # type: ignore[assignment]
    op_column = column + len(raw_key)
    lowered = raw_key.lower()
    field = ALIASES.get(lowered, lowered)
    wildcard = value == "*" and not quoted and raw_op == ":"

    if lowered.startswith(("attr.", "meta.")):
        field, key = lowered[:4], raw_key[5:]
        if not key:
            raise fail(f"missing key after {raw_key!r}", column)
    elif field in BUILTIN_FIELDS:
        key = None
    else:
        field, key = "meta", raw_key

    if field in ("attr", "meta"):
        if wildcard:
            return Predicate(field, key, "=", None, column)
        if op in ("=", "!="):
            return Predicate(field, key, op, value, column)
        return Predicate(field, key, op, _number(value, fail, f"{raw_key}{raw_op}"), column)

    if wildcard:
        raise fail(f"'*' (has the key) works on metadata and attr.* keys, not on {field!r}")
    if field in NUMBER_FIELDS:
        number = _number(value, fail, f"{raw_key}{raw_op}")
        if field == "id" and not _INTEGER.fullmatch(value):
            raise fail(f"id needs an integer, got {value!r}")
        if field in INTEGER_FIELDS and abs(number) > INT_MAX:
            raise fail(f"{field} {value} is out of range (at most {INT_MAX})")
        return Predicate(field, None, op, number, column)
    if op != "=":
        raise fail(f"operator {raw_op!r} does not apply to {field}: use {raw_key}:VALUE, or -{raw_key}:VALUE to exclude", op_column)
    if field in BOOL_FIELDS:
        word = value.lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise fail(f"{field} needs true, false, 1 or 0, got {value!r}")
        return Predicate(field, None, "=", word in TRUE_WORDS, column)
    if field in ENUM_FIELDS:
        allowed = ENUM_FIELDS[field]
        if value.lower() not in allowed:
            raise fail(f"unknown {field}: value {value!r} (expected one of {', '.join(allowed)})")
        return Predicate(field, None, "=", value.lower(), column)
    return Predicate(field, None, "=", value, column)


def _number(value: str, fail: Callable[[str], QueryError], what: str) -> float:
    if not NUMBER_RE.fullmatch(value):
        raise fail(f"{what} needs a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise fail(f"{what} needs a finite number, got {value!r}")
    return number


# --------------------------------------------------------------------------- grammar


class _Parser:
    """Recursive descent: or := and ('OR' and)* ; and := unary+ ; unary := '-' unary | '(' or ')' | term."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.nesting = 0

    def parse(self) -> Node:
        if not self.tokens:
            return And(())
        node = self._or()
        if self.pos < len(self.tokens):
            tok = self.tokens[self.pos]
            raise QueryError("unbalanced parenthesis: ')' has no matching '('", self.text, tok.column)
        return node

    def _peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _end_column(self) -> int:
        return len(self.text.rstrip()) + 1

    def _or(self) -> Node:
        children = [self._and()]
        while (tok := self._peek()) is not None and tok.kind == "OR":
            self.pos += 1
            nxt = self._peek()
            if nxt is None or nxt.kind in (")", "OR"):
                raise QueryError("OR needs a term on both sides", self.text, tok.column)
            children.append(self._and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def _and(self) -> Node:
        children: list[Node] = []
        while (tok := self._peek()) is not None and tok.kind not in (")", "OR"):
            if tok.kind == "AND":
                nxt = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
                if not children or nxt is None or nxt.kind in (")", "OR", "AND"):
                    raise QueryError("AND needs a term on both sides", self.text, tok.column)
                self.pos += 1
                continue
            children.append(self._unary())
        if not children:
            tok = self._peek()
            if tok is None:
                raise QueryError("expected a term", self.text, self._end_column())
            if tok.kind == "OR":
                raise QueryError("OR needs a term on both sides", self.text, tok.column)
            if self.depth == 0:
                raise QueryError("unbalanced parenthesis: ')' has no matching '('", self.text, tok.column)
            raise QueryError("expected a term before ')'", self.text, tok.column)
        return children[0] if len(children) == 1 else And(tuple(children))

    def _unary(self) -> Node:
        tok = self.tokens[self.pos]
        self.pos += 1
        if tok.kind in ("-", "("):
            self.nesting += 1
            if self.nesting > MAX_NESTING:
                raise QueryError(f"more than {MAX_NESTING} parentheses and negations inside each other", self.text,
                                 tok.column)
            try:
                return self._nested(tok)
            finally:
                self.nesting -= 1
        assert tok.term is not None
        return tok.term

    def _nested(self, tok: _Token) -> Node:
        if tok.kind == "-":
            nxt = self._peek()
            if nxt is None or nxt.kind not in ("-", "(", "term"):
                raise QueryError("'-' must be followed directly by a term or '('", self.text, tok.column)
            return Not(self._unary())
        if tok.kind == "(":
            nxt = self._peek()
            if nxt is not None and nxt.kind == ")":
                raise QueryError("empty parentheses", self.text, tok.column)
            self.depth += 1
            node = self._or()
            self.depth -= 1
            close = self._peek()
            if close is None or close.kind != ")":
                raise QueryError("unbalanced parenthesis: '(' is never closed", self.text, tok.column)
            self.pos += 1
            return node
        raise AssertionError(f"not a nesting token: {tok.kind}")
