"""Compiling a parsed query into one SQLAlchemy ``Select`` of asset ids or annotation ids.

Every value travels as a bound parameter. Predicates compile to ``id IN (SELECT ...)`` forms
that the schema's indexes serve: ``asset_tags(tag, asset_id)``, ``asset_metadata(key, ...)``,
``annotations(label_class_id, asset_id)``, ``annotations(confidence)``, ``assets(width)``; the
project filter is marked likely() for SQLite so it never displaces them (see ``_likely``).

Image level, the same-object rule: inside one AND, consecutive *positive* object predicates
(category, confidence, area, attr.*, iscrowd, source, has:mask, ...) become one
``Asset.id IN (SELECT asset_id FROM annotations WHERE p1 AND p2 ...)``, so they must hold for
the same object. A second category predicate starts a new object, and anything else in
between (an image predicate, a negated term, a parenthesised group) ends the run. So
``category:car confidence<0.5`` is "has a car detected with low confidence" while
``category:car category:person`` is "has a car and has a person". A negated object predicate
is the complement at image level: ``-category:car`` is "has no car".

Negation is set complement at both levels: ``NOT coalesce(p, false)``, so a NULL column
(an image without a width) counts as "does not match" and lands in the negated result.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    CompoundSelect,
    Float,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    intersect,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from dsgen_core.errors import DsgenError
from dsgen_core.query.parser import FALSE_WORDS, NUMBER_RE, TRUE_WORDS, And, Node, Not, Or, Predicate, parse
from dsgen_core.registry.schema import (
    Annotation,
    AnnotationMetadata,
    AnnotationTag,
    Asset,
    AssetMetadata,
    AssetTag,
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAsset,
    LabelClass,
    ModelVersion,
    NearDuplicate,
    Track,
)

Level = Literal["image", "object"]

# Fields that describe the image itself; at image level every other field is about an object.
IMAGE_FIELDS = frozenset({"tag", "meta", "width", "height", "bytes", "aspect", "file", "id", "split", "version"})
IMAGE_HAS = frozenset({"tag", "metadata", "duplicate", "near_duplicate"})
# Columns of the image at both levels (object level joins the object's asset).
ASSET_FIELDS = frozenset({"width", "height", "bytes", "aspect", "file"})

_COMPARE = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
}


# --------------------------------------------------------------------------- dialect-specific SQL


class _synonym_match(FunctionElement[bool]):
    """Some string of the JSON array (label class synonyms), lower-cased, equals the lower-case needle."""

    type = Boolean()
    inherit_cache = True
    name = "synonym_match"


@compiles(_synonym_match, "sqlite")
def _synonym_match_sqlite(element: _synonym_match, compiler: SQLCompiler, **kw: Any) -> str:
    array, needle = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXISTS (SELECT 1 FROM json_each({array}) AS syn WHERE lower(syn.value) = {needle})"


@compiles(_synonym_match, "postgresql")
def _synonym_match_pg(element: _synonym_match, compiler: SQLCompiler, **kw: Any) -> str:
    # Containment on the lower-cased document needs no array check: 'null' @> '[..]' is false.
    array, needle = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST(lower(CAST({array} AS TEXT)) AS JSONB) @> jsonb_build_array(CAST({needle} AS TEXT)))"


class _json_is_number(FunctionElement[bool]):
    """The JSON document's top-level ``key`` holds a number (not a string, bool or null)."""

    type = Boolean()
    inherit_cache = True
    name = "json_is_number"


@compiles(_json_is_number, "sqlite")
def _json_is_number_sqlite(element: _json_is_number, compiler: SQLCompiler, **kw: Any) -> str:
    doc, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"(json_type({doc}, {key}) IN ('integer', 'real'))"


@compiles(_json_is_number, "postgresql")
def _json_is_number_pg(element: _json_is_number, compiler: SQLCompiler, **kw: Any) -> str:
    doc, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"(jsonb_typeof({doc} -> {key}) = 'number')"


class _likely(FunctionElement[bool]):
    """A condition true for most rows: the project filter. Without ANALYZE statistics SQLite
    guesses an equality on an index is selective and would walk every image of the project
    through ix_assets_project_file_name instead of the tag/width/confidence index; likely()
    tells it otherwise. Other databases plan from real statistics and get the bare condition."""

    type = Boolean()
    inherit_cache = True
    name = "likely"


