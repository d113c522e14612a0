"""Projects and their default dataset and ontology version."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import Dataset, OntologyVersion, Project, utcnow

DEFAULT_PROJECT = "default"


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name, Project.deleted_at.is_(None)))
    if project is None:
        raise NotFound(f"project {name!r} does not exist (import something into it first, or run `dsgen init --project {name}`)")
    return project


def ensure_project(session: Session, name: str = DEFAULT_PROJECT, *, source: str | None = None,
                   actor: str | None = None) -> Project:
    """The project ``name``, created if it does not exist.

    Insert-or-get under the database's own locking: two processes creating the same project at
    once both get it (the second waits for the first's row, then reads it), never a unique-key error.
    """
    project = session.scalar(select(Project).where(Project.name == name))
    if project is not None:
        return project
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        # a project's name is a folder (exports, insights) and a URL path segment
        raise DsgenError(f"project name {name!r}: use a name without '/', '\\' or control characters, other than "
                         "'.' and '..'")
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    created = session.execute(insert(Project).values(name=name, source=source, tags=[], status="ready",
                                                     created_at=utcnow())
                              .on_conflict_do_nothing(index_elements=["name"]).returning(Project.id)).scalar()
    if created is None:  # another writer made it first
        return session.scalars(select(Project).where(Project.name == name).execution_options(populate_existing=True)).one()
    project = session.get_one(Project, created)
    onto = OntologyVersion(project_id=project.id, version_tag="o1")
    session.add(onto)
    session.add(Dataset(project_id=project.id, name=name))
    session.flush()
    project.default_ontology_version_id = onto.id
    audit(session, "project.create", project_id=project.id, entity_type="project", entity_ids=[project.id], actor=actor)
    record_change(session, project_id=project.id, entity="projects", op="create", entity_id=project.id)
    return project
