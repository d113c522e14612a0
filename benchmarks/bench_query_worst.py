"""The worst query of each shape the query language accepts, at 1,000,000 annotations, on SQLite and
PostgreSQL: time and peak memory of the database server (issue 9; goal under 1 s and 256 MB each).

    python benchmarks/bench_query_worst.py                 # 100,000 images, ~1M objects, both databases
    python benchmarks/bench_query_worst.py --images 10000  # a quick look

Each shape is pushed to the parser's limits (64 terms, 16 levels of nesting, 4,096 characters) and
counted at image and object level, once to warm up and then ``--repeat`` times; the slowest run is
reported. Memory is the peak private (anonymous) memory of the process that runs the query above
what it held before: the PostgreSQL backend plus its parallel workers, or for SQLite, this process
(SQLite runs inside it). The reference in the same run is the query that took PostgreSQL to 23.9 GB
before the limits: today it is refused before it reaches the database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # support: the tests' throwaway PostgreSQL server

from bench_query import fill  # noqa: E402

from dsgen_core.config import load_settings  # noqa: E402
from dsgen_core.errors import DsgenError  # noqa: E402
from dsgen_core.query import count_query  # noqa: E402
from dsgen_core.query.parser import MAX_NESTING, MAX_QUERY_CHARS, MAX_TERMS  # noqa: E402
from dsgen_core.registry.db import Registry  # noqa: E402
from dsgen_core.registry.schema import Project  # noqa: E402

N = MAX_TERMS
CLASSES = [f"class_{i:02d}" for i in range(N)]


def _nested(depth: int, terms: list[str]) -> str:
    """``terms`` spread over ``depth`` levels of alternating negation and OR-groups."""
    per, rest = divmod(len(terms), depth)
    q = " ".join(terms[:per + rest])
    for level in range(1, depth):
        chunk = " OR ".join(terms[per * level + rest: per * (level + 1) + rest])
        q = f"-({q} OR {chunk})" if level % 2 else f"({q}) {chunk}"
    return q


SHAPES: dict[str, str] = {
    "64 classes, OR": " OR ".join(f"category:{c}" for c in CLASSES),
    "64 classes, AND (64 objects)": " ".join(f"category:{c}" for c in CLASSES),
    "64 classes, each negated": " ".join(f"-category:{c}" for c in CLASSES),
    "64 conditions on one object": " ".join(
        ["category:class_00", *(f"{k}{op}{v}" for k, op, v in
                                (("confidence", "<", 0.99), ("area", ">", 1), ("attr.occluded", ":", "false"),
                                 ("attr.rotation", "<", 90)) for _ in range(15)), "source:model", "validated:false",
         "iscrowd:false"][:N]),
    "32 objects of 2 conditions, OR": " OR ".join(f"(category:{c} confidence<0.{i % 9 + 1})"
                                                  for i, c in enumerate(CLASSES[:N // 2])),
    "64 JSON attributes, OR": " OR ".join(f"attr.k{i}:v{i}" for i in range(N)),
    "64 values of one attribute, OR": " OR ".join(f"attr.occluded:v{i}" for i in range(N)),
    "64 metadata terms, OR": " OR ".join(f"weather:w{i}" if i % 2 else f"timestamp>{1.7e9 + i * 1000:.0f}"
                                         for i in range(N)),
    "64 tags, AND of ORs": " ".join(f"(tag:tag_{i % 30} OR tag:tag_{(i + 7) % 30})" for i in range(N // 2)),
    "64 file substrings, OR": " OR ".join(f"file:{i:05d}" for i in range(N)),
    "64 numeric ranges, OR": " OR ".join(f"(width>{100 + i} height<{2000 - i})" for i in range(N // 2)),
    "16 levels of nesting": _nested(MAX_NESTING // 2, [f"category:{c}" if i % 2 else f"tag:tag_{i % 30}"
                                                       for i, c in enumerate(CLASSES)]),
    "64 splits and versions": " OR ".join(f"(version:v{i} split:train)" for i in range(N // 2)),
}
# The defect's query: 3,000 category terms (44 KB) grew one PostgreSQL process to 23.9 GB.
REFERENCE = " ".join(f"category:class_{i % 80:02d}" for i in range(3000))


class PeakMemory:
    """Polls the private memory of ``pid`` (and of PostgreSQL's parallel workers for it)."""

    def __init__(self, pid: int, postgres: bool) -> None:
        self.pid, self.postgres = pid, postgres
        self.base = self._sample()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self) -> list[int]:
        pids = [self.pid]
        if self.postgres:
            marker = f"parallel worker for PID {self.pid}".encode()
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        if marker in Path(f"/proc/{entry}/cmdline").read_bytes():
                            pids.append(int(entry))
                    except OSError:
                        pass
        return pids

    def _sample(self) -> int:
        total = 0
        for pid in self._pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("RssAnon:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def measure(reg: Registry, pid: int, q: str, level: str, repeat: int) -> tuple[int | str, float, float]:
    """(count or refusal, slowest seconds, peak MB) of ``count_query``."""
    worst_s, worst_mb, n = 0.0, 0.0, None
    with reg.session() as s:
        project = s.get(Project, pid)
        assert project is not None
        server = int(s.scalar(text("SELECT pg_backend_pid()"))) if reg.dialect == "postgresql" else os.getpid()
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            with PeakMemory(server, reg.dialect == "postgresql") as mem:
                try:
                    n = count_query(s, project, q, level=level)  # type: ignore[arg-type]
                except DsgenError as exc:
                    return f"refused: {str(exc).splitlines()[0][:50]}", time.perf_counter() - t0, mem.grown_mb
            if i:  # the first run warms the caches
                worst_s, worst_mb = max(worst_s, time.perf_counter() - t0), max(worst_mb, mem.grown_mb)
    return n if n is not None else 0, worst_s, worst_mb


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000, help="images (about 10 objects each)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sqlite", default=str(Path(tempfile.gettempdir()) / "dsgen_query_worst.db"),
                    help="SQLite file, filled once and reused")
    ap.add_argument("--pg-url", help="an existing PostgreSQL database (default: a throwaway server)")
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    for name, q in SHAPES.items():
        assert len(q) <= MAX_QUERY_CHARS, (name, len(q))

    registries: dict[str, Registry] = {}
    server = None
    if args.only in (None, "sqlite"):
        registries["sqlite"] = Registry(load_settings(database_url=f"sqlite:///{args.sqlite}"))
    if args.only in (None, "postgresql"):
        url = args.pg_url
        if url is None:
            from support import PostgresServer

            server = PostgresServer().start()
            url = server.url()
        registries["postgresql"] = Registry(load_settings(database_url=url))
    try:
        pids = {}
        for backend, reg in registries.items():
            t0 = time.perf_counter()
            pids[backend] = fill(reg, f"bench{args.images}", args.images)
            with reg.engine.connect() as conn:
                anns = conn.execute(text("SELECT count(*) FROM annotations")).scalar()
            print(f"{backend}: {args.images:,} images, {anns:,} annotations ready in {time.perf_counter() - t0:.0f} s",
                  flush=True)

        goal = "goal < 1 s, < 256 MB"
        head = "".join(f"  {b + ' s':>12} {b[:2] + ' MB':>7}" for b in registries)
        print(f"\n{'shape (at the limits)':<34} {'level':<6}{head}   {goal}")
        over = 0
        for name, q in [*SHAPES.items(), ("reference: 3,000 classes (44 KB)", REFERENCE)]:
            for level in ("image", "object"):
                cells, verdicts = [], []
                for backend, reg in registries.items():
                    n, secs, mb = measure(reg, pids[backend], q, level, args.repeat)
                    cells.append(f"  {secs:12.3f} {mb:7.1f}")
                    verdicts.append(n if isinstance(n, str) else "ok" if secs < 1 and mb < 256 else "OVER")
                    over += verdicts[-1] == "OVER"
                print(f"{name:<34} {level:<6}{''.join(cells)}   {', '.join(sorted(set(map(str, verdicts))))}",
                      flush=True)
        print(f"\n{over} measurement(s) over the goal; the reference ran to 23.9 GB and a killed server before the limits")
        print(f"mean query length {statistics.mean(len(q) for q in SHAPES.values()):.0f} characters "
              f"(limit {MAX_QUERY_CHARS}), {MAX_TERMS} terms, nesting {MAX_NESTING}")
        return 0
    finally:
        for reg in registries.values():
            reg.dispose()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
