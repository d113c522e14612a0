"""Errors meant for users: the CLI prints them without a traceback."""

from __future__ import annotations


class DsgenError(Exception):
    """A user-facing error: bad input, a refused operation, a missing thing."""


class NotFound(DsgenError):
    pass
