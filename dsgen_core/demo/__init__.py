"""Synthetic demo data shaped like real CVAT exports, for demos, tests and benchmarks.

``python -m dsgen_core.demo.synth OUT_DIR`` writes the demo dataset from the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsgen_core.demo.synth import SHAPE_KINDS, DemoDataset, generate_demo_dataset

__all__ = ["SHAPE_KINDS", "DemoDataset", "generate_demo_dataset"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m dsgen_core.demo.synth` does not import the module twice.
    if name in __all__:
        from dsgen_core.demo import synth

        return getattr(synth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
