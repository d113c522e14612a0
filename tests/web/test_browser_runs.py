"""Long operations from the browser (issue 13): a version created, frozen and exported from the
versions page, each run's live progress read from its server-sent events until it ends, the export
downloaded, and the diff of two versions; checked against the registry and the ZIP."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsgen_core.config import load_settings
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.versions.lifecycle import diff_versions, get_version
from web_site import PROJECT, build_site, chromium, login, missing, serve

pytestmark = pytest.mark.slow  # two Dagster runs


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Registry]]:
    why = missing()
    if why:  # scripts/setup.sh installs Chromium and builds the app: its absence is a failure, not a skip
        pytest.fail(why, pytrace=False)
    home = build_site(tmp_path_factory.mktemp("web-runs"), n_images=20)
    reg = Registry(load_settings(home=home, database_url=f"sqlite:///{home / 'registry' / 'registry.db'}"))
    try:
        with serve(home) as base:
            yield base, reg
    finally:
        reg.dispose()


def _run_ends(page: Any) -> str:
    page.wait_for_selector(".progress[data-ended=true]", timeout=180_000)
    status: str = page.get_attribute(".progress", "data-status")
    return status


def test_a_version_is_frozen_and_exported_with_live_progress(site: tuple[str, Registry], tmp_path: Path) -> None:
    base, reg = site
    with chromium() as ctx:
        ctx.set_default_timeout(20_000)
        page = ctx.new_page()
        login(page, base)
        page.goto(f"{base}/p/{PROJECT}/versions")
        page.fill("input[name=version-tag]", "v2")
        page.fill("input[name=version-query]", "category:circle")
        page.click("button:text-is('Create draft')")
        page.click(".versions table a:text-is('v2')")
        page.click("[data-version=v2] button:text-is('Freeze')")
        page.wait_for_selector(".progress")
        assert _run_ends(page) == "SUCCESS"
        with reg.session() as s:
            v2 = get_version(s, get_project(s, PROJECT), "v2")
            assert v2.is_frozen
        page.wait_for_selector("[data-version=v2] [data-chart='Splits (images)'] [data-bar]")  # reloaded once frozen
        assert page.locator("[data-version=v2] button:text-is('Freeze')").count() == 0

        page.select_option("select[name=export-format]", "coco")
        page.click("[data-version=v2] button:text-is('Export')")
        page.wait_for_selector(".progress[data-ended=false]")
        assert _run_ends(page) == "SUCCESS"
        with page.expect_download() as dl:
            page.click("text=Download coco export")
        target = tmp_path / dl.value.suggested_filename
        dl.value.save_as(target)
        with zipfile.ZipFile(target) as z:
            coco = [n for n in z.namelist() if n.endswith(".json")]
            assert coco, z.namelist()
            data = json.load(io.BytesIO(z.read(coco[0])))
        assert data["images"] and {c["name"] for c in data["categories"]} >= {"circle"}

        page.select_option("select[name=diff-a]", "v1")
        page.select_option("select[name=diff-b]", "v2")
        page.click("button:text-is('Compare')")
        page.wait_for_selector("[data-testid=diff] [data-diff]")
        shown = dict(page.eval_on_selector_all("[data-testid=diff] [data-diff]",
                                               "rs => rs.map(r => [r.dataset.diff, Number(r.dataset.count)])"))
        with reg.session() as s:
            d = diff_versions(s, get_project(s, PROJECT), "v1", "v2")
        assert shown["images_removed"] == len(d.images_removed) > 0  # v2 holds only the images with a circle
        assert shown["images_added"] == len(d.images_added)
        assert shown["annotations_removed"] == d.annotations_removed
