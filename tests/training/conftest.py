"""One small trained model shared by the training tests (training is the slow part).

- ``trained``: a SQLite registry (its own home) with 48 synthetic demo images in project ``p``,
  version ``v1`` frozen, and model version ``m1`` trained on it with the ``tiny`` recipe
  (3 epochs at 64 px, a checkpoint every epoch). Tests that change the registry make their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dsgen_core.config import load_settings
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.ml.recipes import get_recipe
from dsgen_core.ml.trainer import TrainResult, train_model
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.lifecycle import create_version, freeze_version
from support import import_file

NETGUARD = Path(__file__).parent / "netguard"


@dataclass
class Trained:
    registry: Registry
    storage: LocalStorage
    result: TrainResult
    data: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DSGEN_HOME": str(self.registry.settings.home),
                "DSGEN_DATABASE_URL": self.registry.settings.database_url}


def make_registry(home: Path, n_images: int = 48, seed: int = 3, add_class: str | None = None,
                  tag: str = "v1", data: Path | None = None) -> tuple[Registry, Path]:
    """A registry at ``home`` with demo images imported into project ``p`` and version ``tag`` frozen."""
    reg = Registry(load_settings(home=home))
    data = data or generate_demo_dataset(home / "src", n_images=n_images, seed=seed, add_class=add_class).root
    import_file(reg, data / "annotations" / "instances_default.json", images=data / "images", project="p")
    freeze(reg, tag)
    return reg, data


def freeze(reg: Registry, tag: str, query: str = "") -> None:
    with reg.session() as s:
        create_version(s, get_project(s, "p"), tag, query=query, seed=1)
    with reg.session() as s:
        freeze_version(s, get_project(s, "p"), tag, storage=LocalStorage(reg.settings.storage_root))


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    reg, data = make_registry(tmp_path_factory.mktemp("trained"))
    storage = LocalStorage(reg.settings.storage_root)
    result = train_model(reg, "p", "v1", get_recipe("tiny"), storage=storage)
    try:
        yield Trained(reg, storage, result, data)
    finally:
        reg.dispose()