@compiles(_likely)
def _likely_default(element: _likely, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_likely, "sqlite")
def _likely_sqlite(element: _likely, compiler: SQLCompiler, **kw: Any) -> str:
    return f"likely({compiler.process(element.clauses, **kw)})"


def _json_key(key: str) -> ColumnElement[Any]:
    # JSONIndexType renders '$."key"' on SQLite and the bare key on PostgreSQL.
    return bindparam(None, key, type_=JSON.JSONIndexType())


# --------------------------------------------------------------------------- public entry points


def compile_query(text: str, *, project_id: int, level: Level = "image", session: Session | None = None) -> Select[Any]:
    """One-column select of the matching ``Asset.id`` (image level) or ``Annotation.id`` (object level).

    Unordered, so it can be used as a subquery: ``Asset.id.in_(compile_query(...))``. With a
    ``session``, class names are looked up once, now, and the SQL names the class ids: the
    database then reads each class's objects from its index instead of joining the class table
    in every branch of the query.
    """
    return _select(parse(text), project_id=project_id, level=level, session=session)


def _select(node: Node, *, project_id: int, level: Level, session: Session | None = None) -> Select[Any]:
    if level == "image":
        # A video's own file is a source, not a sample: its frames are the images (``dsgen import video``).
        stmt = select(Asset.id).where(Asset.asset_type != "video")
    elif level == "object":
        stmt = select(Annotation.id).join(Asset, Asset.id == Annotation.asset_id)
    else:
        raise DsgenError(f"unknown query level {level!r}: expected 'image' or 'object'")
    stmt = stmt.where(_likely(Asset.project_id == project_id), Asset.deleted_at.is_(None))
    if node != And(()):
        compiler = _Compiler(project_id, level, session)
        stmt = stmt.where(compiler.sql(compiler.node(node)))
    return stmt


# --------------------------------------------------------------------------- set membership


@dataclass(frozen=True)
class _In:
    """``column IN (rows)``, or its complement, kept apart from other SQL until its AND or OR is built.

    An AND of memberships of one column becomes one ``IN (a INTERSECT b ...)``, an OR one
    ``IN (a UNION b ...)``: PostgreSQL would otherwise plan 64 semi-joins as one join problem
    (seconds and hundreds of MB of planner memory for 64 terms) where a set operation plans each
    branch alone, in time linear in the query.
    """

    column: Any  # an ORM attribute
    rows: Select[Any] | CompoundSelect | frozenset[int]  # ids known already: set operations happen here
    negated: bool = False

    @property
    def key(self) -> tuple[str, bool]:
        return str(self.column), self.negated


@dataclass(frozen=True)
class _AnyOf:
    """Memberships ORed (an object's own tag or its image's), or with ``negated`` none of them: an
    OR of these, or an AND of negated ones, flattens into one list that merges per column."""

    items: tuple[_In, ...]
    negated: bool = False


_Cond = ColumnElement[bool] | _In | _AnyOf


def _negate(cond: _Cond) -> _Cond:
    if isinstance(cond, _In):
        return _In(cond.column, cond.rows, not cond.negated)
    if isinstance(cond, _AnyOf):
        return _AnyOf(cond.items, not cond.negated)
    return _complement(cond)


def _flatten(conds: list[_Cond], *, conjunction: bool, dialect: str | None,
             level: Level) -> list[ColumnElement[bool] | _In]:
    """An OR takes in the items of a (positive) any-of; an AND the negated items of a negated one."""
    out: list[ColumnElement[bool] | _In] = []
    for c in conds:
        if isinstance(c, _AnyOf):
            if c.negated == conjunction:
                out.extend(_In(i.column, i.rows, not i.negated) if conjunction else i for i in c.items)
            else:
                out.append(_sql(c, dialect, level))
        else:
            out.append(c)
    return out


