"""Promotion: which model version is a project's production model, and why (seed 003 deployments).

A candidate replaces the production model only when it is not worse than it on the production
model's own test split beyond the policy's tolerance (mAP50-95), and better or equal on the
classes the production model does not know (on the candidate's own test split). Otherwise it
stays a candidate with the reason recorded on it. The production model is a deployment row
(target ``registry``), one active per project by a partial unique index; the superseded rows
stay as its history. Auto-annotation and inference use it when no model is named.

    decision = decide_promotion(session, project, "m2", storage=storage, actor="dagster:...")
    decision.promoted, decision.reason
    production_model(session, project)  # -> ModelVersion | None
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation.model_eval import parent_evaluation
from dsgen_core.loop.policy import get_policy
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.onnx_artifacts import ONNX_ROLE
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import (
    DatasetVersion,
    DatasetVersionClass,
    Deployment,
    Evaluation,
    ModelVersion,
    Project,
)
from dsgen_core.storage.base import Storage

PRODUCTION = "production"


@dataclass
class PromotionDecision:
    model_version: str
    promoted: bool
    reason: str
    reference: str | None  # the production model it was compared with
    numbers: dict[str, Any] = field(default_factory=dict)
    at: str = ""

    @property
    def decision(self) -> str:
        return "promoted" if self.promoted else "candidate"

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, **asdict(self)}


@dataclass(frozen=True)
class ProductionEntry:
    model_version: str
    status: str  # active | inactive
    since: datetime
    reason: str
    actor: str | None


def production_deployment(session: Session, project: Project) -> Deployment | None:
    return session.scalar(select(Deployment).where(
        Deployment.project_id == project.id, Deployment.name == PRODUCTION, Deployment.status == "active"))


def production_model(session: Session, project: Project) -> ModelVersion | None:
    """The project's production model version, or None before the first promotion."""
    d = production_deployment(session, project)
    return session.get(ModelVersion, d.model_version_id) if d is not None else None


def production_history(session: Session, project: Project) -> list[ProductionEntry]:
    rows = session.execute(select(Deployment, ModelVersion.human_id).join(
        ModelVersion, ModelVersion.id == Deployment.model_version_id).where(
        Deployment.project_id == project.id, Deployment.name == PRODUCTION).order_by(Deployment.id.desc()))
    return [ProductionEntry(h, d.status, d.deployed_at, str((d.reason or {}).get("reason", "")), d.actor)
            for d, h in rows]


def promote(session: Session, project: Project, mv: ModelVersion, *, reason: dict[str, Any],
            actor: str | None = None) -> Deployment:
    """Make ``mv`` the production model (its ONNX artifact is what is served)."""
    onnx = mvs.artifact(session, mv, ONNX_ROLE, "onnx")
    if onnx is None:
        raise DsgenError(f"model version {mv.human_id} has no ONNX artifact; export it first (dsgen models export-onnx)")
    old = production_deployment(session, project)
    if old is not None:
        old.status = "inactive"
        session.flush()  # before the insert: one active production row per project (a unique index)
    d = Deployment(model_version_id=mv.id, project_id=project.id, model_artifact_id=onnx.id, name=PRODUCTION,
                   target="registry", status="active", reason=reason, actor=actor)
    session.add(d)
    session.flush()
    audit(session, "model.promote", project_id=project.id, entity_type="model_version", entity_ids=[mv.id],
          detail={"model_version": mv.human_id, "replaces": _human_id(session, old), **reason}, actor=actor)
    record_change(session, project_id=project.id, entity="deployments", op="promoted", entity_id=d.id,
                  detail={"model_version": mv.human_id})
    return d


def decide_promotion(session: Session, project: Project, ref: str, *, storage: Storage,
                     tolerance: float | None = None, actor: str | None = None) -> PromotionDecision:
    """Compare candidate ``ref`` with the production model, record the decision, promote when it passes."""
    mv = mvs.get_model_version(session, project, ref)
    tol = get_policy(session, project).tolerance if tolerance is None else tolerance
    now = datetime.now(UTC).isoformat()
    current = production_model(session, project)
    if current is not None and current.id == mv.id:
        return PromotionDecision(mv.human_id, True, "already the production model", mv.human_id, at=now)
    if mv.status != "succeeded":
        decision = PromotionDecision(mv.human_id, False, f"training {mv.status}", _human_id_mv(current), at=now)
    elif mvs.artifact(session, mv, ONNX_ROLE, "onnx") is None:
        decision = PromotionDecision(mv.human_id, False, "no ONNX artifact", _human_id_mv(current), at=now)
    elif current is None:
        decision = PromotionDecision(mv.human_id, True, "the project's first production model", None, at=now)
    else:
        decision = _compare(session, project, mv, current, tol, storage, actor)
        decision.at = now
    mv.promotion = decision.to_dict()
    if decision.promoted:
        promote(session, project, mv, reason=decision.to_dict(), actor=actor)
    else:
        audit(session, "model.promotion_refused", project_id=project.id, entity_type="model_version",
              entity_ids=[mv.id], detail=decision.to_dict(), actor=actor)
        record_change(session, project_id=project.id, entity="model_versions", op="candidate", entity_id=mv.id,
                      detail={"model_version": mv.human_id, "reason": decision.reason})
    session.flush()
    return decision


