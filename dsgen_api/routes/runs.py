"""``/api/projects/{p}/runs/{id}``: a long operation's state, and its Dagster events as server-sent events.

    GET .../runs/{id}/events      text/event-stream: one ``data:`` JSON per event, ``id:`` its cursor
                                  (a reconnect with Last-Event-ID resumes after it), ``event: end`` last

The browser reads the stream with fetch (EventSource cannot send the Authorization header).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from dsgen_api.deps import CommitFirst, ProjectCtx, project_ctx, project_path, requires
from dsgen_api.runs import RunLauncher, RunState

router = APIRouter(tags=["runs"], route_class=CommitFirst)
POLL_S = 0.5


class RunOut(BaseModel):
    run_id: str
    job: str
    status: str
    done: bool
    steps_done: int
    steps_total: int | None
    error: str | None
    events_url: str


class Started(BaseModel):
    run_id: str
    status_url: str
    events_url: str


def launcher(request: Request) -> RunLauncher:
    runs: RunLauncher = request.app.state.runs
    return runs


def started_for(project: str, run_id: str) -> Started:
    base = project_path(project, "runs", run_id)
    return Started(run_id=run_id, status_url=base, events_url=f"{base}/events")


def started(ctx: ProjectCtx, run_id: str) -> Started:
    return started_for(ctx.project.name, run_id)


def _out(project: str, st: RunState) -> RunOut:
    return RunOut(run_id=st.run_id, job=st.job, status=st.status, done=st.done, steps_done=st.steps_done,
                  steps_total=st.steps_total, error=st.error,
                  events_url=project_path(project, "runs", st.run_id, "events"))


@router.get("/api/projects/{project}/runs/{run_id}", **requires("viewer"))
def run_state(run_id: str, request: Request, ctx: ProjectCtx = project_ctx("viewer")) -> RunOut:
    return _out(ctx.project.name, launcher(request).state(run_id, ctx.project.name))


@router.get("/api/projects/{project}/runs/{run_id}/events", **requires("viewer"),
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
def run_events(run_id: str, request: Request, ctx: ProjectCtx = project_ctx("viewer"),
               last_event_id: int | None = Header(None)) -> StreamingResponse:
    runs, project = launcher(request), ctx.project.name
    runs.state(run_id, project)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        cursor = last_event_id
        while True:
            st = await run_in_threadpool(runs.state, run_id, project)
            events = await run_in_threadpool(runs.events, run_id, cursor) if st.status != "STARTING" else []
            for e in events:
                cursor = e.cursor
                yield f"id: {e.cursor}\ndata: {json.dumps(asdict(e))}\n\n"
            if st.done and not events:
                yield f"event: end\ndata: {_out(project, st).model_dump_json()}\n\n"
                return
            if await request.is_disconnected():
                return
            if not events:
                await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
