"""Projects and their default dataset and ontology version."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import NotFound
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import Dataset, OntologyVersion, Project

DEFAULT_PROJECT = "default"


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name, Project.deleted_at.is_(None)))
    if project is None:
        raise NotFound(f"project {name!r} does not exist (import something into it first, or run `dsgen init --project {name}`)")
    return project


def ensure_project(session: Session, name: str = DEFAULT_PROJECT, *, source: str | None = None,
                   actor: str | None = None) -> Project:
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
    audit(session, "project.create", project_id=project.id, entity_type="project", entity_ids=[project.id], actor=actor)
    record_change(session, project_id=project.id, entity="projects", op="create", entity_id=project.id)
    return project