def decide_pending(session: Session, project: Project, *, storage: Storage,
                   actor: str | None = None) -> list[PromotionDecision]:
    """Decide every undecided candidate, oldest first; one that cannot be compared (a refusal:
    no test split, a missing file) is recorded as failed with the reason and the rest go on."""
    out = []
    for mv in undecided_candidates(session, project):
        try:
            with session.begin_nested():
                out.append(decide_promotion(session, project, mv.human_id, storage=storage, actor=actor))
        except DsgenError as exc:
            d = PromotionDecision(mv.human_id, False, f"could not be compared: {exc}", None,
                                  at=datetime.now(UTC).isoformat())
            mv.promotion = {**d.to_dict(), "decision": "failed"}
            session.flush()
            out.append(d)
    return out


def undecided_candidates(session: Session, project: Project) -> list[ModelVersion]:
    """Trained model versions with an ONNX artifact and an evaluation but no promotion decision yet, oldest first."""
    evaluated = select(Evaluation.model_version_id)
    return list(session.scalars(select(ModelVersion).where(
        ModelVersion.project_id == project.id, ModelVersion.status == "succeeded", ModelVersion.promotion.is_(None),
        ModelVersion.id.in_(evaluated)).order_by(ModelVersion.id)))


def _compare(session: Session, project: Project, mv: ModelVersion, current: ModelVersion, tol: float,
             storage: Storage, actor: str | None) -> PromotionDecision:
    ref_version = _training_version(session, current)
    own_version = _training_version(session, mv)
    # On the production model's test split: data neither trained on (splits are stable across versions).
    child_old = parent_evaluation(session, project, mv, ref_version, "test", storage=storage, actor=actor)
    ref_old = parent_evaluation(session, project, current, ref_version, "test", storage=storage, actor=actor)
    numbers: dict[str, Any] = {
        "on": f"{ref_version.version_tag}/test",
        "candidate_map50_95": child_old.map50_95, "production_map50_95": ref_old.map50_95,
        "candidate_map50": child_old.map50, "production_map50": ref_old.map50, "tolerance": tol,
    }
    reasons = []
    if child_old.map50_95 + tol < ref_old.map50_95:
        reasons.append(f"mAP50-95 on {ref_version.version_tag}/test {child_old.map50_95:.4f} < production "
                       f"{current.human_id}'s {ref_old.map50_95:.4f} - tolerance {tol:g}")
    new_classes = sorted(_class_keys(session, own_version) - _class_keys(session, ref_version))
    if new_classes:
        child_new = parent_evaluation(session, project, mv, own_version, "test", storage=storage, actor=actor)
        ref_new = parent_evaluation(session, project, current, own_version, "test", storage=storage, actor=actor)
        per_class = {}
        for k in new_classes:
            c, r = (child_new.per_class or {}).get(k), (ref_new.per_class or {}).get(k)
            if not c or not c.get("support"):
                continue  # no ground truth of it in the test split: nothing to compare
            per_class[k] = {"candidate_map50": c["map50"], "production_map50": (r or {}).get("map50", 0.0)}
            if c["map50"] < per_class[k]["production_map50"]:
                reasons.append(f"new class {k}: mAP50 {c['map50']:.4f} < production's {per_class[k]['production_map50']:.4f}")
        numbers["new_classes"] = per_class
        numbers["new_classes_on"] = f"{own_version.version_tag}/test"
    if reasons:
        return PromotionDecision(mv.human_id, False, "; ".join(reasons), current.human_id, numbers)
    gained = child_old.map50_95 - ref_old.map50_95
    why = (f"mAP50-95 on {ref_version.version_tag}/test {child_old.map50_95:.4f} vs production {current.human_id}'s "
           f"{ref_old.map50_95:.4f} ({gained:+.4f}, tolerance {tol:g})")
    if new_classes:
        why += f"; new classes {', '.join(new_classes)} not worse"
    return PromotionDecision(mv.human_id, True, why, current.human_id, numbers)


def _training_version(session: Session, mv: ModelVersion) -> DatasetVersion:
    v = session.get(DatasetVersion, mv.training_data_version_id) if mv.training_data_version_id else None
    if v is None:
        raise DsgenError(f"model version {mv.human_id} names no dataset version it was trained on")
    return v


def _class_keys(session: Session, v: DatasetVersion) -> set[str]:
    return set(session.scalars(select(DatasetVersionClass.key).where(DatasetVersionClass.dataset_version_id == v.id)))


def _human_id(session: Session, d: Deployment | None) -> str | None:
    return _human_id_mv(session.get(ModelVersion, d.model_version_id)) if d is not None else None


def _human_id_mv(mv: ModelVersion | None) -> str | None:
    return mv.human_id if mv is not None else None
