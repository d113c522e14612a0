"""What was pushed to CVAT, and how far the annotators are (``dsgen cvat status``).

    for row in cvat_status(session, project, live=True):
        row.task_id, row.status, row.cvat_state, row.jobs
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.cvat.connection import CvatServer, cvat_call, cvat_client
from dsgen_core.registry.schema import CvatTask, Project


@dataclass
class TaskStatus:
    export_job_id: int
    task_id: int | None
    name: str
    url: str | None
    images: int
    status: str  # dsgen's: how far the push got
    pushed_at: datetime | None
    pulled_at: datetime | None
    last_pull_batch_id: int | None
    cvat_state: str | None = None  # CVAT's task status (annotation, validation, completed), when asked
    jobs: dict[str, int] | None = None  # CVAT job states -> how many

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("pushed_at", "pulled_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def cvat_status(session: Session, project: Project, *, live: bool = True,
                server: CvatServer | None = None) -> list[TaskStatus]:
    """The project's pushed tasks, newest first; ``live`` also asks CVAT for each task's state."""
    rows = list(session.scalars(select(CvatTask).where(CvatTask.project_id == project.id)
                                .order_by(CvatTask.id.desc())))
    out = [TaskStatus(t.export_job_id, t.task_id, t.name, t.url, t.frames, t.status, t.pushed_at, t.pulled_at,
                      t.last_pull_batch_id) for t in rows]
    asked = [(t, s) for t, s in zip(rows, out, strict=True) if t.task_id is not None and t.status != "removed"]
    if not live or not asked:
        return out
    server = server or CvatServer.from_env()
    with cvat_client(server) as client:
        for t, s in asked:
            if t.server != server.url:
                continue
            with cvat_call(f"read task {t.task_id}", server.url):
                task = client.tasks.retrieve(t.task_id)  # type: ignore[attr-defined]
                s.cvat_state = str(task.status.value if hasattr(task.status, "value") else task.status)
                jobs: dict[str, int] = {}
                for j in task.get_jobs():
                    state = str(getattr(j.state, "value", j.state))
                    jobs[state] = jobs.get(state, 0) + 1
                s.jobs = jobs
    return out
