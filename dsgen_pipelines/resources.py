"""Resources: the registry (database + project) and the storage files go to, configured from the environment.

``DSGEN_HOME``, ``DSGEN_DATABASE_URL``, ``DSGEN_STORAGE`` and ``DSGEN_PROJECT`` are read through
``dg.EnvVar`` when they are set (so their values never enter Dagster's stored config); unset,
they fall back to dsgen's own defaults (``./data``, SQLite under it, project ``default``).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, overload

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr
from sqlalchemy.orm import Session

from dsgen_core.config import Settings, load_settings
from dsgen_core.errors import DsgenError, NotFound, ServiceUnavailable
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import DEFAULT_PROJECT, get_project
from dsgen_core.registry.schema import Project
from dsgen_core.storage import LocalStorage, Storage

if TYPE_CHECKING:
    from dsgen_core.embeddings.store import VectorStore

DAGSTER_ACTOR = "dagster:"

# Transient failures (a database or Chroma server restarting, a full queue) are retried with
# backoff; a user's mistake is not (see user_errors), so a failing partition does not loop.
TRANSIENT_RETRIES = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
TRAINING_RETRIES = dg.RetryPolicy(max_retries=1, delay=10)  # a training costs minutes: one more try


@contextmanager
def user_errors() -> Iterator[None]:
    """A dsgen refusal (bad data, a missing version) fails the step once, with its one-line message:
    retrying cannot fix it. An unreachable service (ServiceUnavailable) is transient and retried."""
    try:
        yield
    except ServiceUnavailable:
        raise
    except DsgenError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def run_actor(context: dg.OpExecutionContext | dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
    """Who the audit log says wrote what a run wrote: ``dagster:<run id>``."""
    return f"{DAGSTER_ACTOR}{context.run.run_id}"  # a check's context has no run_id of its own


@overload
def env_or(name: str, default: str) -> dg.EnvVar | str: ...
@overload
def env_or(name: str, default: None = None) -> dg.EnvVar | str | None: ...
def env_or(name: str, default: str | None = None) -> dg.EnvVar | str | None:
    """``dg.EnvVar(name)`` where the variable is set, else ``default``."""
    return dg.EnvVar(name) if os.environ.get(name) else default


class RegistryResource(dg.ConfigurableResource):
    """The dsgen registry database and the project the pipelines work on."""

    home: str | None = None
    database_url: str | None = None
    project: str = DEFAULT_PROJECT

    _registry: Registry | None = PrivateAttr(default=None)

    @property
    def settings(self) -> Settings:
        return load_settings(self.home, self.database_url)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.settings)
        return self._registry

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.registry.session() as s:
            yield s

    def get_project(self, session: Session) -> Project:
        return get_project(session, self.project)

    def project_or_skip(self, session: Session) -> Project | dg.SkipReason:
        """The project, or why a sensor's tick skips: it does not exist (yet)."""
        try:
            return self.get_project(session)
        except NotFound as exc:
            return dg.SkipReason(str(exc))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._registry is not None:
            self._registry.dispose()
            self._registry = None


class StorageResource(dg.ConfigurableResource):
    """Where masks, thumbnails and imported images live: a local folder or ``s3://bucket/prefix``.

    S3 clients come from dagster-aws's ``S3Resource`` (endpoint, region and credentials there).
    """

    home: str | None = None
    root: str | None = None
    s3: S3Resource

    @property
    def root_uri(self) -> str:
        return self.root or load_settings(self.home).storage_root

    def open(self) -> Storage:
        root = self.root_uri
        if root.startswith("s3://"):
            from dsgen_core.storage.s3 import S3Storage

            return S3Storage(root, client=self.s3.get_client())
        return LocalStorage(root)


class ChromaResource(dg.ConfigurableResource):
    """The vector store: a Chroma server at ``url`` (``DSGEN_CHROMA_URL``), else embedded under the registry."""

    url: str | None = None

    def open(self, settings: Settings) -> "VectorStore":
        from dsgen_core.embeddings.store import open_store

        return open_store(settings, url=self.url)


def build_resources() -> dict[str, dg.ConfigurableResource]:
    home = env_or("DSGEN_HOME")
    return {
        "registry": RegistryResource(
            home=home, database_url=env_or("DSGEN_DATABASE_URL"), project=env_or("DSGEN_PROJECT", DEFAULT_PROJECT)
        ),
        "storage": StorageResource(
            home=home, root=env_or("DSGEN_STORAGE"),
            s3=S3Resource(endpoint_url=env_or("DSGEN_S3_ENDPOINT_URL") or env_or("AWS_ENDPOINT_URL"),
                          region_name=env_or("AWS_REGION") or env_or("AWS_DEFAULT_REGION")),
        ),
        "chroma": ChromaResource(url=env_or("DSGEN_CHROMA_URL")),
    }
