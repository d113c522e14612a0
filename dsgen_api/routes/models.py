"""``/api/projects/{p}/models``: model versions with their training curves, evaluations (metrics, PR
curve, confusion matrix) and lineage (the dataset version, the parent, the children); training a new
one is a Dagster run of ``train_model_job`` (train, ONNX export, parity check, evaluation)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from dsgen_api.deps import CommitFirst, ProjectCtx, project_ctx, project_path, registry, requires, signed_url
from dsgen_api.routes.runs import Started, launcher, started
from dsgen_core.accounts.plans import check_training
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.ml.model_versions import (
    ModelVersionSummary,
    get_model_version,
    list_model_versions,
    model_version_summary,
)
from dsgen_core.ml.recipes import get_recipe
from dsgen_core.registry.schema import DatasetVersion, Evaluation, ModelVersion, TrainingEpochMetric, User
from dsgen_core.storage import open_storage
from dsgen_core.versions.lifecycle import get_version

router = APIRouter(tags=["models"], route_class=CommitFirst)


class EpochOut(BaseModel):
    epoch: int
    train_loss: float | None
    val_loss: float | None
    precision: float | None
    recall: float | None
    map50: float | None
    map50_95: float | None


class EvaluationOut(BaseModel):
    id: int
    dataset_version: str | None
    split: str
    precision: float
    recall: float
    f1: float
    map50: float
    map50_95: float
    per_class: dict[str, Any] | None
    confusion_matrix: list[list[float]] | None
    confusion_names: list[str] | None
    charts: dict[str, str]  # chart name -> signed PNG URL
    parent: dict[str, Any] | None
    created_at: str


class ModelDetail(BaseModel):
    summary: ModelVersionSummary
    epochs: list[EpochOut]
    evaluations: list[EvaluationOut]
    children: list[str]  # model versions trained from this one


class TrainIn(BaseModel):
    version: str = Field(min_length=1, max_length=50, description="a frozen dataset version tag")
    recipe: str = Field(min_length=1, max_length=50)


@router.get("/api/projects/{project}/models", **requires("viewer"))
def models(ctx: ProjectCtx = project_ctx("viewer")) -> list[ModelVersionSummary]:
    return [model_version_summary(ctx.session, mv) for mv in list_model_versions(ctx.session, ctx.project)]


@router.get("/api/projects/{project}/models/{ref}", **requires("viewer"))
def model(ref: str, request: Request, ctx: ProjectCtx = project_ctx("viewer")) -> ModelDetail:
    s = ctx.session
    mv = get_model_version(s, ctx.project, ref)
    epochs = s.scalars(select(TrainingEpochMetric).where(TrainingEpochMetric.model_version_id == mv.id)
                       .order_by(TrainingEpochMetric.epoch, TrainingEpochMetric.id))
    evals = s.execute(select(Evaluation, DatasetVersion.version_tag).outerjoin(
        DatasetVersion, DatasetVersion.id == Evaluation.dataset_version_id).where(
        Evaluation.model_version_id == mv.id).order_by(Evaluation.id)).all()
    base = project_path(ctx.project.name, "models", mv.human_id, "evaluations")
    return ModelDetail(
        summary=model_version_summary(s, mv),
        epochs=[EpochOut(epoch=e.epoch, train_loss=e.train_loss, val_loss=e.val_loss, precision=e.precision,
                         recall=e.recall, map50=e.map50, map50_95=e.map50_95) for e in epochs],
        evaluations=[_evaluation(e, tag, {name: signed_url(ctx, request, f"{base}/{e.id}/charts/{quote(name, safe='')}")
                                          for name in (e.extra or {}).get("charts", {})}) for e, tag in evals],
        children=list(s.scalars(select(ModelVersion.human_id).where(ModelVersion.parent_model_version_id == mv.id)
                                .order_by(ModelVersion.id))),
    )


def _evaluation(e: Evaluation, tag: str | None, charts: dict[str, str]) -> EvaluationOut:
    extra = e.extra or {}
    return EvaluationOut(
        id=e.id, dataset_version=tag, split=e.split, precision=e.precision, recall=e.recall, f1=e.f1_score,
        map50=e.map50, map50_95=e.map50_95, per_class=e.per_class, confusion_matrix=extra.get("confusion_matrix"),
        confusion_names=extra.get("confusion_names"), charts=charts, parent=extra.get("parent"),
        created_at=e.created_at.isoformat())


@router.get("/api/projects/{project}/models/{ref}/evaluations/{evaluation_id}/charts/{name}",
            **requires("viewer", signed=True), response_class=Response, responses={200: {"content": {"image/png": {}}}})
def chart(ref: str, evaluation_id: int, name: str, request: Request,
          ctx: ProjectCtx = project_ctx("viewer", signed=True)) -> Response:
    mv = get_model_version(ctx.session, ctx.project, ref)
    ev = ctx.session.get(Evaluation, evaluation_id)
    uri = ((ev.extra or {}).get("charts") or {}).get(name) if ev is not None and ev.model_version_id == mv.id else None
    if not uri:
        raise NotFound(f"no chart {name!r} for evaluation {evaluation_id} of {mv.human_id}")
    storage = open_storage(registry(request).settings.storage_root)
    return Response(storage.read_bytes(storage.key_of(uri)), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=86400"})


@router.post("/api/projects/{project}/models", status_code=202, **requires("editor"))
def train(body: TrainIn, request: Request, ctx: ProjectCtx = project_ctx("editor")) -> Started:
    """Train ``recipe`` on a frozen version (a Dagster run; its epochs appear as they finish)."""
    recipe = get_recipe(body.recipe, registry(request).settings.home)
    if recipe.task != "detect":
        raise DsgenError(f"recipe {body.recipe!r} trains {recipe.task}; the pipeline trains detection recipes "
                         "(other tasks: dsgen model train)")
    if not get_version(ctx.session, ctx.project, body.version).is_frozen:
        raise DsgenError(f"version {body.version!r} is not frozen; freeze it first")
    user = ctx.session.get(User, ctx.principal.user_id)
    assert user is not None  # just authenticated
    check_training(ctx.session, user)  # the run's compute is recorded as theirs when it ends
    return started(ctx, launcher(request).launch("train_model_job", project=ctx.project.name, principal=ctx.principal,
                                                 partition=f"{body.version}|{body.recipe}"))
