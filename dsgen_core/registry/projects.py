"""Projects, their default dataset and their current ontology version."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import NotFound
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.models import Dataset, LabelClass, OntologyVersion, Project

DEFAULT_PROJECT = "default"


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name, Project.deleted_at.is_(None)))
    if project is None:
        raise NotFound(f"project {name!r} does not exist (import something into it first, or run `dsgen init --project {name}`)")
    return project


def ensure_project(session: Session, name: str = DEFAULT_PROJECT, *, source: str | None = None) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is not None:
        return project
    project = Project(name=name, source=source, tags=[])
    session.add(project)
    session.flush()
    onto = OntologyVersion(project_id=project.id, version_tag="o1")
    session.add(onto)
    session.add(Dataset(project_id=project.id, name=name))
    session.flush()
    project.default_ontology_version_id = onto.id
    audit(session, "project.create", project_id=project.id, entity_type="project", entity_ids=[project.id])
    record_change(session, project_id=project.id, entity="projects", op="create", entity_id=project.id)
    return project


def current_ontology(session: Session, project: Project) -> OntologyVersion:
    """The ontology version new labels go into; a frozen one is forked into a new version first."""
    onto = session.get(OntologyVersion, project.default_ontology_version_id)
    if onto is None:
        raise NotFound(f"project {project.name!r} has no ontology version")
    if not onto.is_frozen:
        return onto
    n = len(session.scalars(select(OntologyVersion.id).where(OntologyVersion.project_id == project.id)).all())
    fork = OntologyVersion(project_id=project.id, version_tag=f"o{n + 1}", parent_id=onto.id)
    session.add(fork)
    session.flush()
    for lc in session.scalars(select(LabelClass).where(LabelClass.ontology_version_id == onto.id)):
        session.add(
            LabelClass(
                ontology_version_id=fork.id,
                key=lc.key,
                display_name=lc.display_name,
                supercategory=lc.supercategory,
                synonyms=list(lc.synonyms or []),
                color=lc.color,
                shape_type=lc.shape_type,
                keypoint_spec=lc.keypoint_spec,
                attribute_schema=lc.attribute_schema,
                external_id=lc.external_id,
                extra=lc.extra,
            )
        )
    project.default_ontology_version_id = fork.id
    session.flush()
    return fork


def label_classes(session: Session, ontology_version_id: int) -> list[LabelClass]:
    return list(
        session.scalars(
            select(LabelClass).where(LabelClass.ontology_version_id == ontology_version_id).order_by(LabelClass.id)
        )
    )
