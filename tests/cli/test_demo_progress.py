"""The demo shows each training epoch as the Dagster run logs it (a run of minutes is not silent)."""

from __future__ import annotations

import inspect

from dsgen_core.cli.commands_demo import _EPOCH
from dsgen_pipelines.ml import assets


def test_the_demo_recognises_the_epoch_lines_the_training_asset_logs() -> None:
    source = inspect.getsource(assets)
    assert 'context.log.info(f"epoch {epoch}/{epochs} {shown}")' in source  # the line the demo follows
    line = ("2026-12-02 14:08:01 +0000 - dagster - INFO - train_model_job - 1a2b - model_version - "
            "epoch 2/30 {'train_loss': 1.2345, 'map50': 0.5}")
    m = _EPOCH.search(line)
    assert m is not None and m.group(0) == "epoch 2/30 {'train_loss': 1.2345, 'map50': 0.5}"
    assert _EPOCH.search("epoch of the run") is None