def _sql(cond: _Cond, dialect: str | None = None, level: Level = "image") -> ColumnElement[bool]:
    if isinstance(cond, _AnyOf):
        if cond.negated:
            return and_(*(_sql(_In(i.column, i.rows, not i.negated), dialect, level) for i in cond.items))
        return or_(*(_sql(i, dialect, level) for i in cond.items))
    if not isinstance(cond, _In):
        return cond
    if isinstance(cond.rows, frozenset):
        column = cond.column
        if dialect == "sqlite" and level == "object" and len(cond.rows) > 8:
            # Probing the class index once per image and class (64 classes x 100,000 images) is
            # SQLite's choice and 4x slower than reading each image's objects: `+ 0` hides the index.
            column = column + 0
        # Integers from the registry itself, written out: an expanding parameter cannot be
        # compiled ahead (iter_rows, EXPLAIN), and a list of literals is what both databases
        # turn into a hashed or sorted lookup.
        member = column.in_([literal_column(str(int(i))) for i in sorted(cond.rows)]) if cond.rows else false()
    elif dialect == "postgresql" and cond.negated:
        # NOT IN is a SubPlan that PostgreSQL hashes only when the rows fit in work_mem; otherwise
        # it re-reads them for every outer row (two negated classes at 1M objects ran past 60 s).
        # NOT EXISTS is planned as a spilling anti-join. A positive IN stays: a semi-join at the
        # top, a hashed SubPlan under OR (3x faster than EXISTS's per-row probes at 1M objects).
        # SQLite builds a temporary index of IN's rows once, whatever the context: IN suits it.
        rows = cond.rows
        correlated: Select[Any]
        if isinstance(rows, Select) and not rows._group_by_clauses:
            correlated = rows.with_only_columns(literal_column("1"), maintain_column_froms=True).where(
                rows.selected_columns[0] == cond.column)
        else:
            sub = rows.subquery()
            correlated = select(literal_column("1")).select_from(sub).where(sub.c[0] == cond.column)
        return not_(exists(correlated))
    else:
        member = cond.column.in_(cond.rows)
    return _complement(member) if cond.negated else member


def _empty(cond: ColumnElement[bool] | _In, *, negated: bool) -> bool:
    """A membership of no ids known to be empty (always false; with ``negated``, always true)."""
    return isinstance(cond, _In) and cond.rows == frozenset() and cond.negated == negated


def _single(rows: Select[Any] | CompoundSelect) -> Select[Any]:
    """A plain SELECT (SQLite cannot nest a compound select inside another without a subquery)."""
    if isinstance(rows, CompoundSelect):
        sub = rows.subquery()
        return select(sub.c[0])
    return rows


def _combine(conds: list[ColumnElement[bool] | _In], *, conjunction: bool) -> list[ColumnElement[bool] | _In]:
    """Memberships of one column merged: AND intersects what must hold and unions what must not; OR the reverse."""
    groups: dict[tuple[str, bool, bool], list[_In]] = {}
    out: list[ColumnElement[bool] | _In] = []
    for c in conds:
        if isinstance(c, _In):
            key = (*c.key, isinstance(c.rows, frozenset))
            if key not in groups:
                groups[key] = []
                out.append(c)  # its place, filled below
            groups[key].append(c)
        else:
            out.append(c)
    for i, c in enumerate(out):
        if not isinstance(c, _In) or len(members := groups[(*c.key, isinstance(c.rows, frozenset))]) < 2:
            continue
        meet = conjunction != c.negated
        if isinstance(c.rows, frozenset):
            sets = [m.rows for m in members if isinstance(m.rows, frozenset)]
            out[i] = _In(c.column, frozenset.intersection(*sets) if meet else frozenset.union(*sets), c.negated)
        else:
            selects = [_single(m.rows) for m in members if not isinstance(m.rows, frozenset)]
            out[i] = _In(c.column, intersect(*selects) if meet else _union(selects), c.negated)
    return out


def _union(selects: list[Select[Any]]) -> Select[Any] | CompoundSelect:
    """A UNION; branches that read the same column of the same table become one scan with their
    conditions ORed (64 alternatives over the objects read them once, not 64 times)."""
    by_source: dict[tuple[str, str], list[Select[Any]]] = {}
    for sel in selects:
        # One table (no join, no grouping): the FROM is the selected column's table.
        simple = (sel.whereclause is not None and not sel._setup_joins and not sel._group_by_clauses
                  and not sel._having_criteria)
        source = ("table", str(sel.selected_columns[0])) if simple else ("own", str(id(sel)))
        by_source.setdefault(source, []).append(sel)
    folded = [group[0] if len(group) == 1 else
              select(group[0].selected_columns[0]).where(or_(*(g.whereclause for g in group if g.whereclause is not None)))
              for group in by_source.values()]
    return folded[0] if len(folded) == 1 else union(*folded)


