"""Ontology versions list the project's label classes; a class is one row for its whole life.

A dataset version freezes the ontology version it was cut with. When a later batch brings a
class that version does not list, the ontology is forked: the new version lists the same class
rows as its parent plus the new one (seed 003: a new version adds, renames or retires classes, it
does not re-create them). Annotations, tracks, snapshots and model versions refer to class rows,
so everything older keeps meaning the same class.

    onto = current_ontology(session, project)
    add_classes(session, project, [star])     # forks onto if it is frozen
    [c.key for c in ontology_classes(session, onto.id)]
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dsgen_core.errors import NotFound
from dsgen_core.registry.schema import LabelClass, OntologyVersion, OntologyVersionClass, Project


def current_ontology(session: Session, project: Project) -> OntologyVersion:
    """The ontology version the project's new classes go into (its default)."""
    onto = session.get(OntologyVersion, project.default_ontology_version_id)
    if onto is None:
        raise NotFound(f"project {project.name!r} has no ontology version")
    return onto


def ontology_classes(session: Session, ontology_version_id: int) -> list[LabelClass]:
    """The classes an ontology version lists, oldest first."""
    return list(session.scalars(
        select(LabelClass).join(OntologyVersionClass, OntologyVersionClass.label_class_id == LabelClass.id)
        .where(OntologyVersionClass.ontology_version_id == ontology_version_id).order_by(LabelClass.id)
    ))


def ontology_names(session: Session, ontology_version_id: int) -> dict[int, str]:
    """Class id -> the name it has in that ontology version."""
    return dict(session.execute(select(OntologyVersionClass.label_class_id, OntologyVersionClass.display_name).where(
        OntologyVersionClass.ontology_version_id == ontology_version_id)).all())


def add_classes(session: Session, project: Project, classes: Sequence[LabelClass]) -> OntologyVersion:
    """Make the project's current ontology list ``classes``, forking it first if it is frozen.

    The project's row is locked first and read again, so two writers adding classes after a
    freeze fork the ontology once: the second sees the first's fork.
    """
    session.execute(update(Project).where(Project.id == project.id).values(id=Project.id))
    session.refresh(project)
    onto = current_ontology(session, project)
    listed = {i for (i,) in session.execute(select(OntologyVersionClass.label_class_id).where(
        OntologyVersionClass.ontology_version_id == onto.id))}
    missing = [c for c in dict.fromkeys(classes) if c.id not in listed]
    if not missing:
        return onto
    if onto.is_frozen:
        onto = _fork(session, project, onto)
    for c in missing:
        session.add(OntologyVersionClass(ontology_version_id=onto.id, label_class_id=c.id, display_name=c.display_name))
    session.flush()
    return onto


def _fork(session: Session, project: Project, parent: OntologyVersion) -> OntologyVersion:
    n = session.scalar(select(func.count()).select_from(OntologyVersion).where(OntologyVersion.project_id == project.id))
    fork = OntologyVersion(project_id=project.id, version_tag=f"o{(n or 0) + 1}", parent_id=parent.id)
    session.add(fork)
    session.flush()
    for class_id, name in session.execute(select(OntologyVersionClass.label_class_id, OntologyVersionClass.display_name)
                                          .where(OntologyVersionClass.ontology_version_id == parent.id)):
        session.add(OntologyVersionClass(ontology_version_id=fork.id, label_class_id=class_id, display_name=name))
    project.default_ontology_version_id = fork.id
    session.flush()
    return fork
