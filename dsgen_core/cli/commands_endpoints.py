"""``dsgen endpoints deploy|list|remove``: the project's inference endpoints (``POST /api/infer/<name>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option

if TYPE_CHECKING:
    from dsgen_core.inference.endpoints import Endpoint


def _line(e: Endpoint) -> str:
    last = e.last_request_at.isoformat(timespec="seconds") if e.last_request_at else "never"
    error = f"  error: {e.error}" if e.error else ""
    return (f"{e.name:<20} {e.model_version:<6} {e.status:<9} {e.url or '-':<32} "
            f"{e.total_requests:>8} requests, last {last}{error}")


@click.group()
def endpoints() -> None:
    """Inference endpoints: a model version's ONNX artifact served by `dsgen serve` at /api/infer/NAME."""


@endpoints.command("deploy")
@click.argument("name")
@click.option("--model", "model_ref", help="Model version (m3); default: the project's production model.")
@project_option
@json_option
def deploy(name: str, model_ref: str | None, project: str, as_json: bool) -> None:
    """Deploy (or redeploy) endpoint NAME; the model is loaded once here to check that it serves."""
    from dsgen_core.inference.endpoints import deploy_endpoint
    from dsgen_core.registry.projects import get_project
    from dsgen_core.storage import open_storage

    reg = open_registry()
    with reg.session() as s:
        e = deploy_endpoint(s, get_project(s, project), name, model_ref, storage=open_storage(reg.settings.storage_root),
                            cache_dir=reg.settings.home / "cache" / "endpoints", actor=cli_actor())
        out = e.to_dict()
    emit(out, as_json, f"endpoint {e.name}: {e.model_version} {e.status} at {e.url}"
         + (f" ({e.error})" if e.error else ""))


@endpoints.command("list")
@click.option("--history", is_flag=True, help="Also the undeployed endpoints and replaced deployments.")
@project_option
@json_option
def list_(history: bool, project: str, as_json: bool) -> None:
    """The project's endpoints: model, status, URL and request counts."""
    from dsgen_core.inference.endpoints import list_endpoints
    from dsgen_core.registry.projects import get_project

    reg = open_registry()
    with reg.session() as s:
        rows = list_endpoints(s, get_project(s, project), history=history)
    emit([e.to_dict() for e in rows], as_json,
         "\n".join(_line(e) for e in rows) or f"no endpoints in project {project!r} (dsgen endpoints deploy NAME)")


@endpoints.command("remove")
@click.argument("name")
@project_option
@json_option
def remove(name: str, project: str, as_json: bool) -> None:
    """Stop serving endpoint NAME; its row and request counts stay (list --history)."""
    from dsgen_core.inference.endpoints import undeploy_endpoint
    from dsgen_core.registry.projects import get_project

    reg = open_registry()
    with reg.session() as s:
        e = undeploy_endpoint(s, get_project(s, project), name, actor=cli_actor())
        out = e.to_dict()
    emit(out, as_json, f"endpoint {e.name} removed ({e.total_requests} requests served)")
