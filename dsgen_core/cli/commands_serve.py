"""``dsgen serve``: the REST API (``/api``, docs at ``/api/docs``) on one port."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the REST API for the environment's registry ($DSGEN_HOME, DSGEN_DATABASE_URL)."""
    import uvicorn

    from dsgen_api.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=False)
