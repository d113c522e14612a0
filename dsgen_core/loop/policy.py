"""The next-version policy: when enough has changed since the newest version to cut the next one.

The loop's unit of change is the annotation batch (:class:`~dsgen_core.registry.schema.ImportBatch`):
every import, auto-annotation or pull is one, with its counts. A frozen version records the
newest batch it saw (``through_batch_id``), so what is new is the batches after the newest
frozen version: a handful of rows however large the registry, which keeps a sensor tick cheap.

    policy = set_policy(session, project, enabled=True, min_annotations=20, actor="cli")
    decision = decide_next_version(session, project)
    if decision.cut:
        cut_next_version(session, project, decision.tag, actor="dagster:...")
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.config import load_settings
from dsgen_core.errors import DsgenError
from dsgen_core.ml.recipes import get_recipe
from dsgen_core.query import compile_query
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import DatasetVersion, ImportBatch, Project, ProjectPolicy
from dsgen_core.versions.lifecycle import create_version, newest_frozen_version
from dsgen_core.versions.splits import parse_split_config

TRIGGERS = ("sensor", "schedule")
_TAG = re.compile(r"v(\d+)")


@dataclass(frozen=True)
class Policy:
    """A project's policy; a project without a row has the defaults (off)."""

    enabled: bool = False
    trigger: str = "sensor"
    min_annotations: int | None = None
    min_images: int | None = None
    min_classes: int | None = None
    window_hours: float | None = None
    query: str | None = None
    split_config: dict[str, float] | None = None
    seed: int = 0
    train: bool = True
    recipe: str | None = None
    tolerance: float = 0.01

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        when = [f"{n} {what}" for n, what in ((self.min_annotations, "new human annotations"),
                                              (self.min_images, "new images"), (self.min_classes, "new classes"))
                if n is not None]
        if self.window_hours is not None:
            when.append(f"any change once the newest version is {self.window_hours:g} h old")
        then = (f"train the production model's child (recipe {self.recipe or 'of the production model'}), "
                f"promote within {self.tolerance:g} mAP50-95") if self.train else "no training"
        return f"on ({self.trigger}): next version at {' or '.join(when) or 'any change'}; {then}"


_FIELDS = {f.name for f in fields(Policy)}


def get_policy(session: Session, project: Project) -> Policy:
    row = session.get(ProjectPolicy, project.id)
    if row is None:
        return Policy()
    return Policy(**{k: getattr(row, k) for k in _FIELDS})


def set_policy(session: Session, project: Project, *, actor: str | None = None, **changes: Any) -> Policy:
    """Change the given fields of ``project``'s policy (``None`` clears a threshold); returns the new policy."""
    unknown = set(changes) - _FIELDS
    if unknown:
        raise DsgenError(f"policy: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_FIELDS))}")
    if "trigger" in changes and changes["trigger"] not in TRIGGERS:
        raise DsgenError(f"policy trigger must be one of {', '.join(TRIGGERS)}, not {changes['trigger']!r}")
    for k in ("min_annotations", "min_images", "min_classes", "window_hours"):
        if changes.get(k) is not None and changes[k] <= 0:
            raise DsgenError(f"policy {k} must be positive (or cleared), not {changes[k]!r}")
    if changes.get("tolerance") is not None and changes["tolerance"] < 0:
        raise DsgenError(f"policy tolerance must be 0 or more, not {changes['tolerance']!r}")
    if changes.get("query"):
        compile_query(changes["query"], project_id=project.id)  # a bad query fails now, not at the next cut
    if "split_config" in changes and changes["split_config"] is not None:
        changes["split_config"] = parse_split_config(changes["split_config"])
    if changes.get("recipe"):
        get_recipe(changes["recipe"], load_settings().home)  # unknown recipes are refused by name
    row = session.get(ProjectPolicy, project.id)
    if row is None:
        row = ProjectPolicy(project_id=project.id, **asdict(Policy()))
        session.add(row)
    for k, v in changes.items():
        setattr(row, k, v)
    row.updated_by, row.updated_at = actor, datetime.now(UTC)
    session.flush()
    policy = get_policy(session, project)
    audit(session, "policy.set", project_id=project.id, entity_type="project_policy", entity_ids=[project.id],
          detail={"changed": {k: changes[k] for k in sorted(changes)}, "policy": asdict(policy)}, actor=actor)
    record_change(session, project_id=project.id, entity="project_policies", op="set", entity_id=project.id,
                  detail={"changed": sorted(changes)})
    return policy


@dataclass
class PendingChanges:
    """What the annotation batches after the newest frozen version changed."""

    since_tag: str | None  # the newest frozen version, None before the first
    since_at: datetime | None  # when it froze
    batches: list[int] = field(default_factory=list)
    annotations: int = 0  # new or changed human objects
    model_annotations: int = 0
    deleted: int = 0  # human objects deleted
    images: int = 0
    classes: int = 0

    @property
    def anything(self) -> bool:
        """Whether a version would differ: model objects stay out of versions, so they alone do not count."""
        return bool(self.annotations or self.deleted or self.images or self.classes)

    def describe(self) -> str:
        return (f"{len(self.batches)} batch(es) since {self.since_tag or 'the start'}: {self.annotations} new human "
                f"annotations, {self.images} new images, {self.classes} new classes")


