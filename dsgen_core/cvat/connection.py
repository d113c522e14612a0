"""The CVAT server dsgen talks to, through the official ``cvat-sdk`` client.

``CVAT_URL`` names the server; ``CVAT_ACCESS_TOKEN`` (a personal access token, sent as
``Bearer``; a value with a space, such as ``Token abc``, is sent as the whole header) or
``CVAT_USERNAME`` + ``CVAT_PASSWORD`` authenticate. Credentials never appear in messages.

Every failure of a call becomes one line naming what was being done: an unreachable server is
:class:`~dsgen_core.errors.ServiceUnavailable` (exit 3), a refusal (401/403, a label CVAT will not
take, a file too large) is a :class:`~dsgen_core.errors.DsgenError` (exit 2) with CVAT's own reason.

    with cvat_client() as client, cvat_call("create task 'cars'"):
        task = client.tasks.create(spec)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dsgen_core.errors import DsgenError, ServiceUnavailable

ENV_URL, ENV_TOKEN, ENV_USER, ENV_PASSWORD = "CVAT_URL", "CVAT_ACCESS_TOKEN", "CVAT_USERNAME", "CVAT_PASSWORD"
SUPPORTED_SERVERS = "CVAT 2.23 and newer"


@dataclass(frozen=True)
class CvatServer:
    url: str
    token: str | None
    username: str | None
    password: str | None

    @classmethod
    def from_env(cls) -> CvatServer:
        url = os.environ.get(ENV_URL, "").strip().rstrip("/")
        if not url:
            raise DsgenError(f"no CVAT server: set {ENV_URL} (and {ENV_TOKEN}, or {ENV_USER} and {ENV_PASSWORD})")
        token = os.environ.get(ENV_TOKEN) or None
        user, password = os.environ.get(ENV_USER) or None, os.environ.get(ENV_PASSWORD) or None
        if token is None and (user is None or password is None):
            raise DsgenError(f"no CVAT credentials: set {ENV_TOKEN}, or {ENV_USER} and {ENV_PASSWORD}")
        return cls(url, token, user, password)


@contextmanager
def cvat_call(what: str, server: str = "") -> Iterator[None]:
    """Turn the SDK's exceptions inside into one-line errors that say ``what`` failed."""
    from cvat_sdk.api_client.exceptions import ApiException, OpenApiException
    from urllib3.exceptions import HTTPError

    where = f" on {server}" if server else ""
    try:
        yield
    except ApiException as exc:
        status = exc.status
        reason = _reason(exc)
        if status in (401, 403):
            raise DsgenError(f"CVAT refused to {what}{where}: not allowed ({status}: {reason}); check "
                             f"{ENV_TOKEN} or {ENV_USER}/{ENV_PASSWORD}") from None
        if status is None or (isinstance(status, int) and status >= 500):
            raise ServiceUnavailable(f"CVAT failed to {what}{where}: {status or 'no answer'} {reason}") from None
        raise DsgenError(f"CVAT refused to {what}{where}: {status} {reason}") from None
    except (HTTPError, ConnectionError, TimeoutError) as exc:
        raise ServiceUnavailable(f"cannot reach CVAT{where} to {what}: {type(exc).__name__}: {exc}") from None
    except OpenApiException as exc:
        raise DsgenError(f"CVAT's answer to {what}{where} does not fit its API: {exc}") from None


def _reason(exc: object) -> str:
    body = getattr(exc, "body", None)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or getattr(exc, "reason", ""))
    try:
        data = json.loads(text)
        text = json.dumps(data, ensure_ascii=False) if not isinstance(data, str) else data
    except ValueError:
        pass
    return " ".join(text.split())[:300]


@contextmanager
def cvat_client(server: CvatServer | None = None) -> Iterator[object]:
    """A logged-in ``cvat_sdk.Client`` for ``server`` (default: the environment's)."""
    from cvat_sdk import Client, Config

    server = server or CvatServer.from_env()
    logging.getLogger("cvat_sdk").setLevel(logging.WARNING)
    with cvat_call("connect", server.url):
        # The version check is off: it logs a warning for any server newer than the SDK, and
        # SDKs >= 2.30 fail it on 2.23 servers; dsgen uses only API that those servers have.
        client = Client(server.url, config=Config(status_check_period=0.2), check_server_version=False)
    try:
        with cvat_call("log in", server.url):
            if server.token:
                header = server.token if " " in server.token.strip() else f"Bearer {server.token.strip()}"
                client.api_client.set_default_header("Authorization", header)
            else:
                client.login((server.username or "", server.password or ""))
            # A token is only a header: ask who it is, so a wrong one fails here, before any record is written.
            client.api_client.users_api.retrieve_self()
        yield client
    finally:
        client.close()


# The task's labels, annotations and jobs as CVAT's JSON: big answers (a task's every shape) skip the
# SDK's model objects, which cost more than the request itself; the requests are the SDK's own.


def _pages(endpoint: Any, what: str, url: str, **filters: Any) -> list[dict[str, Any]]:
    from cvat_sdk.core.helpers import get_paginated_collection

    with cvat_call(what, url):
        return list(get_paginated_collection(endpoint, return_json=True, **filters))


def _answer(call: Any, what: str, url: str, *args: Any) -> dict[str, Any]:
    with cvat_call(what, url):
        _, response = call(*args, _parse_response=False)
        return dict(json.loads(response.data))


def task_labels(client: Any, task_id: int, url: str) -> list[dict[str, Any]]:
    return _pages(client.api_client.labels_api.list_endpoint, f"read the labels of task {task_id}", url,
                  task_id=task_id)


def task_annotations(client: Any, task_id: int, url: str) -> dict[str, Any]:
    return _answer(client.api_client.tasks_api.retrieve_annotations, f"read the annotations of task {task_id}", url,
                   task_id)


def task_jobs(client: Any, task_id: int, url: str) -> list[dict[str, Any]]:
    """The task's annotation jobs: not its ground-truth or consensus jobs, which hold other copies of its frames."""
    jobs = _pages(client.api_client.jobs_api.list_endpoint, f"list the jobs of task {task_id}", url, task_id=task_id)
    return [j for j in jobs if j.get("type", "annotation") == "annotation"]


def job_details(client: Any, job_id: int, url: str) -> dict[str, Any]:
    return _answer(client.api_client.jobs_api.retrieve, f"read job {job_id}", url, job_id)


def job_annotations(client: Any, job_id: int, url: str) -> dict[str, Any]:
    return _answer(client.api_client.jobs_api.retrieve_annotations, f"read the annotations of job {job_id}", url,
                   job_id)