# --------------------------------------------------------------------------- the compiler


class _Compiler:
    def __init__(self, project_id: int, level: Level, session: Session | None = None) -> None:
        self.project_id = project_id
        self.level = level
        self.session = session
        self.dialect = session.get_bind().dialect.name if session is not None else None
        self._class_ids: dict[str, set[int]] | None = None
        self._object_keys: dict[str, bool] = {}

    def sql(self, cond: _Cond) -> ColumnElement[bool]:
        return _sql(cond, self.dialect, self.level)

    def _flatten(self, conds: list[_Cond], *, conjunction: bool) -> list[ColumnElement[bool] | _In]:
        return _flatten(conds, conjunction=conjunction, dialect=self.dialect, level=self.level)

    def node(self, node: Node) -> _Cond:
        if isinstance(node, Predicate):
            return self._and((node,))
        if isinstance(node, Not):
            return _negate(self.node(node.child))
        if isinstance(node, Or):
            return self._or(node.children)
        return self._and(node.children)

    def _or(self, children: tuple[Node, ...]) -> _Cond:
        """Alternatives; ``category:a OR category:b OR ...`` becomes one lookup of all the names, so
        the SQL grows with the number of names, not one subquery (one hash of every object) per name."""
        categories = [c for c in children if isinstance(c, Predicate) and c.field == "category"]
        conds: list[_Cond] = []
        by_key: dict[str, list[Predicate]] = defaultdict(list)
        for c in dict.fromkeys(children):
            if isinstance(c, Predicate) and c.field == "attr" and c.op == "=" and c.value is not None:
                by_key[str(c.key)].append(c)
        for key, same in by_key.items():
            if len(same) > 1:
                any_value = _attr_any_value(key, [str(c.value) for c in same])
                conds.append(_In(Asset.id, select(Annotation.asset_id).where(any_value))
                             if self.level == "image" else any_value)
                children = tuple(c for c in children if c not in same)
        if len(categories) >= 2:
            any_class = _In(Annotation.label_class_id, self._label_classes(*(str(c.value) for c in categories)))
            conds.append(_In(Asset.id, select(Annotation.asset_id).where(self.sql(any_class)))
                         if self.level == "image" else any_class)
        else:
            categories = []
        # A repeated alternative adds nothing but cost.
        conds += [self.node(c) for c in dict.fromkeys(children) if c not in categories]
        if len(conds) == 1:
            return conds[0]
        merged = _combine(self._flatten(conds, conjunction=False), conjunction=False)
        if any(_empty(c, negated=True) for c in merged):
            return true()
        merged = [c for c in merged if not _empty(c, negated=False)]
        return merged[0] if len(merged) == 1 else or_(*map(self.sql, merged)) if merged else false()

    def _is_object(self, node: Node) -> bool:
        """An object predicate at image level (grouped into one EXISTS per object)."""
        if self.level != "image" or not isinstance(node, Predicate):
            return False
        if node.field == "has":
            return node.value not in IMAGE_HAS
        return node.field not in IMAGE_FIELDS

    def _and(self, children: tuple[Node, ...]) -> _Cond:
        # version:v3 split:train in one AND means "in the train split of v3", not two memberships.
        versions = [c for c in children if isinstance(c, Predicate) and c.field == "version"]
        splits = [str(c.value) for c in children if isinstance(c, Predicate) and c.field == "split"]
        conds: list[_Cond] = []
        group: list[Predicate] = []

        def flush() -> None:
            if group:
                same_object = _combine(self._flatten([self._object(p) for p in group], conjunction=True),
                                       conjunction=True)
                conds.append(_In(Asset.id, select(Annotation.asset_id).where(*map(self.sql, same_object))))
                group.clear()

        seen: set[Node] = set()
        for child in children:
            if self._is_object(child):
                assert isinstance(child, Predicate)
                if child in group:  # the same condition on the same object again
                    continue
                if child.field == "category" and any(p.field == "category" for p in group):
                    flush()
                group.append(child)
                continue
            if child in seen:  # an image condition (or group) already required
                continue
            seen.add(child)
            flush()
            if not isinstance(child, Predicate):
                conds.append(self.node(child))
            elif child.field == "version":
                conds.append(self._membership(str(child.value), splits))
            elif child.field == "split":
                if not versions:
                    conds.append(self._membership(None, [str(child.value)]))
            elif self.level == "image" or child.field in ASSET_FIELDS:
                conds.append(self._image(child))
            else:
                conds.append(self._object(child))
        flush()
        if len(conds) == 1:  # kept whole, so an enclosing OR or NOT can still merge it
            return conds[0]
        merged = _combine(self._flatten(conds, conjunction=True), conjunction=True)
        if any(_empty(c, negated=False) for c in merged):  # an object of two classes, say: nothing matches
            return false()
        merged = [c for c in merged if not _empty(c, negated=True)]
        return merged[0] if len(merged) == 1 else and_(*map(self.sql, merged)) if merged else true()

    # -- image predicates (columns of Asset; at object level Asset is joined)

    def _image(self, p: Predicate) -> _Cond:
        match p.field:
            case "tag":
                return _In(Asset.id, select(AssetTag.asset_id).where(AssetTag.tag == p.value))
            case "meta":
                return _In(Asset.id, select(AssetMetadata.asset_id).where(_meta_match(AssetMetadata, p)))
            case "width" | "height" | "bytes" | "id":
                return _compare_int(getattr(Asset, p.field), p.op, float(p.value))  # type: ignore[arg-type]
            case "aspect":
                return _COMPARE[p.op](cast(Asset.width, Float) / cast(func.nullif(Asset.height, 0), Float), p.value)
            case "file":
                if self.dialect == "sqlite":
                    # SQLite's LIKE already ignores ASCII case, as its lower() does (and no other):
                    # the same matches without lower() on both sides, 3x faster.
                    escaped = str(p.value).replace("/", "//").replace("%", "/%").replace("_", "/_")
                    return Asset.file_name.like(f"%{escaped}%", escape="/")
                return Asset.file_name.icontains(str(p.value), autoescape=True)
            case "has" if p.value == "tag":
                return _In(Asset.id, select(AssetTag.asset_id))
            case "has" if p.value == "metadata":
                return _In(Asset.id, select(AssetMetadata.asset_id))
            case "has" if p.value == "duplicate":
                return self._duplicate()
            case "has" if p.value == "near_duplicate":
                return self._near_duplicate()
        raise AssertionError(f"not an image field: {p.field}")

    def _near_duplicate(self) -> _Cond:
        """In a near-duplicate group of the last ``dsgen duplicates`` run (any image-level embedding version)."""
        return _In(Asset.id, select(NearDuplicate.asset_id).where(NearDuplicate.project_id == self.project_id))

    def _duplicate(self) -> _Cond:
        """Another image of the project has exactly these bytes (a fact about content, not identity)."""
        shared = (select(Asset.sha256).where(Asset.project_id == self.project_id, Asset.sha256.is_not(None),
                                             Asset.deleted_at.is_(None))
                  .group_by(Asset.sha256).having(func.count() > 1))
        return _In(Asset.sha256, shared)

    def _membership(self, version_tag: str | None, splits: list[str]) -> _Cond:
        stmt = (
            select(DatasetVersionAsset.asset_id)
            .join(DatasetVersion, DatasetVersion.id == DatasetVersionAsset.dataset_version_id)
            .where(DatasetVersion.project_id == self.project_id)
        )
        if version_tag is not None:
            stmt = stmt.where(DatasetVersion.version_tag == version_tag)
        if splits:
            stmt = stmt.join(DatasetSplit, DatasetSplit.id == DatasetVersionAsset.split_id)
            stmt = stmt.where(*(DatasetSplit.split == s for s in splits))
        return _In(Asset.id, stmt)

    # -- object predicates (columns of Annotation)

    def _object(self, p: Predicate) -> _Cond:
        match p.field:
            case "category":
                return _In(Annotation.label_class_id, self._label_classes(str(p.value)))
            case "confidence":
                return _COMPARE[p.op](Annotation.confidence, p.value)
            case "area":
                return _COMPARE[p.op](func.coalesce(Annotation.area, Annotation.bbox_w * Annotation.bbox_h), p.value)
            case "source":
                return Annotation.source == p.value
            case "iscrowd":
                return Annotation.iscrowd == p.value
            case "validated":
                return Annotation.is_validated == p.value
            case "annotator":
                return Annotation.annotator == p.value
            case "model":
                return _In(Annotation.model_version_id, select(ModelVersion.id).where(ModelVersion.human_id == p.value))
            case "track":
                return _In(Annotation.track_id,
                           select(Track.id).where(Track.project_id == self.project_id, Track.external_id == p.value))
            case "attr":
                return _attr_match(str(p.key), p)
            case "has":
                return self._object_has(str(p.value))
            # Image fields with an object meaning of their own (object level only).
            case "id":
                return _compare_int(Annotation.id, p.op, float(p.value))  # type: ignore[arg-type]
            case "tag":
                return _AnyOf((_In(Annotation.id, select(AnnotationTag.annotation_id).where(AnnotationTag.tag == p.value)),
                               _In(Annotation.asset_id, select(AssetTag.asset_id).where(AssetTag.tag == p.value))))
            case "meta":
                return self._object_meta(p)
        raise AssertionError(f"not an object field: {p.field}")

    def _object_has(self, what: str) -> _Cond:
        match what:
            case "mask":
                return Annotation.mask_uri.is_not(None)
            case "polygon":
                return _json_nonempty(Annotation.polygon)
            case "keypoints":
                # Labelled ones: a crowd region's all-zero keypoints are none.
                return and_(_json_nonempty(Annotation.keypoints), Annotation.num_keypoints > 0)
            case "bbox":
                return Annotation.bbox_w.is_not(None)
            case "caption":
                return and_(Annotation.caption.is_not(None), Annotation.caption != "")
            case "track":
                return Annotation.track_id.is_not(None)
            case "duplicate":
                return self._duplicate()
            case "near_duplicate":
                return self._near_duplicate()
            case "tag":
                return _AnyOf((_In(Annotation.id, select(AnnotationTag.annotation_id)),
                               _In(Annotation.asset_id, select(AssetTag.asset_id))))
            case "metadata":
                return _AnyOf((_In(Annotation.id, select(AnnotationMetadata.annotation_id)),
                               _In(Annotation.asset_id, select(AssetMetadata.asset_id))))
        raise AssertionError(f"not a has: value: {what}")

    def _object_meta(self, p: Predicate) -> _Cond:
        """The object's own value wins; an object without the key falls back to its image's."""
        inherited = _In(Annotation.asset_id, select(AssetMetadata.asset_id).where(_meta_match(AssetMetadata, p)))
        if self.session is not None and not self._objects_have_key(str(p.key)):
            # No object holds the key (the usual case: metadata is set on images), so every object
            # falls back: one membership, which an OR of many such terms merges into one scan.
            return inherited
        own = _In(Annotation.id, select(AnnotationMetadata.annotation_id).where(_meta_match(AnnotationMetadata, p)))
        if p.value is None:
            return _AnyOf((own, inherited))
        has_own_key = select(AnnotationMetadata.annotation_id).where(AnnotationMetadata.key == p.key)
        return or_(self.sql(own), and_(Annotation.id.not_in(has_own_key), self.sql(inherited)))

    def _objects_have_key(self, key: str) -> bool:
        assert self.session is not None
        if key not in self._object_keys:
            self._object_keys[key] = self.session.scalar(
                select(exists().where(AnnotationMetadata.key == key))) or False
        return self._object_keys[key]

    def _label_classes(self, *names: str) -> Select[Any] | frozenset[int]:
        """Label classes of the project named any of ``names`` (key, display name, synonym)."""
        needles = sorted({n.lower() for n in names})
        if self.session is not None:
            if self._class_ids is None:
                self._class_ids = defaultdict(set)
                rows = self.session.execute(select(LabelClass.id, LabelClass.key, LabelClass.display_name,
                                                   LabelClass.synonyms).where(LabelClass.project_id == self.project_id))
                for class_id, key, display, synonyms in rows:
                    for name in (key, display, *(synonyms if isinstance(synonyms, list) else ())):
                        if isinstance(name, str):
                            self._class_ids[name.lower()].add(class_id)
            return frozenset(i for n in needles for i in self._class_ids.get(n, ()))
        return (
            select(LabelClass.id)
            .where(
                LabelClass.project_id == self.project_id,
                # Equalities, not IN: an expanding IN list cannot be compiled ahead (iter_rows, EXPLAIN).
                or_(*(cond for n in needles for cond in (
                    func.lower(LabelClass.key) == n,
                    func.lower(LabelClass.display_name) == n,
                    _synonym_match(LabelClass.synonyms, n),
                ))),
            )
        )


