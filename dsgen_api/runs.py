"""Long operations started from the API (uploads, freezes, exports, CVAT, training) are Dagster runs:
the API picks the run id, starts ``python -m dsgen_pipelines.api_run`` and answers at once; the run's
progress is read back from Dagster's event log (GET .../runs/{id}, and its events as server-sent events).

A run belongs to the project it was started for (the ``dsgen/project`` tag): another project's
members get 404 for it, as for any of its objects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsgen_core.accounts.access import Principal
from dsgen_core.accounts.usage import RUN_USER_TAG
from dsgen_core.errors import NotFound
from dsgen_core.registry.db import Registry

if TYPE_CHECKING:
    import dagster as dg

PROJECT_TAG, ACTOR_TAG = "dsgen/project", "dsgen/api_actor"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class RunEvent:
    cursor: int
    type: str  # Dagster's event type (STEP_START, ASSET_MATERIALIZATION, ...) or "LOG"
    message: str
    step: str | None
    level: str
    at: float


@dataclass
class RunState:
    run_id: str
    job: str
    status: str  # STARTING (process up, run not yet recorded), Dagster's run status, or FAILED_TO_START
    steps_done: int = 0
    steps_total: int | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL or self.status == "FAILED_TO_START"


class RunLauncher:
    """Starts runs in their own processes and reads their state; one per app."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._procs: dict[str, tuple[subprocess.Popen[bytes], str, str]] = {}  # run id -> (process, job, project)
        self._lock = threading.Lock()
        self._instance: dg.DagsterInstance | None = None

    @property
    def instance(self) -> dg.DagsterInstance:
        with self._lock:
            if self._instance is None:
                import dagster as dg

                from dsgen_pipelines.launch import ensure_dagster_home

                ensure_dagster_home()
                self._instance = dg.DagsterInstance.get()
            return self._instance

    def log_dir(self) -> Path:
        path = Path(self.instance.root_directory) / "api_runs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def launch(self, job: str, *, project: str, principal: Principal, run_config: dict[str, Any] | None = None,
               partition: str | None = None, assets: list[str] | None = None,
               remove_on_failure: Path | None = None) -> str:
        """Start ``job`` in its own process; ``remove_on_failure``: a folder the run's inputs are in,
        deleted if the run fails (an upload the import refused)."""
        run_id = str(uuid.uuid4())
        s = self.registry.settings
        env = {**os.environ, "DSGEN_HOME": str(s.home), "DSGEN_DATABASE_URL": s.database_url,
               "DSGEN_STORAGE": str(s.storage_root), "DSGEN_PROJECT": project,
               "DAGSTER_HOME": self.instance.root_directory}
        cmd = [sys.executable, "-m", "dsgen_pipelines.api_run", job, "--run-id", run_id,
               "--config", json.dumps(run_config or {}), "--tag", f"{PROJECT_TAG}={project}", "--tag", f"{ACTOR_TAG}={principal.actor}",
               "--tag", f"{RUN_USER_TAG}={principal.user_id}"]
        if partition:
            cmd.append(f"--partition={partition}")  # one token: a value starting with - is not an option
        for a in assets or []:
            cmd.append(f"--asset={a}")
        if remove_on_failure is not None:
            cmd.append(f"--remove-on-failure={remove_on_failure}")
        with open(self.log_dir() / f"{run_id}.log", "wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        with self._lock:
            self._procs[run_id] = (proc, job, project)
            for done in [k for k, (p, _j, _pr) in self._procs.items() if p.poll() is not None and k != run_id]:
                del self._procs[done]  # reaped by poll(); a finished run is answered from Dagster's records
        return run_id

    def running(self) -> int:
        """Runs this server started whose process has not ended: the work queue's depth."""
        with self._lock:
            return sum(1 for proc, _job, _p in self._procs.values() if proc.poll() is None)

    def state(self, run_id: str, project: str) -> RunState:
        """The run's state; :class:`NotFound` unless it was started for ``project``."""
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            with self._lock:
                started = self._procs.get(run_id)
            if started is None or started[2] != project:
                raise NotFound(f"no run {run_id} in project {project!r}")
            proc, job, _ = started
            if proc.poll() is None:
                return RunState(run_id, job, "STARTING")
            tail = (self.log_dir() / f"{run_id}.log").read_text(errors="replace").strip().splitlines()[-1:]
            return RunState(run_id, job, "FAILED_TO_START", error=tail[0] if tail else f"exit {proc.returncode}")
        if run.tags.get(PROJECT_TAG) != project:
            raise NotFound(f"no run {run_id} in project {project!r}")
        if run.status.value not in TERMINAL:
            with self._lock:
                started = self._procs.get(run_id)
            if started is not None and started[0].poll() is not None:  # killed (out of memory, kill -9)
                self.instance.report_run_failed(run, f"the run's process ended with exit code {started[0].returncode}")
                run = self.instance.get_run_by_id(run_id) or run
        stats = self.instance.get_run_stats(run_id)
        total = None
        if run.execution_plan_snapshot_id:
            snap = self.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            total = len(run.step_keys_to_execute or [s.key for s in snap.steps])
        error = None
        if run.status.value == "FAILURE":  # the failed step says why; the run's own message only names it
            error = self._failure(run_id)
        return RunState(run_id, run.job_name, run.status.value, stats.steps_succeeded, total, error)

    def _failure(self, run_id: str) -> str | None:
        from dagster import DagsterEventType

        found: dict[str, str] = {}
        for kind in (DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE):
            recs = self.instance.get_records_for_run(run_id, of_type=kind, ascending=False, limit=1).records
            if recs:
                found[kind.name] = _message(recs[0].event_log_entry)
        return found.get("STEP_FAILURE") or found.get("RUN_FAILURE")

    def events(self, run_id: str, after: int | None = None) -> list[RunEvent]:
        """The run's events after the cursor ``after`` (a storage id), oldest first."""
        import logging

        from dagster._core.storage.event_log.base import EventLogCursor  # the public API takes its string form

        cursor = EventLogCursor.from_storage_id(after).to_string() if after is not None else None
        conn = self.instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
        out = []
        for rec in conn.records:
            e = rec.event_log_entry
            de = e.dagster_event
            out.append(RunEvent(rec.storage_id, de.event_type.name if de is not None else "LOG", _message(e),
                                e.step_key, logging.getLevelName(e.level), e.timestamp))
        return out


def _message(entry: Any) -> str:
    """What an event says; for a failed step, its error (a dsgen refusal's one line, else the exception's)."""
    de = entry.dagster_event
    if de is not None and de.is_step_failure:
        data = de.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return str(data.user_failure_data.description)
        if data.error is not None:
            return f"{data.error.cls_name}: {data.error.message.strip()}"
    return str((de.message if de is not None and de.message else entry.user_message) or "")
