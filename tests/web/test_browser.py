"""The web app in headless Chromium against ``dsgen serve`` (issue 13): log in, query, a bad query's
column, select and tag, an image's objects and tag/metadata edits, insights, a model. Every
assertion is checked against the registry, not against what the page said before."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from dsgen_core.config import load_settings
from dsgen_core.insights.compute import compute_insights
from dsgen_core.query import count_query, run_query
from dsgen_core.query.parser import QueryError
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.tagging import get_metadata, get_tags
from web_site import PROJECT, build_site, chromium, login, missing, serve

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Registry]]:
    why = missing()
    if why:  # scripts/setup.sh installs Chromium and builds the app: its absence is a failure, not a skip
        pytest.fail(why, pytrace=False)
    home = build_site(tmp_path_factory.mktemp("web-home"))
    reg = Registry(load_settings(home=home, database_url=f"sqlite:///{home / 'registry' / 'registry.db'}"))
    try:
        with serve(home) as base:
            yield base, reg
    finally:
        reg.dispose()


@pytest.fixture(scope="module")
def browser(site: tuple[str, Registry]) -> Iterator[Any]:
    with chromium() as ctx:
        ctx.set_default_timeout(TIMEOUT_MS)
        yield ctx


@pytest.fixture
def page(site: tuple[str, Registry], browser: Any) -> Iterator[Any]:
    p = browser.new_page()
    login(p, site[0])
    yield p
    p.close()


def _ids(reg: Registry, q: str) -> list[int]:
    with reg.session() as s:
        return list(run_query(s, get_project(s, PROJECT), q))


def _search(page: Any, q: str) -> None:
    page.fill("input[name=q]", q)
    page.press("input[name=q]", "Enter")


def test_a_query_shows_its_count_and_thumbnails_with_their_objects(site: tuple[str, Registry], page: Any) -> None:
    _base, reg = site
    page.click(f"[data-project={PROJECT}] a")
    page.wait_for_selector(".total[data-total]:not([data-total=''])")
    everything = _ids(reg, "")
    assert page.get_attribute(".total", "data-total") == str(len(everything))

    q = "category:circle"
    _search(page, q)
    wanted = _ids(reg, q)
    assert 0 < len(wanted) < len(everything)
    page.wait_for_selector(f".total[data-total='{len(wanted)}']")
    page.wait_for_selector(".cell[data-id]")  # the count and the first page are two requests
    assert page.url.endswith("/p/demo/gallery?q=category%3Acircle")
    # one look at the page once every thumbnail in it has loaded: the grid may grow between two looks
    grid = page.wait_for_function("""() => {
        const cells = [...document.querySelectorAll('.cell[data-id]')];
        const imgs = cells.map(c => c.querySelector('img'));
        if (!cells.length || !imgs.every(i => i && i.complete)) return null;
        return {ids: cells.map(c => Number(c.dataset.id)), drawn: imgs.filter(i => i.naturalWidth > 0).length};
    }""").json_value()
    shown = grid["ids"]
    assert shown == wanted[: len(shown)] and shown  # the grid renders what is in view, in id order
    assert grid["drawn"] == len(shown)
    # each image's objects drawn over its thumbnail, a circle among them
    assert page.locator(".cell[data-id] svg.overlay g[data-category=circle]").count() >= len(shown)
    assert page.locator(".chip[data-term='category:circle']").count() == 1

    page.click(".chip[data-term='category:circle'] button")  # removing the chip runs the query without it
    page.wait_for_selector(f".total[data-total='{len(everything)}']")


def test_a_bad_query_shows_the_api_error_under_its_column(site: tuple[str, Registry], page: Any) -> None:
    base, reg = site
    bad = "category:circle width>>10"
    with reg.session() as s, pytest.raises(QueryError) as caught:
        count_query(s, get_project(s, PROJECT), bad)
    page.goto(f"{base}/p/{PROJECT}/gallery")
    _search(page, bad)
    err = page.wait_for_selector(".query-error")
    assert err.get_attribute("data-column") == str(caught.value.column)
    assert caught.value.message in err.inner_text()
    query_line, caret_line = page.inner_text(".query-error pre").split("\n")[:2]
    assert query_line == bad and caret_line.index("^") == caught.value.column - 1
    assert page.locator(".cell[data-id]").count() == 0


def test_selected_images_and_only_they_get_the_tag(site: tuple[str, Registry], page: Any) -> None:
    base, reg = site
    page.goto(f"{base}/p/{PROJECT}/gallery")
    page.wait_for_selector(".cell[data-index='5']")
    cell = lambda i: page.locator(f".cell[data-index='{i}']")  # noqa: E731
    cell(0).click()
    cell(3).click(modifiers=["Shift"])  # 0..3
    cell(5).click()
    cell(2).click()  # and 2 off again
    assert page.get_attribute("[data-selected-count]", "data-selected-count") == "4"
    picked = sorted(int(cell(i).get_attribute("data-id")) for i in (0, 1, 3, 5))
    page.fill("input[name=bulk-tags]", "picked")
    page.click("text=Add tag")
    page.wait_for_selector(".notice:has-text('tagged 4 images')")
    assert _ids(reg, "tag:picked") == picked

    page.click("text=Remove tag")
    page.wait_for_selector(".notice:has-text('untagged 4 images')")
    assert _ids(reg, "tag:picked") == []


def test_an_image_lists_its_objects_and_its_tag_and_metadata_edits_persist(site: tuple[str, Registry], page: Any) -> None:
    base, reg = site
    asset = _ids(reg, "category:square")[0]
    page.goto(f"{base}/p/{PROJECT}/assets/{asset}")  # a reload: the login comes back from the refresh token
    page.wait_for_selector("tr[data-object]")
    with reg.session() as s:
        from sqlalchemy import select

        from dsgen_core.registry.schema import Annotation, LabelClass
        rows = s.execute(select(Annotation.id, LabelClass.key).outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
                         .where(Annotation.asset_id == asset).order_by(Annotation.id)).all()
    listed = page.eval_on_selector_all("tr[data-object]", "rs => rs.map(r => [Number(r.dataset.object), r.cells[1].innerText])")
    assert [(i, c) for i, c in listed] == [(r.id, r.key) for r in rows]
    assert page.locator("svg.overlay g[data-object]").count() == len(rows)

    page.fill("input[name=tag]", "checked")
    page.click("form:has(input[name=tag]) button[type=submit]")
    page.wait_for_selector(".chip[data-tag=checked]")
    page.fill("input[name=meta-key]", "weather")
    page.fill("input[name=meta-value]", "sunny")
    page.click("form:has(input[name=meta-key]) button[type=submit]")
    page.wait_for_selector("tr[data-key=weather]")
    page.reload()
    page.wait_for_selector(".chip[data-tag=checked]")
    assert "sunny" in page.inner_text("tr[data-key=weather]")
    with reg.session() as s:
        assert "checked" in get_tags(s, asset)
        assert get_metadata(s, asset)["weather"] == "sunny"

    page.click("button[aria-label='remove tag checked']")
    page.wait_for_selector(".chip[data-tag=checked]", state="detached")
    with reg.session() as s:
        assert "checked" not in get_tags(s, asset)


def test_insights_show_each_class_and_its_count(site: tuple[str, Registry], page: Any) -> None:
    base, reg = site
    page.goto(f"{base}/p/{PROJECT}/insights")
    page.wait_for_selector("[data-chart='Classes (objects)'] [data-bar]")
    with reg.session() as s:
        classes = compute_insights(s, get_project(s, PROJECT), "", ["class_distribution"])["class_distribution"]["classes"]
    bars = page.eval_on_selector_all("[data-chart='Classes (objects)'] [data-bar]",
                                     "bs => bs.map(b => [b.dataset.bar, Number(b.dataset.value)])")
    assert dict(bars) == {c["name"]: c["objects"] for c in classes}
    assert len(classes) >= 3

    # a saved view of a query: listed, it opens its query, and it can be deleted
    page.goto(f"{base}/p/{PROJECT}/insights?q=category%3Asquare")
    page.wait_for_selector(".summary")
    page.fill("input[name=view-name]", "squares")
    page.click("button:text-is('Save view')")
    page.wait_for_selector("[data-view=squares]")
    page.goto(f"{base}/p/{PROJECT}/insights")
    page.click("[data-view=squares] a")
    page.wait_for_selector(f".summary[data-images='{len(_ids(reg, 'category:square'))}']")
    assert page.url.endswith("/insights?q=category%3Asquare")
    page.click("button[aria-label='delete view squares']")
    page.wait_for_selector("[data-view=squares]", state="detached")


def test_a_model_shows_its_curves_confusion_matrix_and_lineage(site: tuple[str, Registry], page: Any) -> None:
    base, _reg = site
    page.goto(f"{base}/p/{PROJECT}/models")
    page.click(".models table a:text-is('m1')")
    page.wait_for_selector("[data-model=m1] .heatmap")
    cells = page.eval_on_selector_all("[data-model=m1] .heatmap tbody tr", "rs => rs.map(r => [...r.cells].slice(1).map(c => Number(c.innerText)))")
    assert cells == [[14, 1, 0, 2], [1, 12, 2, 1], [0, 3, 9, 3], [2, 1, 2, 0]]
    assert page.locator("[data-chart='Training losses'] polyline").count() == 2  # train and val loss
    lineage = page.inner_text("[data-model=m1] .lineage")
    assert "dataset version: v1" in lineage and "children: m2" in lineage
    page.click("[data-model=m1] .lineage a:text-is('m2')")
    page.wait_for_selector("[data-model=m2] .lineage:has-text('parent: m1')")


def test_a_version_shows_its_splits(site: tuple[str, Registry], page: Any) -> None:
    base, reg = site
    page.goto(f"{base}/p/{PROJECT}/versions")
    page.click(".versions table a:text-is('v1')")
    page.wait_for_selector("[data-version=v1] [data-chart='Splits (images)'] [data-bar]")
    bars = page.eval_on_selector_all("[data-version=v1] [data-chart='Splits (images)'] [data-bar]",
                                     "bs => bs.map(b => [b.dataset.bar, Number(b.dataset.value)])")
    with reg.session() as s:
        from dsgen_core.versions.lifecycle import get_version, version_summary
        splits = version_summary(s, get_version(s, get_project(s, PROJECT), "v1")).splits
    assert dict(bars) == {k: n for k, n in splits.items() if n} and sum(splits.values()) == len(_ids(reg, ""))


def test_logging_out_ends_the_login(site: tuple[str, Registry], page: Any) -> None:
    base, _reg = site
    refresh = page.evaluate("sessionStorage.getItem('dsgen.refresh')")
    page.click("text=Log out")
    page.wait_for_selector("input[name=email]")
    assert page.evaluate("sessionStorage.getItem('dsgen.refresh')") is None
    req = urllib.request.Request(f"{base}/api/auth/refresh", data=json.dumps({"refresh_token": refresh}).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req)
    assert caught.value.code == 401
    page.goto(f"{base}/p/{PROJECT}/gallery")  # a page of the app sends a logged-out visitor to the login
    page.wait_for_selector("input[name=email]")
    assert "/login?next=" in page.url


def test_client_routes_get_the_app_and_unknown_api_paths_a_problem(site: tuple[str, Registry]) -> None:
    base, _reg = site
    with urllib.request.urlopen(f"{base}/p/{PROJECT}/versions/v1") as r:
        html = r.read().decode()
        assert r.headers["Cache-Control"] == "no-cache" and '<div id="root">' in html
    asset = html.split('src="')[1].split('"')[0]
    with urllib.request.urlopen(f"{base}{asset}") as r:
        assert "immutable" in r.headers["Cache-Control"]
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{base}/api/nothing-here")
    assert caught.value.code == 404 and caught.value.headers["Content-Type"] == "application/problem+json"
