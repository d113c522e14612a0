"""The one place this package imports Ultralytics, so its network defaults are switched off first."""

from __future__ import annotations

import os
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
