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
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MARKER = ".dsgen-staging"
FOREIGN_AGE = 24 * 3600.0  # a marker written on another host counts as abandoned after this long
UNREADABLE_AGE = 3600.0  # a marker cut short by the kill itself: abandoned after this long


def mark(folder: Path, **info: Any) -> None:
    (folder / MARKER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                             **info}))


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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def sweep(folders: Iterable[Path], *, dry_run: bool = False) -> list[Path]:
    """Remove the marked ones among ``folders`` whose writer is gone; returns them."""
    removed = []
    for folder in sorted(folders):
        if is_marked(folder) and not writer_alive(folder):
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
