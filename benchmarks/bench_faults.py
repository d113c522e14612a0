"""How much the fault suite tries and how long it takes (issue 9): crash points (kill -9 during
import, freeze and export, on both databases) and fuzz examples (COCO documents, queries).

    python benchmarks/bench_faults.py           # what CI runs: 5 crash points, 120 examples per test
    python benchmarks/bench_faults.py --long    # the long mode: 20 crash points, 3,000 examples

Runs ``tests/faults/test_crash.py`` and ``tests/faults/test_fuzz.py`` with pytest (``-n 2``, as
CI's two cores), counts what the tests report through ``DSGEN_FAULT_REPORT`` and prints it beside
the time. Every crash point and every example is an assertion: the run fails if one does.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(test: str, env: dict[str, str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", test],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
    return time.perf_counter() - t0, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--long", action="store_true", help="20 crash points and 3,000 fuzz examples per test")
    args = ap.parse_args()
    points, examples = (20, 3000) if args.long else (5, 120)
    report = Path(tempfile.mkdtemp(prefix="dsgen-faults-")) / "report.jsonl"
    env = {**os.environ, "DSGEN_CRASH_POINTS": str(points), "DSGEN_FUZZ_EXAMPLES": str(examples),
           "DSGEN_FAULT_REPORT": str(report)}
    failed = 0
    print(f"{'suite':<44} {'tried':>8} {'seconds':>9}   outcome")
    seconds, rc = run("tests/faults/test_crash.py", env)
    failed += rc != 0
    lines = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    crashes = [r for r in lines if "command" in r]
    outcomes: collections.Counter[str] = collections.Counter()
    for r in crashes:
        outcomes.update({k: v for k, v in r.items() if k not in ("command", "database")})
    print(f"{'kill -9 (import, freeze, export) x 2 databases':<44} {sum(outcomes.values()):>8} {seconds:>9.1f}   "
          f"{'passed' if rc == 0 else 'FAILED'}: " + ", ".join(f"{n} left {k}" for k, n in sorted(outcomes.items())))
    report.unlink(missing_ok=True)

    seconds, rc = run("tests/faults/test_fuzz.py", env)
    failed += rc != 0
    lines = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    tried = sum(r.get("examples", 0) for r in lines)
    kinds = collections.Counter[str]()
    for r in lines:
        kinds.update({k: v for k, v in r.items() if k not in ("fuzz", "database", "examples")})
    print(f"{'fuzz (COCO documents, queries) x 2 databases':<44} {tried:>8} {seconds:>9.1f}   "
          f"{'passed' if rc == 0 else 'FAILED'}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    print(f"\nper test: {points} crash points per command and database; {examples} examples per fuzz test and database")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
