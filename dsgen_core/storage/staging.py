"""Folders a process is still writing, marked so that a later process can tell a dead writer's
leftovers from a live writer's work.

An import unpacks a ZIP into one; an export writes into one beside its target and renames it into
place at the end. A failure removes the folder at once; kill -9 or a power cut cannot, so the
folder carries a marker naming its writer (pid, host, start) until it is done, and the next
import, export or ``dsgen gc`` removes marked folders whose writer is gone.

    mark(folder)                 # before the first file
    ...
    unmark(folder)               # done: the folder is no longer staging
    sweep([p for p in parent.iterdir() if is_marked(p)])
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MARKER = ".dsgen-staging"
FOREIGN_AGE = 24 * 3600.0  # a marker written on another host counts as abandoned after this long
UNREADABLE_AGE = 3600.0  # a marker cut short by the kill itself: abandoned after this long


def mark(folder: Path, **info: Any) -> None:
    # Written beside and renamed into place: a kill between creating the marker and writing it
    # would leave an empty marker that reads as "writer unknown, maybe alive" for an hour.
    tmp = folder / f"{MARKER}.{os.getpid()}"
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), **info}))
    os.replace(tmp, folder / MARKER)


def unmark(folder: Path) -> None:
    (folder / MARKER).unlink(missing_ok=True)


def is_marked(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def writer_alive(folder: Path) -> bool:
    """Whether the process that marked ``folder`` may still be writing it (True when unsure)."""
    marker = folder / MARKER
    try:
        owner = json.loads(marker.read_text())
        pid, host, started = int(owner["pid"]), str(owner["host"]), float(owner["started"])
    except FileNotFoundError:
        return True  # unmarked meanwhile: done, not abandoned
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return time.time() - marker.stat().st_mtime < UNREADABLE_AGE
        except FileNotFoundError:
            return True
    if host != socket.gethostname():
        return time.time() - started < FOREIGN_AGE
    return _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def transient_folder(parent: Path, prefix: str) -> Path:
    """A new marked folder in ``parent`` that never outlives its writer (an export staged beside its target).

    Its name also names the writer, because a kill can land between ``mkdir`` and the marker, or
    between ``unmark`` and the rename that publishes it; :func:`sweep_transient` then goes by the name.
    """
    folder = parent / f"{prefix}{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    mark(folder)
    return folder


def sweep_transient(parent: Path, prefix: str) -> list[Path]:
    """Remove the folders :func:`transient_folder` made in ``parent`` whose writer is gone."""
    removed = []
    for folder in sorted(parent.glob(f"{prefix}*")):
        if is_marked(folder):
            abandoned = not writer_alive(folder)
        else:
            named = _NAMED_WRITER.fullmatch(folder.name[len(prefix):])
            abandoned = (named is not None and named["host"] == socket.gethostname()
                         and not _pid_alive(int(named["pid"])))
        if abandoned:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


_NAMED_WRITER = re.compile(r"(?P<pid>\d+)@(?P<host>.+)-[0-9a-f]{8}")


def sweep(folders: Iterable[Path], *, dry_run: bool = False) -> list[Path]:
    """Remove the marked ones among ``folders`` whose writer is gone; returns them."""
    removed = []
    for folder in sorted(folders):
        if is_marked(folder) and not writer_alive(folder):
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
