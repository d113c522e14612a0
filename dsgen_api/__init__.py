"""dsgen's REST API (FastAPI): the registry, queries, tags and metadata, versions and models over HTTP.

The routes are thin: each one checks who calls (``deps``) and hands the work to ``dsgen_core``,
as the CLI does. ``dsgen serve`` runs it; ``create_app`` builds it for tests and servers.
"""
