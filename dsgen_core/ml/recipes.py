"""Training recipes: named, versionable Ultralytics settings.

A recipe is everything a training run needs besides the data: architecture (an Ultralytics model
YAML, so nothing is downloaded; a weights file only when the user gives one), epochs, image size,
batch, seed, optimizer, augmentation, checkpoint period and the incremental-training defaults.
Built-in recipes cover the demo and tests; more are YAML files in ``$DSGEN_HOME/recipes/NAME.yaml``
(the fields below; ``base: demo`` starts from another recipe).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dsgen_core.errors import DsgenError

TASKS = ("detect", "segment", "pose")
# Task suffixes of Ultralytics' model YAMLs: yolov8n.yaml detects, yolov8n-seg.yaml segments, ...
_ARCH_SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose"}


@dataclass(frozen=True)
class Recipe:
    name: str
    architecture: str = "yolov8n.yaml"
    task: str = "detect"
    epochs: int = 30
    imgsz: int = 160
    batch: int = 16
    seed: int = 0
    optimizer: str = "AdamW"
    lr0: float = 0.002
    weights: str | None = None  # optional pretrained .pt the user provides; never downloaded
    checkpoint_every: int = 5
    patience: int = 100
    workers: int = 0
    threads: int = 0  # CPU training: torch threads, 0 = every core
    device: str = "cpu"
    augmentation: dict[str, Any] = field(default_factory=dict)  # Ultralytics names: mosaic, fliplr, hsv_h, ...
    # Incremental training (a parent model version given): share of the parent's training images
    # mixed into the new training set, and the weight of distillation from the parent (0 = off).
    rehearsal: float = 0.3
    distillation: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DsgenError(f"recipe {self.name!r}: task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.epochs < 1 or self.imgsz < 32 or self.batch < 1:
            raise DsgenError(f"recipe {self.name!r}: epochs >= 1, imgsz >= 32 and batch >= 1 are required")
        if self.threads < 0 or self.workers < 0:
            raise DsgenError(f"recipe {self.name!r}: threads and workers are counts (threads 0 = every core)")
        if not 0.0 <= self.rehearsal <= 1.0:
            raise DsgenError(f"recipe {self.name!r}: rehearsal is a share of the parent's images, 0..1")

    def model_source(self) -> str:
        """The weights file if given, else the architecture YAML adapted to the task."""
        if self.weights:
            if not Path(self.weights).is_file():
                raise DsgenError(f"recipe {self.name!r}: weights file {self.weights} does not exist")
            return self.weights
        arch = self.architecture
        suffix = _ARCH_SUFFIX[self.task]
        if suffix and suffix not in arch:
            arch = arch.replace(".yaml", f"{suffix}.yaml")
        return arch

    def train_args(self) -> dict[str, Any]:
        """Keyword arguments for ``YOLO.train`` (data, project and name are the trainer's)."""
        return {
            "epochs": self.epochs, "imgsz": self.imgsz, "batch": self.batch, "seed": self.seed,
            "deterministic": True, "optimizer": self.optimizer, "lr0": self.lr0, "patience": self.patience,
            "workers": self.workers, "device": self.device,
            # Ultralytics accumulates gradients up to a nominal batch of 64: on a few hundred images
            # that leaves ~100 optimizer steps in 30 epochs. One step per batch: demo test mAP50 0.72 -> 0.95.
            "nbs": self.batch,
            # No plots (Ultralytics fetches a font for them; dsgen draws its own curves) and no AMP
            # check (it fetches yolo11n.pt): nothing may reach the network.
            "plots": False, "amp": False, "verbose": False,
            **self.augmentation,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


BUILTIN_RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("demo", description="yolov8n from scratch, 30 epochs at 160 px: the demo's shapes in a few CPU minutes"),
        Recipe("tiny", epochs=3, imgsz=64, batch=8, checkpoint_every=1,
               augmentation={"mosaic": 0.0}, description="3 epochs at 64 px: tests and smoke runs"),
        Recipe("detect-640", epochs=100, imgsz=640, batch=16, lr0=0.01, optimizer="SGD",
               description="yolov8n at 640 px, 100 epochs: real photos (add weights: for pretrained)"),
        Recipe("segment-160", task="segment", description="yolov8n-seg from scratch at 160 px"),
        Recipe("pose-160", task="pose", description="yolov8n-pose from scratch at 160 px"),
    )
}
_FIELDS = {f.name for f in dataclasses.fields(Recipe)}


def recipes_dir(home: Path) -> Path:
    return home / "recipes"


def load_recipes(home: Path | None = None) -> dict[str, Recipe]:
    """Built-in recipes plus the user's YAML files (which may replace a built-in of the same name)."""
    recipes = dict(BUILTIN_RECIPES)
    folder = recipes_dir(home) if home else None
    for path in sorted(folder.glob("*.yaml")) if folder and folder.is_dir() else []:
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise DsgenError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(spec, dict):
            raise DsgenError(f"{path}: a recipe is a mapping of fields ({', '.join(sorted(_FIELDS))})")
        unknown = set(spec) - _FIELDS - {"base"}
        if unknown:
            raise DsgenError(f"{path}: unknown recipe field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_FIELDS))}")
        base_name = spec.pop("base", None)
        base = recipes.get(base_name) if base_name else Recipe(path.stem)
        if base is None:
            raise DsgenError(f"{path}: base recipe {base_name!r} does not exist")
        try:
            recipes[path.stem] = dataclasses.replace(base, **{**spec, "name": path.stem})
        except TypeError as e:
            raise DsgenError(f"{path}: {e}") from None
    return recipes


def get_recipe(name: str, home: Path | None = None) -> Recipe:
    recipes = load_recipes(home)
    if name not in recipes:
        raise DsgenError(f"unknown recipe {name!r}; known: {', '.join(sorted(recipes))} "
                         f"(add one as {recipes_dir(home) if home else '$DSGEN_HOME/recipes'}/{name}.yaml)")
    return recipes[name]
