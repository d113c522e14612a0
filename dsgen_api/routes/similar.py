"""``/api/projects/{p}/similar``: the objects nearest to one object in its project's embedding version
(Chroma), among those a query selects — "find similar" in the gallery."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Query, Request

from dsgen_api.deps import ProjectCtx, project_ctx, registry, requires
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


@router.get("/api/projects/{project}/similar", **requires("viewer"))
def similar(request: Request, ctx: ProjectCtx = project_ctx("viewer"), object_id: int = Query(ge=1),
            k: int = Query(12, ge=1, le=200), q: str = Query("", max_length=4000),
            version: str | None = Query(None, max_length=100)) -> SimilarResult:
    return similar_objects(ctx.session, ctx.project, store=vector_store(request), object_id=object_id,
                           version=version, top_k=k, query=q or None)
