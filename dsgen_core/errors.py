"""Errors meant for users: the CLI prints them without a traceback."""

from __future__ import annotations


class DsgenError(Exception):
    """A user-facing error: bad input, a refused operation, a missing thing."""


class NotFound(DsgenError):
    pass


class VersionTampered(DsgenError):
    """A frozen dataset version's stored content no longer matches its content hash.

    Not the user's mistake, and not a passing failure either: the CLI exits with its own code (4).
    """


class ServiceUnavailable(DsgenError):
    """A service dsgen needs (the Chroma server) cannot be reached; the same command may work later.

    The CLI exits 3 (environment), as for an unreachable database.
    """


class UploadTooLarge(DsgenError):
    """A file sent is larger than the configured limit (HTTP 413)."""
