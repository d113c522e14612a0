"""Where dsgen keeps its data, read from the environment.

``DSGEN_HOME`` (default ``./data``) is the data root; ``DSGEN_DATABASE_URL`` overrides the
registry database, which otherwise is the SQLite file ``$DSGEN_HOME/registry/registry.db``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dsgen_core.errors import DsgenError


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    storage_root: str

    @property
    def database_shown(self) -> str:
        """The database URL as it may be printed or logged: the password masked."""
        return redact_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def export_dir(self, project: str, tag: str, fmt: str) -> Path:
        """Where an export of a dataset version goes: ``$DSGEN_HOME/exports/<project>/<tag>/<fmt>``."""
        return _inside(self.home / "exports", project, tag, fmt)

    def insights_dir(self, project: str, tag: str) -> Path:
        """Where the charts of a dataset version go: ``$DSGEN_HOME/insights/<project>/<tag>``."""
        return _inside(self.home / "insights", project, tag)


def redact_url(url: str) -> str:
    """``postgresql://ana:secret@host/db`` -> ``postgresql://ana:***@host/db``; other URLs unchanged."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


def load_settings(home: str | os.PathLike[str] | None = None, database_url: str | None = None) -> Settings:
    root = Path(home or os.environ.get("DSGEN_HOME") or "data").resolve()
    url = database_url or os.environ.get("DSGEN_DATABASE_URL") or f"sqlite:///{root / 'registry' / 'registry.db'}"
    storage = os.environ.get("DSGEN_STORAGE") or str(root / "registry")
    return Settings(home=root, database_url=url, storage_root=storage)


def _inside(root: Path, *parts: str) -> Path:
    """``root/parts...``, refused unless every part is one plain folder name (a project or version named
    ``..`` or ``a/b`` must not reach another's files)."""
    for part in parts:
        if not part or part in (".", "..") or "/" in part or "\\" in part or "\0" in part:
            raise DsgenError(f"{part!r} cannot name a folder under {root}")
    return root.joinpath(*parts)
