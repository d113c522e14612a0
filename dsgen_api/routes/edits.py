"""``/api/projects/{p}/tags`` and ``/metadata``: tag and annotate images or objects, by ids or by query (editor)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from dsgen_api.deps import CommitFirst, ProjectCtx, project_ctx, requires
from dsgen_core.registry import tagging

router = APIRouter(tags=["tags and metadata"], route_class=CommitFirst)


class Target(BaseModel):
    ids: list[int] | None = Field(default=None, max_length=100_000)
    query: str | None = Field(default=None, max_length=4000)
    level: Literal["image", "object"] = "image"

    @model_validator(mode="after")
    def _one(self) -> Target:
        if (self.ids is None) == (self.query is None):
            raise ValueError("give exactly one of ids or query")
        return self


class TagEdit(Target):
    tags: list[str] = Field(min_length=1, max_length=100)
    action: Literal["add", "remove"] = "add"


class MetaEdit(Target):
    key: str = Field(max_length=128)
    value: Any = None
    action: Literal["set", "unset"] = "set"


class Changed(BaseModel):
    changed: int


@router.post("/api/projects/{project}/tags", **requires("editor"))
def edit_tags(body: TagEdit, ctx: ProjectCtx = project_ctx("editor")) -> Changed:
    fn = tagging.add_tags if body.action == "add" else tagging.remove_tags
    return Changed(changed=fn(ctx.session, ctx.project, body.tags, asset_ids=body.ids, query=body.query,
                              level=body.level, actor=ctx.principal.actor))


@router.post("/api/projects/{project}/metadata", **requires("editor"))
def edit_metadata(body: MetaEdit, ctx: ProjectCtx = project_ctx("editor")) -> Changed:
    if body.action == "set":
        n = tagging.set_metadata(ctx.session, ctx.project, body.key, body.value, asset_ids=body.ids, query=body.query,
                                 level=body.level, actor=ctx.principal.actor)
    else:
        n = tagging.unset_metadata(ctx.session, ctx.project, body.key, asset_ids=body.ids, query=body.query,
                                   level=body.level, actor=ctx.principal.actor)
    return Changed(changed=n)


class AssetPatch(BaseModel):
    """Changes to one image, applied together (one transaction): tags to add and remove, metadata to set
    and unset."""

    tags_add: list[str] = Field(default_factory=list, max_length=100)
    tags_remove: list[str] = Field(default_factory=list, max_length=100)
    metadata_set: dict[str, Any] = Field(default_factory=dict, max_length=100)
    metadata_unset: list[str] = Field(default_factory=list, max_length=100)


@router.patch("/api/projects/{project}/assets/{asset_id}", **requires("editor"))
def patch_asset(asset_id: int, body: AssetPatch, ctx: ProjectCtx = project_ctx("editor")) -> Changed:
    ids, s, actor = [asset_id], ctx.session, ctx.principal.actor
    n = 0
    if body.tags_add:
        n += tagging.add_tags(s, ctx.project, body.tags_add, asset_ids=ids, actor=actor)
    if body.tags_remove:
        n += tagging.remove_tags(s, ctx.project, body.tags_remove, asset_ids=ids, actor=actor)
    for key, value in body.metadata_set.items():
        n += tagging.set_metadata(s, ctx.project, key, value, asset_ids=ids, actor=actor)
    for key in body.metadata_unset:
        n += tagging.unset_metadata(s, ctx.project, key, asset_ids=ids, actor=actor)
    return Changed(changed=n)
