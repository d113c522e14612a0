"""Ultralytics as dsgen runs it: imported offline in one place, its settings under $DSGEN_HOME,
its output on stderr (dsgen keeps stdout for results), fonts provided instead of fetched."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from dsgen_core.config import load_settings


def import_ultralytics() -> ModuleType:
    """``ultralytics``, imported offline unless the caller already chose otherwise.

    Ultralytics resolves public DNS names when it is imported (its ``ONLINE`` flag), and with that
    flag set it sends usage events and pip-installs missing requirements. dsgen never uses the
    network at run time, and ``YOLO_OFFLINE`` is read once, at import, so it is set here.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    # Ultralytics' settings (and the fonts dsgen gives it) live under $DSGEN_HOME, not in the user's
    # global Ultralytics folder, unless the caller chose one.
    os.environ.setdefault("YOLO_CONFIG_DIR", str(load_settings().home / "ultralytics"))
    import ultralytics

    return ultralytics


@contextlib.contextmanager
def ultralytics_output_to_stderr() -> Iterator[None]:
    """Send Ultralytics' logger and anything printed (its tqdm bars look up sys.stdout when made) to stderr."""
    handlers = [h for h in logging.getLogger("ultralytics").handlers
                if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout]
    for h in handlers:
        h.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for h in handlers:
            h.setStream(sys.stdout)


FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


def provide_fonts() -> None:
    """Ultralytics checks for Arial.ttf whenever it reads a dataset and fetches it from GitHub when
    missing; give it matplotlib's bundled DejaVu Sans under those names so nothing is fetched."""
    from matplotlib import get_data_path
    from ultralytics.utils import USER_CONFIG_DIR

    dejavu = Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in FONTS:
        target = Path(USER_CONFIG_DIR) / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dejavu, target)