def pending_changes(session: Session, project: Project) -> PendingChanges:
    newest = newest_frozen_version(session, project)
    out = PendingChanges(newest.version_tag if newest else None, newest.frozen_at if newest else None)
    stmt = select(ImportBatch.id, ImportBatch.source, ImportBatch.counts).where(
        ImportBatch.project_id == project.id, ImportBatch.status == "done").order_by(ImportBatch.id)
    if newest is not None:
        # Versions frozen before migration 0006 know no batch: the time of their freeze stands in.
        stmt = stmt.where(ImportBatch.id > newest.through_batch_id) if newest.through_batch_id is not None \
            else stmt.where(ImportBatch.created_at > newest.frozen_at)
    for batch_id, source, counts in session.execute(stmt):
        c = counts or {}
        touched = int(c.get("objects_new", 0)) + int(c.get("objects_merged", 0))
        if touched or c.get("objects_deleted") or c.get("images_new") or c.get("classes_new"):
            out.batches.append(batch_id)
        if source == "human":
            out.annotations += touched
            out.deleted += int(c.get("objects_deleted", 0))
        else:
            out.model_annotations += touched
        out.images += int(c.get("images_new", 0))
        out.classes += int(c.get("classes_new", 0))
    return out


@dataclass
class NextVersionDecision:
    cut: bool
    tag: str  # the tag the next version gets
    reason: str
    pending: PendingChanges


def next_version_tag(session: Session, project: Project) -> str:
    """``v{n+1}`` after the highest ``v<n>`` tag of the project."""
    tags = session.scalars(select(DatasetVersion.version_tag).where(DatasetVersion.project_id == project.id))
    numbers = [int(m.group(1)) for t in tags if (m := _TAG.fullmatch(t))]
    return f"v{max(numbers, default=0) + 1}"


def decide_next_version(session: Session, project: Project, policy: Policy | None = None,
                        now: datetime | None = None) -> NextVersionDecision:
    """Whether the policy cuts the next version now, and why (or why not)."""
    policy = policy or get_policy(session, project)
    pending = pending_changes(session, project)
    tag = next_version_tag(session, project)
    if not policy.enabled:
        return NextVersionDecision(False, tag, "the project's policy is off (dsgen policy set --on)", pending)
    drafts = session.scalars(select(DatasetVersion).where(
        DatasetVersion.project_id == project.id, DatasetVersion.is_frozen.is_(False)).order_by(DatasetVersion.id))
    draft = next((d.version_tag for d in drafts if (d.filter_config or {}).get("by_policy")), None)
    if draft is not None:
        return NextVersionDecision(False, tag, f"draft {draft} is not frozen yet; the next version waits for it",
                                   pending)
    if not pending.anything:
        return NextVersionDecision(False, tag, f"nothing changed since {pending.since_tag or 'the start'}", pending)
    met = [f"{got} {what} >= {want}" for got, want, what in (
        (pending.annotations, policy.min_annotations, "new human annotations"),
        (pending.images, policy.min_images, "new images"),
        (pending.classes, policy.min_classes, "new classes")) if want is not None and got >= want]
    if policy.window_hours is not None and pending.since_at is None:
        met.append("no version yet")
    elif policy.window_hours is not None and pending.since_at is not None:
        since = pending.since_at if pending.since_at.tzinfo else pending.since_at.replace(tzinfo=UTC)
        age = ((now or datetime.now(UTC)) - since).total_seconds() / 3600
        if age >= policy.window_hours:
            met.append(f"{pending.since_tag} is {age:.1f} h old >= {policy.window_hours:g} h")
    no_threshold = all(v is None for v in (policy.min_annotations, policy.min_images, policy.min_classes,
                                           policy.window_hours))
    if met or no_threshold:
        return NextVersionDecision(True, tag, "; ".join(met) or "any change (no threshold set)", pending)
    return NextVersionDecision(False, tag, f"below the policy: {pending.describe()}", pending)


def cut_next_version(session: Session, project: Project, tag: str, *, actor: str | None = None) -> DatasetVersion:
    """The draft ``tag`` with the policy's query, split config and seed; splits stay stable across versions."""
    policy = get_policy(session, project)
    v = create_version(session, project, tag, query=policy.query or "", split=policy.split_config, seed=policy.seed,
                       actor=actor)
    v.filter_config = {**(v.filter_config or {}), "by_policy": True}  # the policy waits for its own drafts only
    session.flush()
    return v


def version_batches(session: Session, project: Project, v: DatasetVersion) -> list[int]:
    """The annotation batches frozen version ``v`` brought: after the version frozen before it, up to its own."""
    after = session.scalar(select(DatasetVersion.through_batch_id).where(
        DatasetVersion.project_id == project.id, DatasetVersion.is_frozen.is_(True), DatasetVersion.id != v.id,
        DatasetVersion.frozen_at <= v.frozen_at).order_by(DatasetVersion.frozen_at.desc()).limit(1))
    stmt = select(ImportBatch.id).where(ImportBatch.project_id == project.id).order_by(ImportBatch.id)
    if after is not None:
        stmt = stmt.where(ImportBatch.id > after)
    if v.through_batch_id is not None:
        stmt = stmt.where(ImportBatch.id <= v.through_batch_id)
    return list(session.scalars(stmt))
