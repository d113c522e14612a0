"""``/api/projects/{p}/similar``: the objects nearest to one object in its project's embedding version
(Chroma), among those a query selects — "find similar" in the gallery."""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from dsgen_api.deps import ProjectCtx, project_ctx, registry, requires, signed_url
from dsgen_core.embeddings.search import SimilarResult, similar_objects
from dsgen_core.embeddings.store import VectorStore, open_store

router = APIRouter(tags=["similarity"])
_lock = threading.Lock()


def vector_store(request: Request) -> VectorStore:
    """One Chroma client per app (an embedded store is opened once per process)."""
    with _lock:
        store: Any = getattr(request.app.state, "vector_store", None)
        if store is None:
            store = request.app.state.vector_store = open_store(registry(request).settings)
    result: VectorStore = store
    return result


class HitOut(BaseModel):
    object_id: int
    distance: float
    image_id: int
    file_name: str
    category: str | None
    bbox: tuple[float, float, float, float] | None
    source: str
    confidence: float | None
    validated: bool
    thumbnail_url: str  # signed, for <img src>


class SimilarOut(BaseModel):
    version: str
    hits: list[HitOut]
    seconds: float


@router.get("/api/projects/{project}/similar", **requires("viewer"))
def similar(request: Request, ctx: ProjectCtx = project_ctx("viewer"), object_id: int = Query(ge=1),
            k: int = Query(12, ge=1, le=200), q: str = Query("", max_length=4000),
            version: str | None = Query(None, max_length=100)) -> SimilarOut:
    found: SimilarResult = similar_objects(ctx.session, ctx.project, store=vector_store(request), object_id=object_id,
                                           version=version, top_k=k, query=q or None)
    base = f"/api/projects/{quote(ctx.project.name, safe='')}/assets"
    return SimilarOut(version=found.version, seconds=found.seconds, hits=[
        HitOut(**asdict(h), thumbnail_url=signed_url(ctx, request, f"{base}/{h.image_id}/thumbnail")) for h in found.hits])
