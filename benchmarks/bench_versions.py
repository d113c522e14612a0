"""Freezing versions and exporting them, side by side with the references.

    python benchmarks/bench_versions.py                 # everything
    python benchmarks/bench_versions.py --only export5k

- freeze1m:   freeze a 100,000-image / 1,000,000-annotation version (split + snapshot + hash); target <= 15 s
- export5k:   YOLO export of a 5,000-image version (hard links); target <= 1 s and >= 8x FiftyOne's YOLOv5
              export of the same data. FiftyOne runs in its own virtualenv (FIFTYONE_PYTHON=/path/to/python,
              default benchmarks/.venv-fiftyone/bin/python) and needs MongoDB: its fiftyone-db package
              downloads mongod while it builds, which a machine without internet cannot do. Without it the
              script prints FiftyOne's figure measured on this machine (8.7 s copying, 9.2 s symlinking).
- export100k: YOLO export of a 100,000-image version; target <= 15 s
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # support: the tests' import helper
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

import datagen  # noqa: E402

from dsgen_core.config import load_settings  # noqa: E402
from dsgen_core.formats.version_export import export_version_yolo  # noqa: E402
from dsgen_core.registry.db import Registry  # noqa: E402
from dsgen_core.registry.projects import get_project  # noqa: E402
from dsgen_core.storage import open_storage  # noqa: E402
from dsgen_core.versions.content_hash import verify_version  # noqa: E402
from dsgen_core.versions.lifecycle import create_version, freeze_version, get_version  # noqa: E402
from support import import_file  # noqa: E402

FIFTYONE_COPY_S = 8.7  # FiftyOne, YOLOv5 export of these 5,000 images copying media, this machine (the figure)

FIFTYONE_EXPORT = r"""
import sys, time
import fiftyone as fo
ann, images, out, mode = sys.argv[1:5]
ds = fo.Dataset.from_dir(dataset_type=fo.types.COCODetectionDataset, data_path=images, labels_path=ann,
                         label_types=["detections"], progress=False)
t = time.perf_counter()
ds.export(export_dir=out, dataset_type=fo.types.YOLOv5Dataset, label_field="detections",
          export_media=mode, progress=False)