# --------------------------------------------------------------------------- value matching


def _complement(cond: ColumnElement[bool]) -> ColumnElement[bool]:
    # NULL (unknown) counts as "does not match", so the complement contains it.
    return not_(func.coalesce(cond, false(), type_=Boolean))


def _equality(op: str, branches: list[ColumnElement[bool]], *, present: ColumnElement[bool]) -> ColumnElement[bool]:
    """``=``: any branch holds; ``!=``: the value is present and no branch holds."""
    equal = or_(*branches)
    return equal if op == "=" else and_(present, _complement(equal))


def _compare_int(column: InstrumentedAttribute[Any], op: str, value: float) -> ColumnElement[bool]:
    """Compare an integer column with an integer bound, so PostgreSQL keeps using its index
    (integer > 1023.5 would compare as float) and never rounds the bound."""
    if value.is_integer():
        return _COMPARE[op](column, int(value))
    if op in (">", ">="):
        return column >= math.ceil(value)
    if op in ("<", "<="):
        return column <= math.floor(value)
    return column.is_not(None) if op == "!=" else false()


def _meta_match(table: type[AssetMetadata] | type[AnnotationMetadata], p: Predicate) -> ColumnElement[bool]:
    """The row of ``table`` is key ``p.key`` and its value satisfies ``p``."""
    has_key = table.key == p.key
    if p.value is None:
        return has_key
    if p.op not in ("=", "!="):
        return and_(has_key, _COMPARE[p.op](table.value_num, p.value))
    text = str(p.value)
    # Each branch repeats the key so SQLite can serve the OR from both (key, value) indexes.
    branches = [and_(has_key, table.value_text == text)]
    if NUMBER_RE.fullmatch(text):
        branches.append(and_(has_key, table.value_num == float(text)))
    return _equality(p.op, branches, present=has_key)


