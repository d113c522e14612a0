"""``dsgen serve``: the REST API (``/api``, docs at ``/api/docs``) on one port."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the REST API for the environment's registry ($DSGEN_HOME, DSGEN_DATABASE_URL)."""
    import logging

    import uvicorn

    from dsgen_api.app import create_app
    from dsgen_api.observe import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.getLogger("dsgen").handlers[:] = [handler]
    logging.getLogger("dsgen").setLevel(logging.INFO)
    uvicorn.run(create_app(), host=host, port=port, log_level="warning", access_log=False, proxy_headers=False)