print(time.perf_counter() - t)
ds.delete()
"""


def row(name: str, ours: str, ref: str, verdict: str) -> None:
    print(f"  {name:<44} {ours:>12}   {ref:>34}   {verdict}")


def registry_with(ann: Path, images: Path | None) -> Registry:
    home = Path(tempfile.mkdtemp(prefix="dsgen-bench-"))
    reg = Registry(load_settings(home=home))
    import_file(reg, ann, images=images, project="bench")
    return reg


def freeze(reg: Registry, tag: str = "v1") -> float:
    with reg.session() as s:
        create_version(s, get_project(s, "bench"), tag)
    t = time.perf_counter()
    with reg.session() as s:
        freeze_version(s, get_project(s, "bench"), tag, storage=open_storage(reg.settings.storage_root))
    return time.perf_counter() - t


def export(reg: Registry, out: Path, tag: str = "v1") -> float:
    t = time.perf_counter()
    with reg.session() as s:
        export_version_yolo(s, get_project(s, "bench"), tag, out, storage=open_storage(reg.settings.storage_root))
    return time.perf_counter() - t


def verify(reg: Registry, tag: str = "v1") -> float:
    """The content-hash check every export, training and evaluation runs first."""
    with reg.session() as s:
        v = get_version(s, get_project(s, "bench"), tag)
        result = verify_version(s, v, open_storage(reg.settings.storage_root))
    assert result.ok, result
    return result.seconds


def fiftyone_export(ann: Path, images: Path, mode: str) -> float | None:
    py = os.environ.get("FIFTYONE_PYTHON") or str(HERE / ".venv-fiftyone" / "bin" / "python")
    if not Path(py).exists():
        return None
    out = Path(tempfile.mkdtemp(prefix="fo-export-"))
    try:
        proc = subprocess.run([py, "-c", FIFTYONE_EXPORT, str(ann), str(images), str(out / "yolo"), mode],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return None
        return float(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["freeze1m", "export5k", "export100k"])
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    results: dict[str, object] = {}
    print(f"  {'measure':<44} {'dsgen':>12}   {'reference':>34}   result")

    if args.only in (None, "export5k"):
        root = OUT / "small"
        if not (root / "annotations").exists():
            datagen.generate_small(root, progress=False)
        ann, images = root / "annotations" / "instances_default.json", root / "images"
        reg = registry_with(ann, images)
        t_freeze = freeze(reg)
        out = Path(tempfile.mkdtemp(prefix="dsgen-yolo-"))
        # Three exports into new folders, median: the first one after the import often waits on
        # the disk's writeback of what the import wrote (seconds on this machine, not our work).
        firsts = [export(reg, out / f"yolo{i}") for i in range(3)]
        t_export = statistics.median(firsts)
        t_again = export(reg, out / "yolo0")
        fo_copy = fiftyone_export(ann, images, "True")
        fo_link = fiftyone_export(ann, images, "symlink")
        row("freeze 5,000 images", f"{t_freeze:.2f} s", "", "")
        ref = f"FiftyOne copy {fo_copy:.2f} s, symlink {fo_link:.2f} s" if fo_copy and fo_link else "FiftyOne not installed"
        best = min(x for x in (fo_copy, fo_link) if x) if fo_copy or fo_link else None
        verdict = (f"{best / t_export:.1f}x faster than FiftyOne's best" if best else
                   f"{FIFTYONE_COPY_S / t_export:.1f}x faster than FiftyOne's 8.7 s measured here earlier")
        row("YOLO export, 5,000 images (hard links)", f"{t_export:.2f} s", ref, f"{verdict} (target <= 1 s, >= 8x)")
        row("  the three runs", " ".join(f"{t:.2f}" for t in firsts), "", "")
        row("  re-export of the same version", f"{t_again:.2f} s", "", "")
        t_verify = verify(reg)
        row("  of which the content-hash check", f"{t_verify:.2f} s", "", "overlaps the file writes")
        results["export5k"] = {"freeze_s": t_freeze, "export_s": t_export, "export_runs_s": firsts, "reexport_s": t_again, "verify_s": t_verify,
                               "fiftyone_copy_s": fo_copy, "fiftyone_symlink_s": fo_link}
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(reg.settings.home, ignore_errors=True)

    if args.only in (None, "freeze1m"):
        root = OUT / "large"
        if not (root / "annotations").exists():
            datagen.generate_large(root, progress=False)
        reg = registry_with(root / "annotations" / "instances_default.json", None)
        t_freeze = freeze(reg)
        row("freeze 100,000 images / 1,000,000 annotations", f"{t_freeze:.2f} s", "target 15 s",
            "ok" if t_freeze <= 15 else "over target")
        t_verify = verify(reg)
        row("verify 100,000 images / 1,000,000 annotations", f"{t_verify:.2f} s", "", "run before training/evaluation")
        results["freeze1m"] = {"freeze_s": t_freeze, "verify_s": t_verify}
        shutil.rmtree(reg.settings.home, ignore_errors=True)

    if args.only in (None, "export100k"):
        root = OUT / "small100k"
        if not (root / "annotations").exists():
            datagen.generate_small(root, scale=20, progress=False)
        reg = registry_with(root / "annotations" / "instances_default.json", root / "images")
        freeze(reg)
        out = Path(tempfile.mkdtemp(prefix="dsgen-yolo-"))
        t_export = export(reg, out / "yolo")
        row("YOLO export, 100,000 images (hard links)", f"{t_export:.2f} s", "target 15 s",
            "ok" if t_export <= 15 else "over target")
        results["export100k"] = {"export_s": t_export}
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(reg.settings.home, ignore_errors=True)

    (OUT / "bench_versions.json").write_text(json.dumps(results, indent=2))
    print(f"\nraw figures: {OUT / 'bench_versions.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
