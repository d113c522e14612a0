"""``/api/projects/{p}/similar``: the objects nearest to one object in its project's embedding version
(Chroma), among those a query selects — "find similar" in the gallery."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from dsgen_api.deps import CommitFirst, ProjectCtx, project_ctx, project_path, registry, requires, signed_url
from dsgen_core.embeddings.search import SimilarHit, SimilarResult, similar_objects
from dsgen_core.embeddings.store import VectorStore, open_store
from dsgen_core.errors import NotFound
from dsgen_core.registry.schema import Annotation, Asset

router = APIRouter(tags=["similarity"], route_class=CommitFirst)
_lock = threading.Lock()


def vector_store(request: Request) -> VectorStore:
    """One Chroma client per app (an embedded store is opened once per process)."""
    with _lock:
        store: Any = getattr(request.app.state, "vector_store", None)
        if store is None:
            store = request.app.state.vector_store = open_store(registry(request).settings)
    result: VectorStore = store
    return result


@dataclass(frozen=True)
class HitOut(SimilarHit):
    thumbnail_url: str  # signed, for <img src>


class SimilarOut(BaseModel):
    version: str
    hits: list[HitOut]
    seconds: float


@router.get("/api/projects/{project}/similar", **requires("viewer"))
def similar(request: Request, ctx: ProjectCtx = project_ctx("viewer"), object_id: int = Query(ge=1),
            k: int = Query(12, ge=1, le=200), q: str = Query("", max_length=4000),
            version: str | None = Query(None, max_length=100)) -> SimilarOut:
    owner = ctx.session.scalar(select(Asset.project_id).join(Annotation, Annotation.asset_id == Asset.id)
                               .where(Annotation.id == object_id))
    if owner != ctx.project.id:  # another project's object is not searched with, whatever versions are shared
        raise NotFound(f"no object {object_id} in project {ctx.project.name!r}")
    found: SimilarResult = similar_objects(ctx.session, ctx.project, store=vector_store(request), object_id=object_id,
                                           version=version, top_k=k, query=q or None)
    return SimilarOut(version=found.version, seconds=found.seconds, hits=[
        HitOut(**asdict(h), thumbnail_url=signed_url(ctx, request, project_path(ctx.project.name, "assets", h.image_id,
                                                                                "thumbnail"))) for h in found.hits])
