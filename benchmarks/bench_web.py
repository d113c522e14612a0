"""First paint of the gallery in headless Chromium, against ``dsgen serve`` (issue 13: ≤ 1.5 s).

Each run is a browser with a new profile (nothing cached) opening the gallery link of a query
``category:X width>N``, logged in as a user who comes back to the app does (the refresh token in
the tab's sessionStorage, so the page itself refreshes the access token before its first query).
Reported, in ms from the start of the navigation:

- first contentful paint (``performance.getEntriesByName('first-contentful-paint')``),
- first cells: the first page of results drawn in the grid (the app's ``dsgen:first-cells`` mark),
- first thumbnail: the first thumbnail image loaded and drawn (``dsgen:first-thumbnail``).

Sets: ``small`` is datagen's 5,000 JPEGs / 35,000 boxes with thumbnails made beforehand; ``large``
(``--large``) is datagen's 100,000 images / 1,000,000 boxes, declared but not written, so it has
no thumbnails: there the figures are paint and cells, plus a scroll through the 100,000-image
grid (frames drawn while scrolling, the longest frame, the cells in the DOM).

    .venv/bin/python benchmarks/bench_web.py [--repeat 5] [--scale 1.0] [--large]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import datagen  # noqa: E402

from web_site import EMAIL, PASSWORD, chromium, missing, serve  # noqa: E402

REFERENCE_MS = 1500.0
PROJECT = "bench"


def build(home: Path, which: str, scale: float) -> Path:
    """A DSGEN_HOME with the datagen set imported into project ``bench`` (kept between runs)."""
    done = home / ".built"
    if done.exists():
        return home
    from dsgen_core.accounts.access import grant
    from dsgen_core.accounts.users import add_user
    from dsgen_core.config import load_settings
    from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
    from dsgen_core.registry.db import Registry
    from dsgen_core.registry.projects import ensure_project
    from dsgen_core.storage import open_storage
    from dsgen_core.thumbnails import make_thumbnails

    t0 = time.perf_counter()
    gen = (datagen.generate_small if which == "small" else datagen.generate_large)(home / "data", scale=scale,
                                                                                  progress=False)
    reg = Registry(load_settings(home=home, database_url=f"sqlite:///{home / 'registry' / 'registry.db'}"))
    try:
        storage = open_storage(reg.settings.storage_root)
        with reg.session(bulk=True) as s:
            import_coco(s, ensure_project(s, PROJECT), gen.annotations_path, images=gen.images_dir if which == "small"
                        else None, storage=storage, sources_dir=local_sources_dir(storage, reg.settings.home),
                        actor="bench")
        with reg.session() as s:
            project = ensure_project(s, PROJECT)
            if which == "small":
                make_thumbnails(s, project, storage=storage)
            grant(s, project, add_user(s, EMAIL, "Bench", password=PASSWORD), "viewer")
    finally:
        reg.dispose()
    done.write_text("")
    print(f"[{which}] built {gen.n_images:,} images / {gen.n_annotations:,} boxes in {time.perf_counter() - t0:.1f} s",
          flush=True)
    return home


def refresh_token(base: str) -> str:
    req = urllib.request.Request(f"{base}/api/auth/login", data=json.dumps({"email": EMAIL, "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        token: str = json.load(r)["refresh_token"]
        return token


MARKS = """() => {
    const t = name => (performance.getEntriesByName(name)[0] || {}).startTime ?? null;
    return {fcp: t('first-contentful-paint'), cells: t('dsgen:first-cells'), thumb: t('dsgen:first-thumbnail'),
            total: document.querySelector('.total')?.dataset.total ?? null};
}"""

SCROLL = """async (ms) => {
    const el = document.querySelector('.scroller');
    const gaps = []; let last = performance.now(); const end = last + ms;
    while (performance.now() < end) {
        el.scrollTop += el.clientHeight * 3;
        await new Promise(r => requestAnimationFrame(r));
        const now = performance.now(); gaps.push(now - last); last = now;
    }
    return {frames: gaps.length, longest: Math.max(...gaps), scrolled: el.scrollTop,
            height: el.scrollHeight, cells: document.querySelectorAll('.cell').length};
}"""


def measure(base: str, query: str, thumbs: bool, scroll: bool) -> dict[str, Any]:
    url = f"{base}/p/{PROJECT}/gallery?q={urllib.parse.quote(query)}"
    token = refresh_token(base)
    with chromium() as ctx:
        page = ctx.new_page()
        # on the first navigation only: a later one must keep the token the page rotated it to (sending
        # the first again would be a reuse, which ends the login)
        page.add_init_script(f"sessionStorage.getItem('dsgen.refresh') || sessionStorage.setItem('dsgen.refresh', {json.dumps(token)})")
        page.goto(url)
        try:
            page.wait_for_selector(".cell[data-id]", timeout=60_000)
        except Exception as exc:  # say where the page is stuck, not only that it is
            raise RuntimeError(f"no gallery cells at {page.url}: {page.inner_text('body')[:300]!r}") from exc
        if thumbs:
            page.wait_for_function("() => performance.getEntriesByName('dsgen:first-thumbnail').length > 0",
                                   timeout=60_000)
        page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
        out: dict[str, Any] = page.evaluate(MARKS)
        if scroll:
            page.goto(f"{base}/p/{PROJECT}/gallery")
            page.wait_for_selector(".cell[data-id]", timeout=60_000)
            out["scroll"] = page.evaluate(SCROLL, 3000)
        return out


def report(name: str, runs: list[dict[str, Any]]) -> None:
    print(f"[{name}] {runs[0]['total']} images match; {len(runs)} runs, each a new browser profile")
    for key, label in (("fcp", "first contentful paint"), ("cells", "first cells drawn"), ("thumb", "first thumbnail drawn")):
        values = [r[key] for r in runs if r[key] is not None]
        if not values:
            continue
        med = statistics.median(values)
        verdict = "met" if med <= REFERENCE_MS else "NOT met"
        print(f"  {label:24s} median {med:7.0f} ms   max {max(values):7.0f} ms   reference {REFERENCE_MS:.0f} ms: {verdict}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="datagen scale of the sets")
    ap.add_argument("--large", action="store_true", help="also the 100,000-image / 1,000,000-box set")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "web")
    args = ap.parse_args()
    why = missing()
    if why:
        print(f"bench_web: {why}", file=sys.stderr)
        return 2
    sets = [("small", "category:car width>100", True)]
    if args.large:
        sets.append(("large", "category:car width>1024", False))
    for which, query, thumbs in sets:
        home = build(args.out / f"{which}-{args.scale:g}", which, args.scale)
        with serve(home) as base:
            measure(base, query, thumbs, False)  # the server's first queries warm its caches
            runs = [measure(base, query, thumbs, scroll=(which == "large" and i == 0)) for i in range(args.repeat)]
        report(f"{which}: {query}", runs)
        if "scroll" in runs[0]:
            sc = runs[0]["scroll"]
            print(f"  scroll 3 s through the whole gallery: {sc['frames']} frames, longest {sc['longest']:.0f} ms, "
                  f"{sc['cells']} cells in the DOM, {sc['scrolled']:,.0f} of {sc['height']:,.0f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
