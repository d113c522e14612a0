"""CPU training uses every core: Ultralytics' device selection leaves torch cpu_count - 1 threads
(one on a 2-core machine: the demo trained on half the machine)."""

from __future__ import annotations

import dataclasses
import os

import torch

from dsgen_core.inference.ultralytics_env import import_ultralytics
from dsgen_core.ml.recipes import BUILTIN_RECIPES
from dsgen_core.ml.trainer import use_cpu_threads


def test_training_threads_follow_the_recipe_after_ultralytics_device_selection() -> None:
    import_ultralytics()
    from ultralytics.utils.torch_utils import select_device

    before = torch.get_num_threads()
    try:
        select_device("cpu", verbose=False)
        assert torch.get_num_threads() == max(1, min(8, (os.cpu_count() or 1) - 1))  # what Ultralytics leaves
        recipe = BUILTIN_RECIPES["tiny"]
        assert use_cpu_threads(recipe) == torch.get_num_threads() == (os.cpu_count() or 1)
        assert use_cpu_threads(dataclasses.replace(recipe, threads=1)) == torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
