"""Search by embedding (seed 000's ``search_by_embedding``, ``find_similar_objects``) and near-duplicates.

A query's predicates that Chroma's metadata can answer (category, source, validated,
confidence, id) are pushed into its ``where``; the rest is answered by the registry's SQL and
applied to Chroma's candidates: as an ``object_id $in`` list when the SQL side is small, else by
fetching more neighbours until ``top_k`` pass. Results carry the object's registry facts.

    res = similar_objects(s, project, store=store, object_id=42, top_k=5, query="category:car -tag:blurry")
    [(h.object_id, h.distance, h.category) for h in res.hits]
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dsgen_core.embeddings.store import VectorStore
from dsgen_core.embeddings.versions import get_version
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.query import And, Node, Predicate, parse, run_query
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import Annotation, Asset, EmbeddingVersion, LabelClass, NearDuplicate, Project
from dsgen_core.versions.splits import UnionFind

# Below this many SQL matches the ids go to Chroma as a filter; above, candidates are over-fetched.
IN_LIST_MAX = 2_000
# Near-duplicates by default: this share of the median distance between two images of the collection.
RELATIVE_THRESHOLD = 0.1
_OPS = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte", "=": "$eq", "!=": "$ne"}


@dataclass(frozen=True)
class SimilarHit:
    object_id: int
    distance: float
    image_id: int
    file_name: str
    category: str | None
    bbox: tuple[float, float, float, float] | None
    source: str
    confidence: float | None
    validated: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SimilarResult:
    version: str
    hits: list[SimilarHit]
    where: dict[str, Any] | None  # what went to Chroma
    sql_terms: list[str] = field(default_factory=list)  # what the registry answered
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "where": self.where, "sql_terms": self.sql_terms, "seconds": self.seconds,
                "hits": [h.to_dict() for h in self.hits]}


def _terms(node: Node | None) -> list[Node]:
    if node is None:
        return []
    return list(node.children) if isinstance(node, And) else [node]


def pushdown(session: Session, project: Project, query: str | None) -> tuple[list[dict[str, Any]], list[str], bool]:
    """(Chroma where clauses, [the query] when the registry must answer it too, whether nothing can match)."""
    if not query or not query.strip():
        return [], [], False
    clauses: list[dict[str, Any]] = []
    exact = True
    for term in _terms(parse(query)):
        clause = _clause(session, project, term) if isinstance(term, Predicate) else None
        if clause is None:
            exact = False
        elif clause == {}:
            return [], [], True
        else:
            clauses.append(clause)
    # Anything Chroma cannot answer: the registry answers the whole query, as written (exact); the
    # pushed conjuncts still narrow what Chroma returns.
    return clauses, [] if exact else [query], False


def _clause(session: Session, project: Project, p: Predicate) -> dict[str, Any] | None:
    """The Chroma filter of one object predicate; None when Chroma cannot answer it, {} when nothing matches."""
    if p.field == "category" and p.op == "=" and isinstance(p.value, str):
        needle = p.value.lower()
        ids = [i for i, key, disp, syn in session.execute(select(
            LabelClass.id, LabelClass.key, LabelClass.display_name, LabelClass.synonyms).where(
            LabelClass.project_id == project.id)) if needle in {str(n).lower() for n in (key, disp, *(syn or []))
                                                                if isinstance(n, str)}]
        return {"category_id": {"$in": ids}} if ids else {}
    if p.field in ("source", "validated") and p.op in ("=", "!=") and p.value is not None:
        return {p.field: {_OPS[p.op]: p.value}}
    if p.field == "confidence" and isinstance(p.value, float) and p.op != "!=":
        return {"confidence": {_OPS[p.op]: p.value}}
    if p.field == "id" and isinstance(p.value, float) and p.op != "!=" and p.value.is_integer():
        return {"object_id": {_OPS[p.op]: int(p.value)}}
    return None


def _where(clauses: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def similar_objects(session: Session, project: Project, *, store: VectorStore, object_id: int | None = None,
                    vector: np.ndarray | None = None, version: str | None = None, top_k: int = 10,
                    query: str | None = None) -> SimilarResult:
    """The ``top_k`` objects nearest to an object (or a vector), among those matching ``query``."""
    start = time.perf_counter()
    if top_k < 1:
        raise DsgenError(f"--top-k must be at least 1, not {top_k}")
    ev = get_version(session, project, version, level="object")
    col = store.collection(ev, create=False)
    if col is None:
        raise NotFound(f"embedding version {ev.name!r} has no Chroma collection yet; run `dsgen embed sync`")
    if vector is None:
        if object_id is None:
            raise DsgenError("give an object id or an image to search with")
        got = store.get(col, [object_id])
        if object_id not in got:
            exists = session.get(Annotation, object_id)
            raise NotFound(f"object {object_id} has no embedding in {ev.name!r}"
                           + ("; run `dsgen embed sync`" if exists is not None else ": no such object"))
        vector = got[object_id][0]
    assert vector is not None
    if vector.shape[-1] != ev.dimension:
        raise DsgenError(f"the query vector is {vector.shape[-1]}-d; embedding version {ev.name!r} is {ev.dimension}-d")
    clauses, rest, empty = pushdown(session, project, query)
    if ev.project_id is None:
        # A version shared by projects holds them all; a project's own version needs no filter, and an
        # unneeded one costs Chroma its filtered search path (58x slower at 100,000 vectors).
        clauses = [{"project_id": project.id}, *clauses]
    if empty:
        return SimilarResult(ev.name, [], _where(clauses), rest, round(time.perf_counter() - start, 4))
    allowed: set[int] | None = None
    if rest:
        allowed = set(run_query(session, project, " ".join(f"({t})" for t in rest), level="object"))
        if len(allowed) <= IN_LIST_MAX:
            clauses.append({"object_id": {"$in": sorted(allowed)}} if allowed else {})
            if not allowed:
                return SimilarResult(ev.name, [], _where(clauses), rest, round(time.perf_counter() - start, 4))
            allowed = None
    where = _where(clauses)
    exclude = {object_id} if object_id is not None else set()
    # No count first: Chroma returns what it has when asked for more, and a short answer ends the loop.
    k = top_k + len(exclude) if allowed is None else 4 * top_k + len(exclude)
    while True:
        found = store.query(col, vector, k=k, where=where)[0]
        hits = [h for h in found if h.id not in exclude and (allowed is None or h.id in allowed)]
        if len(hits) >= top_k or allowed is None or len(found) < k:
            break
        k *= 4
    hits = hits[:top_k]
    return SimilarResult(ev.name, _facts(session, [(h.id, h.distance) for h in hits]), where, rest,
                         round(time.perf_counter() - start, 4))


def _facts(session: Session, pairs: Sequence[tuple[int, float]]) -> list[SimilarHit]:
    if not pairs:
        return []
    rows = {r.id: r for r in session.execute(
        select(Annotation.id, Annotation.asset_id, Asset.file_name, LabelClass.key, Annotation.bbox_x,
               Annotation.bbox_y, Annotation.bbox_w, Annotation.bbox_h, Annotation.source, Annotation.confidence,
               Annotation.is_validated)
        .join(Asset, Asset.id == Annotation.asset_id).outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
        .where(Annotation.id.in_([i for i, _ in pairs])))}
    out = []
    for i, d in pairs:
        r = rows.get(i)
        if r is None:  # deleted since it was embedded; the next sync removes it from Chroma
            continue
        box = (r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h) if r.bbox_w is not None else None
        out.append(SimilarHit(i, round(d, 6), r.asset_id, r.file_name, r.key, box, r.source, r.confidence,
                              bool(r.is_validated)))
    return out


def object_vectors(session: Session, project: Project, annotation_ids: Sequence[int], *, store: VectorStore,
                   version: str | None = None) -> dict[int, np.ndarray]:
    """The synced vectors of these objects (those not synced yet are absent)."""
    ev = get_version(session, project, version, level="object")
    col = store.collection(ev, create=False)
    if col is None:
        return {}
    return {i: v for i, (v, _m) in store.get(col, list(annotation_ids)).items() if v is not None}


# --------------------------------------------------------------------------- near-duplicates


@dataclass(frozen=True)
class DuplicateGroup:
    kind: str  # exact | near
    image_ids: list[int]
    files: list[str]
    max_distance: float  # 0 for exact groups

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DuplicateReport:
    threshold: float
    version: str | None
    exact: list[DuplicateGroup]
    near: list[DuplicateGroup]
    images: int  # images compared
    seconds: float = 0.0

    @property
    def near_images(self) -> int:
        return sum(len(g.image_ids) for g in self.near)

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "version": self.version, "images": self.images,
                "exact_groups": len(self.exact), "near_groups": len(self.near),
                "images_in_exact_groups": sum(len(g.image_ids) for g in self.exact),
                "images_in_near_groups": self.near_images, "seconds": self.seconds,
                "exact": [g.to_dict() for g in self.exact], "near": [g.to_dict() for g in self.near]}


def find_duplicates(session: Session, project: Project, *, store: VectorStore | None, version: str | None = None,
                    threshold: float | None = None, neighbours: int = 10, actor: str | None = None) -> DuplicateReport:
    """Exact duplicates (equal sha256) and near ones (image embeddings within ``threshold`` cosine distance).

    Without a threshold: ``RELATIVE_THRESHOLD`` times the collection's median distance between two
    images. Encoders spread their vectors very differently (the default encoder's image vectors lie
    within 0.07 of each other on the demo, a CLIP's much further apart), so no fixed distance means
    "a copy" for all of them; "ten times closer than two images usually are" does.

    Near groups are chained (a~b, b~c: one group) and written to ``near_duplicates`` for the
    version, replacing its previous run, so splits and ``has:near_duplicate`` see them.
    """
    start = time.perf_counter()
    if threshold is not None and not 0 <= threshold <= 2:
        raise DsgenError(f"--threshold is a cosine distance between 0 and 2, not {threshold}")
    live = (Asset.project_id == project.id, Asset.deleted_at.is_(None))
    shared = select(Asset.sha256).where(*live, Asset.sha256.is_not(None)).group_by(Asset.sha256).having(
        func.count() > 1)
    by_sha: dict[str | None, list[tuple[int, str]]] = defaultdict(list)
    for aid, sha, name in session.execute(select(Asset.id, Asset.sha256, Asset.file_name).where(
            *live, Asset.sha256.in_(shared)).order_by(Asset.id)):
        by_sha[sha].append((aid, name))
    exact = [DuplicateGroup("exact", [a for a, _ in g], [n for _, n in g], 0.0) for g in by_sha.values()]
    ev: EmbeddingVersion | None = None
    near: list[tuple[DuplicateGroup, list[float]]] = []
    compared = 0
    if store is not None:
        try:
            ev = get_version(session, project, version, level="image")
        except NotFound:
            if version is not None:
                raise
        if ev is not None:
            near, compared, threshold = _near_groups(session, project, ev, store, threshold, neighbours)
            session.execute(delete(NearDuplicate).where(NearDuplicate.embedding_version_id == ev.id))
            rows = [NearDuplicate(embedding_version_id=ev.id, asset_id=a, project_id=project.id, group_id=min(g.image_ids),
                                  distance=d, threshold=threshold)
                    for g, dists in near for a, d in zip(g.image_ids, dists, strict=True)]
            session.add_all(rows)
            session.flush()
            audit(session, "embeddings.duplicates", project_id=project.id, entity_type="embedding_version",
                  entity_ids=[ev.id], detail={"threshold": threshold, "groups": len(near),
                                              "images": sum(len(g.image_ids) for g, _ in near)}, actor=actor)
            record_change(session, project_id=project.id, entity="near_duplicates", op="update", entity_id=ev.id,
                          count=len(rows))
    groups = [g for g, _ in near]
    return DuplicateReport(threshold if threshold is not None else 0.0, ev.name if ev else None, exact, groups, compared,
                           round(time.perf_counter() - start, 3))


def relative_threshold(mat: np.ndarray, seed: int = 0) -> float:
    """``RELATIVE_THRESHOLD`` x the median cosine distance of pairs of (at most 2,000 sampled) unit vectors."""
    idx = np.random.default_rng(seed).choice(len(mat), min(len(mat), 2_000), replace=False)
    sample = mat[np.sort(idx)]
    d = 1.0 - (sample @ sample.T)[np.triu_indices(len(sample), 1)]
    median = float(np.median(d)) if d.size else 0.0
    return round(RELATIVE_THRESHOLD * median, 6) if median > 1e-6 else 0.0


def _near_groups(session: Session, project: Project, ev: EmbeddingVersion, store: VectorStore,
                 threshold: float | None, neighbours: int) -> tuple[list[tuple[DuplicateGroup, list[float]]], int,
                                                                    float | None]:
    col = store.collection(ev, create=False)
    if col is None:
        return [], 0, threshold
    ids: list[int] = []
    parts: list[np.ndarray] = []
    for page_ids, _m, vecs in store.scan(col, embeddings=True):
        if vecs is not None:
            ids += page_ids
            parts.append(vecs)
    if not ids:
        return [], 0, threshold
    live = set(session.scalars(select(Asset.id).where(Asset.project_id == project.id, Asset.deleted_at.is_(None),
                                                      Asset.id.in_(ids))))
    keep = [i for i, a in enumerate(ids) if a in live]
    ids = [ids[i] for i in keep]
    mat = np.concatenate(parts)[keep]
    mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
    if threshold is None:
        threshold = relative_threshold(mat)
    if threshold <= 0:
        # The encoder puts the images at (nearly) one point: it cannot tell copies from the rest (an
        # undertrained model does this), so it names no near-duplicates rather than all of them.
        return [], len(ids), threshold
    uf = UnionFind()
    nearest: dict[int, float] = {}
    # Blocks of a brute-force cosine matrix: exact, and fast enough into the tens of thousands.
    block = 2048
    k = min(neighbours + 1, len(ids))
    for s0 in range(0, len(ids), block):
        sims = mat[s0:s0 + block] @ mat.T
        for r in range(sims.shape[0]):
            sims[r, s0 + r] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < len(ids) else np.tile(np.arange(len(ids)),
                                                                                         (sims.shape[0], 1))
        for r in range(sims.shape[0]):
            i = s0 + r
            for j in top[r]:
                d = 1.0 - float(sims[r, j])
                if j != i and d <= threshold:
                    uf.union(ids[i], ids[int(j)])
                    nearest[ids[i]] = min(nearest.get(ids[i], 2.0), d)
                    nearest[ids[int(j)]] = min(nearest.get(ids[int(j)], 2.0), d)
    members: dict[int, list[int]] = defaultdict(list)
    for a in nearest:
        members[uf.find(a)].append(a)
    names = dict(session.execute(select(Asset.id, Asset.file_name).where(Asset.id.in_(list(nearest)))).all()) \
        if nearest else {}
    out = []
    for group in sorted(members.values(), key=lambda g: min(g)):
        group.sort()
        dists = [round(max(nearest[a], 0.0), 6) for a in group]
        out.append((DuplicateGroup("near", group, [names.get(a, "") for a in group], max(dists)), dists))
    return out, len(ids), threshold