def _attr_match(key: str, p: Predicate) -> ColumnElement[bool]:
    """A predicate on the annotation's ``attributes`` JSON; booleans compare as true/false/1/0."""
    as_text = Annotation.attributes[key].as_string()
    as_number = case((_json_is_number(Annotation.attributes, _json_key(key)), Annotation.attributes[key].as_float()))
    if p.value is None:
        return as_text.is_not(None)
    if p.op not in ("=", "!="):
        return _COMPARE[p.op](as_number, p.value)
    text = str(p.value)
    branches = [as_text == text]
    word = text.lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        # JSON true reads back as 'true' on PostgreSQL and as 1 on SQLite; strings may say "True".
        branches.append(func.lower(as_text).in_(sorted(TRUE_WORDS if word in TRUE_WORDS else FALSE_WORDS)))
    if NUMBER_RE.fullmatch(text):
        branches.append(as_number == float(text))
    return _equality(p.op, branches, present=as_text.is_not(None))


def _attr_any_value(key: str, values: list[str]) -> ColumnElement[bool]:
    """``attr.K:a OR attr.K:b ...``: the key extracted once and compared with lists (the same
    branches as :func:`_attr_match`'s, merged), not once per alternative."""
    as_text = Annotation.attributes[key].as_string()
    branches: list[ColumnElement[bool]] = [as_text.in_([literal(v) for v in sorted(set(values))])]
    words = {v.lower() for v in values}
    for group in (TRUE_WORDS, FALSE_WORDS):
        if words & group:
            branches.append(func.lower(as_text).in_([literal(w) for w in sorted(group)]))
    numbers = sorted({float(v) for v in values if NUMBER_RE.fullmatch(v)})
    if numbers:
        as_number = case((_json_is_number(Annotation.attributes, _json_key(key)), Annotation.attributes[key].as_float()))
        branches.append(as_number.in_([literal(n) for n in numbers]))
    return or_(*branches)


def _json_nonempty(column: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    # JSON null and [] both mean "none" (imports write either for a missing polygon).
    return and_(column.is_not(None), cast(column, Text).not_in(["null", "[]"]))
