"""Incremental training: rehearsal against naive fine-tuning, when a newer version adds a class.

    python benchmarks/bench_incremental.py               # demo recipe: three trainings, ~12 CPU minutes
    python benchmarks/bench_incremental.py --epochs 10   # quicker, noisier

- v1: the demo's 300 images (circle, square, triangle); the parent m1 trains on it.
- v2: 150 new images only (``file:new_star_``), where a fourth class, star, appears.
- Two children start from m1's best weights and train on v2 with the same recipe:
  rehearsal (the default: 30% of m1's training images mixed in) and naive fine-tuning (none).
- All three are evaluated with ONNX Runtime on v1's test split (old classes) and the children on
  v2's test split (the new class too).
Target (issue 4): the rehearsal child's old-class mAP50 stays within 0.05 of the parent's, while
naive fine-tuning drops further. A PNG of the comparison goes to benchmarks/out/incremental.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support: the tests' import helper
OUT = HERE / "out"

from dsgen_core.config import load_settings  # noqa: E402
from dsgen_core.demo.synth import generate_demo_dataset  # noqa: E402
from dsgen_core.evaluation.model_eval import evaluate_model_version  # noqa: E402
from dsgen_core.ml.recipes import BUILTIN_RECIPES  # noqa: E402
from dsgen_core.ml.trainer import train_model  # noqa: E402
from dsgen_core.registry.db import Registry  # noqa: E402
from dsgen_core.ml.model_versions import artifact, get_model_version
from dsgen_core.ml.onnx_artifacts import ONNX_ROLE, export_model_onnx
from dsgen_core.registry.projects import get_project  # noqa: E402
from dsgen_core.storage import open_storage  # noqa: E402
from dsgen_core.versions.lifecycle import create_version, freeze_version  # noqa: E402
from support import import_file  # noqa: E402

OLD = ("circle", "square", "triangle")
TOLERANCE = 0.05


def old_map50(ev: dict) -> float:
    return sum(ev["per_class"][k]["map50"] for k in OLD) / len(OLD)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, help="override the demo recipe's epochs for all three trainings")
    args = ap.parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="dsgen-bench-incr-"))
    os.environ["YOLO_CONFIG_DIR"] = str(tmp / "ultralytics")
    recipe = BUILTIN_RECIPES["demo"]
    if args.epochs:
        recipe = dataclasses.replace(recipe, epochs=args.epochs)
    naive = dataclasses.replace(recipe, name="demo-naive", rehearsal=0.0)
    try:
        reg = Registry(load_settings(home=tmp / "home"))
        storage = open_storage(reg.settings.storage_root)
        old = generate_demo_dataset(tmp / "v1", n_images=300, seed=0).root
        new = generate_demo_dataset(tmp / "v2", n_images=150, seed=1, add_class="star").root
        for src, tag, query in ((old, "v1", ""), (new, "v2", "file:new_star_")):
            import_file(reg, src / "annotations" / "instances_default.json", images=src / "images", project="demo")
            with reg.session() as s:
                create_version(s, get_project(s, "demo"), tag, query=query)
            with reg.session() as s:
                freeze_version(s, get_project(s, "demo"), tag, storage=storage)

        def log(name: str):
            return lambda e, n, m: print(f"  {name} epoch {e}/{n} mAP50 {m.get('map50') or 0:.3f}", flush=True)

        parent = train_model(reg, "demo", "v1", recipe, storage=storage, on_epoch=log("parent"))
        rehearsal = train_model(reg, "demo", "v2", recipe, storage=storage, parent=parent.human_id, on_epoch=log("rehearsal"))
        finetune = train_model(reg, "demo", "v2", naive, storage=storage, parent=parent.human_id, on_epoch=log("naive"))
        def evaluate(ref: str, tag: str) -> dict[str, Any]:
            with reg.session() as s:
                project = get_project(s, "demo")
                if artifact(s, get_model_version(s, project, ref), ONNX_ROLE, "onnx") is None:
                    export_model_onnx(s, project, ref, storage=storage)
                return evaluate_model_version(s, project, ref, storage=storage, version_tag=tag,
                                              with_parent=False).to_dict()

        on_v1 = {k: evaluate(r.human_id, "v1") for k, r in (("parent", parent), ("rehearsal", rehearsal), ("naive", finetune))}
        on_v2 = {k: evaluate(r.human_id, "v2") for k, r in (("rehearsal", rehearsal), ("naive", finetune))}
        p = old_map50(on_v1["parent"])
        rows = {k: old_map50(ev) for k, ev in on_v1.items()}
        print(f"\n  old-class mAP50 on v1/test ({', '.join(OLD)}), {recipe.epochs} epochs each; "
              f"rehearsal mixes {rehearsal.incremental_info.get('mixed_in')} of m1's {rehearsal.incremental_info.get('parent_train_images')} training images")
        print(f"  {'model':<34} {'old mAP50':>10} {'vs parent':>10}   {'star mAP50 (v2/test)':>20}   result")
        print(f"  {'parent ' + parent.human_id + ' (v1)':<34} {p:>10.3f} {'':>10}   {'-':>20}")
        ok_r = rows["rehearsal"] >= p - TOLERANCE
        ok_n = rows["naive"] < rows["rehearsal"]
        for k, r, ok, target in (("rehearsal", rehearsal, ok_r, f"within {TOLERANCE} of parent"),
                                 ("naive", finetune, ok_n, "drops further than rehearsal")):
            star = on_v2[k]["per_class"]["star"]["map50"]
            print(f"  {k + ' child ' + r.human_id + ' (v2, from m1)':<34} {rows[k]:>10.3f} {rows[k] - p:>+10.3f}   "
                  f"{star:>20.3f}   {'ok' if ok else 'MISSED'} ({target})")
        OUT.mkdir(exist_ok=True)
        _chart({k: rows[k] for k in ("parent", "rehearsal", "naive")},
               {k: on_v2[k]["per_class"]["star"]["map50"] for k in on_v2}, OUT / "incremental.png")
        (OUT / "bench_incremental.json").write_text(json.dumps({
            "epochs": recipe.epochs, "old_map50": rows, "star_map50": {k: on_v2[k]["per_class"]["star"]["map50"] for k in on_v2},
            "incremental_info": {"rehearsal": rehearsal.incremental_info, "naive": finetune.incremental_info},
        }, indent=2))
        print(f"\n  chart: {OUT / 'incremental.png'}")
        return 0 if ok_r and ok_n else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _chart(old: dict[str, float], star: dict[str, float], path: Path) -> None:
    fig = Figure(figsize=(7, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    names = list(old)
    ax.bar([i - 0.2 for i in range(len(names))], [old[n] for n in names], 0.4, label="old classes, v1/test")
    ax.bar([i + 0.2 for i in range(len(names))], [star.get(n, 0.0) for n in names], 0.4, label="star (new), v2/test")
    ax.axhline(old["parent"] - TOLERANCE, color="grey", ls="--", lw=1, label=f"parent - {TOLERANCE}")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("mAP50")
    ax.set_ylim(0, 1.05)
    ax.set_title("Incremental training: rehearsal vs naive fine-tuning")
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, facecolor="white")


if __name__ == "__main__":
    sys.exit(main())
