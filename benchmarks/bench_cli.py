"""How fast the ``dsgen`` command answers, as a user times it (the whole process).

    python benchmarks/bench_cli.py                   # this tree
    python benchmarks/bench_cli.py --before 26cb58f  # ... and that commit, interleaved, same run

``dsgen --help`` (target ≤ 0.2 s) and ``dsgen query ... --count`` on a small registry (a real CVAT
export of 27 images; target ≤ 0.5 s); the median of ``--rounds`` runs each. Each tree queries a
registry it made itself (a baseline commit may have an older schema).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_import import ROOT, Tree, checkout, median, row  # noqa: E402

CORPUS_FILE = ROOT.parent / "shared" / "corpus" / "cvat-exports-licensed" / "tzopiz__LungsNN" / "instances_default.json"
TARGETS = {"help": 0.2, "query": 0.5}


def dsgen(tree: Tree, home: Path, *args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dsgen_core.cli", *args], check=True, capture_output=True,
                   env=tree.env(home), cwd=home)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", metavar="REF", help="also measure this commit (a git worktree), interleaved")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    trees = [Tree("dsgen", ROOT)] + ([checkout(args.before)] if args.before else [])
    homes = {t.name: Path(tempfile.mkdtemp(prefix="dsgen-bench-cli-")) for t in trees}
    try:
        for t in trees:  # a registry per tree, made by that tree, warmed by one query
            dsgen(t, homes[t.name], "import", "coco", str(CORPUS_FILE), "--project", "p", "--json")
            dsgen(t, homes[t.name], "query", "category:lungs", "--count", "--project", "p", "--json")
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for t in trees:
                home = homes[t.name]
                times.setdefault((t.name, "help"), []).append(dsgen(t, home, "--help"))
                times.setdefault((t.name, "query"), []).append(
                    dsgen(t, home, "query", "category:lungs width>100", "--count", "--project", "p", "--json"))
        print(f"{'':2}{'measure (median / fastest run)':<48} {'result':>14}   {'reference':>34}   verdict")
        for (name, what), values in times.items():
            s = median(values)
            label = "dsgen --help" if what == "help" else "dsgen query --count (27 images)"
            row(f"{label}: {name}", f"{s:.3f} / {min(values):.3f} s", f"target {TARGETS[what]} s",
                "met" if s <= TARGETS[what] else "fastest run met" if min(values) <= TARGETS[what] else "not met")
    finally:
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
