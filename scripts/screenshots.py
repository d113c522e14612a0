"""Screenshots of the web app's main pages for the README, from a real ``dsgen serve`` over the demo
data in headless Chromium (the same site the browser tests use: tests/web_site.py).

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from web_site import PROJECT, build_site, chromium, login, missing, serve  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()
    why = missing()
    if why:
        print(f"screenshots: {why}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dsgen-shots-") as tmp:
        home = build_site(Path(tmp) / "home", n_images=90, image_size=320)
        with serve(home) as base, chromium(width=1360, height=860) as ctx:
            page = ctx.new_page()
            login(page, base)
            p = f"{base}/p/{PROJECT}"

            def shot(name: str, url: str, ready: str) -> None:
                page.goto(url)
                page.wait_for_selector(ready)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(args.out / f"{name}.png"))
                print(f"{args.out / name}.png")

            shot("gallery", f"{p}/gallery?q=category%3Atriangle%20width%3E100", ".cell[data-id] svg.overlay")
            page.locator(".cell[data-index='1']").click()
            page.locator(".cell[data-index='4']").click(modifiers=["Shift"])
            page.fill("input[name=bulk-tags]", "review")
            page.screenshot(path=str(args.out / "gallery-selection.png"))
            first = page.get_attribute(".cell[data-index='0']", "data-id")
            shot("detail", f"{p}/assets/{first}", "tr[data-object]")
            shot("insights", f"{p}/insights", "[data-chart='Classes (objects)'] [data-bar]")
            shot("versions", f"{p}/versions/v1", "[data-version=v1] [data-bar]")
            shot("model", f"{p}/models/m1", "[data-model=m1] .heatmap")
            page.goto(f"{p}/gallery?q=width%3E%3E3")
            page.wait_for_selector(".query-error")
            page.screenshot(path=str(args.out / "query-error.png"), clip={"x": 0, "y": 0, "width": 1360, "height": 200})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
