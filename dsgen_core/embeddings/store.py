"""Chroma collections of embedding versions: embedded by default, a ``chroma run`` server when asked.

``DSGEN_CHROMA_URL`` (``http://host:8000``) selects a server; otherwise the embedded
``PersistentClient`` under ``$DSGEN_HOME/registry/chroma/`` (seed 000's layout). A collection
carries the fingerprint of the encoder that filled it: opening it for another encoder is refused,
so vectors of two encoders are never compared. Any failure to reach Chroma is a
:class:`~dsgen_core.errors.ServiceUnavailable` naming the server: the registry is never changed
because of it, and pending outbox rows stay pending.

    store = open_store(settings)
    col = store.collection(ev)                 # created on first use
    store.upsert(col, ids, vectors, metadatas)
    hits = store.query(col, vector, k=10, where={"category_id": 3})
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from dsgen_core.config import Settings
from dsgen_core.embeddings.versions import collection_name
from dsgen_core.errors import DsgenError, ServiceUnavailable
from dsgen_core.registry.schema import EmbeddingVersion

T = TypeVar("T")
# Chroma refuses batches above its max_batch_size (5,461 on 1.5); 5,000 is the reference's batch.
WRITE_BATCH = 5_000
FINGERPRINT_KEY = "dsgen_fingerprint"


@dataclass(frozen=True)
class Hit:
    id: int
    distance: float
    metadata: dict[str, Any]


class VectorStore:
    """One Chroma client, embedded or remote; ``where`` names it in messages."""

    def __init__(self, client: Any, where: str) -> None:
        self.client = client
        self.where = where
        self._checked: dict[tuple[str, str], Any] = {}  # (collection, fingerprint) -> handle, checked once

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DsgenError:
            raise
        except Exception as exc:  # chromadb raises httpx, ValueError and its own errors for one cause
            if _is_connection_error(exc):
                raise ServiceUnavailable(f"cannot reach Chroma at {self.where} ({what}): {_first_line(exc)}; "
                                         "the registry is unchanged and pending embeddings stay pending") from exc
            # Chroma answered and refused (a bad argument, a dimension it does not hold): trying again will
            # not help, so it is no environment error.
            raise DsgenError(f"Chroma at {self.where} refused to {what}: {_first_line(exc)}") from exc

    def collection(self, ev: EmbeddingVersion, *, create: bool = True) -> Any:
        """The version's collection; refused when another encoder made it."""
        name = collection_name(ev)
        known = self._checked.get((name, ev.fingerprint or ""))
        if known is not None:
            return known
        if create:
            col = self._call(f"open {name}", lambda: self.client.get_or_create_collection(
                name, metadata={FINGERPRINT_KEY: ev.fingerprint or "", "dsgen_version": ev.name,
                                "dsgen_level": ev.level, "dsgen_dimension": ev.dimension},
                configuration={"hnsw": {"space": "cosine"}}, embedding_function=None))
        else:
            col = self._call(f"open {name}", lambda: self._get(name))
            if col is None:
                return None
        theirs = (col.metadata or {}).get(FINGERPRINT_KEY)
        if theirs != (ev.fingerprint or ""):
            raise DsgenError(f"Chroma collection {name!r} at {self.where} was made by another encoder "
                             f"(fingerprint {str(theirs)[:12]}, embedding version {ev.name!r} is "
                             f"{(ev.fingerprint or '')[:12]}); delete it or name the version differently")
        self._checked[(name, ev.fingerprint or "")] = col
        return col

    def _get(self, name: str) -> Any:
        try:
            return self.client.get_collection(name, embedding_function=None)
        except Exception as exc:
            if type(exc).__name__ in ("NotFoundError", "InvalidCollectionException") or "does not exist" in str(exc):
                return None
            raise

    def drop(self, ev: EmbeddingVersion) -> None:
        name = collection_name(ev)
        self._checked = {k: v for k, v in self._checked.items() if k[0] != name}
        if self._call(f"open {name}", lambda: self._get(name)) is not None:
            self._call(f"delete {name}", lambda: self.client.delete_collection(name))

    def upsert(self, col: Any, ids: Sequence[int], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(ids), WRITE_BATCH):
            j = i + WRITE_BATCH
            self._call(f"upsert into {col.name}", partial(
                col.upsert, ids=[str(x) for x in ids[i:j]], embeddings=vectors[i:j], metadatas=list(metadatas[i:j])))

    def update_metadata(self, col: Any, ids: Sequence[int], metadatas: Sequence[dict[str, Any]]) -> None:
        for i in range(0, len(ids), WRITE_BATCH):
            j = i + WRITE_BATCH
            self._call(f"update {col.name}", partial(col.update, ids=[str(x) for x in ids[i:j]],
                                                     metadatas=list(metadatas[i:j])))

    def delete(self, col: Any, ids: Sequence[int]) -> None:
        for i in range(0, len(ids), WRITE_BATCH):
            self._call(f"delete from {col.name}", partial(col.delete, ids=[str(x) for x in ids[i:i + WRITE_BATCH]]))

    def count(self, col: Any) -> int:
        return int(self._call(f"count {col.name}", col.count))

    def get(self, col: Any, ids: Sequence[int], *, embeddings: bool = True) -> dict[int, tuple[np.ndarray | None,
                                                                                                dict[str, Any]]]:
        """id -> (vector, metadata) of those of ``ids`` the collection holds."""
        include = ["metadatas", "embeddings"] if embeddings else ["metadatas"]
        out: dict[int, tuple[np.ndarray | None, dict[str, Any]]] = {}
        for i in range(0, len(ids), WRITE_BATCH):
            got = self._call(f"read {col.name}", partial(col.get, ids=[str(x) for x in ids[i:i + WRITE_BATCH]],
                                                         include=include))
            vecs = got.get("embeddings")
            for j, (sid, meta) in enumerate(zip(got["ids"], got["metadatas"] or [], strict=False)):
                out[int(sid)] = (np.asarray(vecs[j], dtype=np.float32) if vecs is not None else None, dict(meta or {}))
        return out

    def scan(self, col: Any, *, embeddings: bool = False, page: int = 10_000) -> Iterator[
            tuple[list[int], list[dict[str, Any]], np.ndarray | None]]:
        """Every record of the collection, a page at a time: (ids, metadatas, vectors or None)."""
        include = ["metadatas", "embeddings"] if embeddings else ["metadatas"]
        offset = 0
        while True:
            got = self._call(f"read {col.name}", partial(col.get, include=include, limit=page, offset=offset))
            ids = [int(x) for x in got["ids"]]
            if not ids:
                return
            vecs = got.get("embeddings")
            yield ids, [dict(m or {}) for m in got["metadatas"] or []], (
                np.asarray(vecs, dtype=np.float32) if vecs is not None else None)
            if len(ids) < page:
                return
            offset += len(ids)

    def query(self, col: Any, vectors: np.ndarray, *, k: int, where: dict[str, Any] | None = None) -> list[list[Hit]]:
        """The ``k`` nearest records of each query vector (cosine distance), filtered by ``where``."""
        got = self._call(f"query {col.name}", lambda: col.query(
            query_embeddings=np.atleast_2d(vectors).astype(np.float32), n_results=k, where=where or None,
            include=["distances", "metadatas"]))
        return [[Hit(int(i), float(d), dict(m or {})) for i, d, m in zip(ids, dists, metas or [], strict=False)]
                for ids, dists, metas in zip(got["ids"], got["distances"], got["metadatas"] or [], strict=False)]


def open_store(settings: Settings, url: str | None = None) -> VectorStore:
    """The Chroma server of ``DSGEN_CHROMA_URL`` (or ``url``), else the embedded store of ``settings.home``."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    url = url or os.environ.get("DSGEN_CHROMA_URL") or None
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if url:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise DsgenError(f"DSGEN_CHROMA_URL {url!r} is not an http(s)://host:port address")
        host, port, ssl = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 8000), \
            parsed.scheme == "https"
        where = f"{parsed.scheme}://{host}:{port}"
        store = VectorStore(None, where)
        store.client = store._call("connect", lambda: chromadb.HttpClient(host=host, port=port, ssl=ssl,
                                                                          settings=chroma_settings))
        return store
    path = settings.home / "registry" / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return VectorStore(chromadb.PersistentClient(path=str(path), settings=chroma_settings), str(path))


def _is_connection_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    text = str(exc).lower()
    return bool(names & {"ConnectError", "ConnectTimeout", "ReadError", "ReadTimeout", "RemoteProtocolError",
                         "ConnectionRefusedError", "ConnectionResetError", "WriteError", "PoolTimeout"}) \
        or "could not connect" in text or "connection refused" in text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
