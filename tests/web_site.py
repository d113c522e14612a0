"""A real dsgen site for the browser: a registry with the demo data, a user, ``dsgen serve`` in a
subprocess and Debian's Chromium driven by Playwright (tests/web, scripts/screenshots.py,
benchmarks/bench_web.py).

    home = build_site(tmp / "home", n_images=40)
    with serve(home) as base, chromium() as ctx:
        page = ctx.new_page(); login(page, base)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "web" / "dist"
CHROMIUM = "/usr/bin/chromium"
# This machine's network is closed: without the background-networking flags Chromium keeps trying
# Google's hosts. A fresh user-data-dir per launch (launch_persistent_context) keeps runs apart.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROJECT = "demo"
EMAIL = "ana@example.com"
PASSWORD = "correct horse battery"


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium)"
    if not (DIST / "index.html").is_file():
        return "web/dist is not built (scripts/setup.sh runs npm ci && npm run build in web/)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


def build_site(home: Path, *, n_images: int = 40, seed: int = 7, image_size: int = 160, model: bool = True) -> Path:
    """``home`` as a DSGEN_HOME: the demo data in project ``demo``, its editor :data:`EMAIL`, and
    (``model``) a frozen version ``v1`` with model versions ``m1`` and ``m2`` (see :func:`_model_history`)."""
    from dsgen_core.accounts.access import grant
    from dsgen_core.accounts.users import add_user
    from dsgen_core.config import load_settings
    from dsgen_core.demo.synth import generate_demo_dataset
    from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
    from dsgen_core.registry.db import Registry
    from dsgen_core.registry.projects import ensure_project
    from dsgen_core.storage import open_storage

    demo = generate_demo_dataset(home / "demo-data", n_images=n_images, image_size=image_size, seed=seed).root
    reg = Registry(load_settings(home=home, database_url=f"sqlite:///{home / 'registry' / 'registry.db'}"))
    try:
        storage = open_storage(reg.settings.storage_root)
        with reg.session(bulk=True) as s:
            import_coco(s, ensure_project(s, PROJECT), demo / "annotations" / "instances_default.json",
                        images=demo / "images", storage=storage,
                        sources_dir=local_sources_dir(storage, reg.settings.home), actor="test")
        with reg.session() as s:
            project = ensure_project(s, PROJECT)
            grant(s, project, add_user(s, EMAIL, "Ana", password=PASSWORD), "editor")
            if model:
                _model_history(s, project, storage)
    finally:
        reg.dispose()
    return home


def _model_history(s: Any, project: Any, storage: Any) -> None:
    """Version ``v1`` frozen, model version ``m1`` trained on it (epochs, an evaluation with a confusion
    matrix) and its child ``m2``: what a training run records, without training."""
    from dsgen_core.registry.schema import Evaluation, Model, ModelVersion, TrainingEpochMetric
    from dsgen_core.versions.lifecycle import create_version, freeze_version, get_version

    create_version(s, project, "v1", split="train=0.7,val=0.15,test=0.15", seed=1)
    freeze_version(s, project, "v1", storage=storage, actor="test")
    v1 = get_version(s, project, "v1")
    m = Model(project_id=project.id, name="detector", task="det")
    s.add(m)
    s.flush()
    m1 = ModelVersion(project_id=project.id, model_id=m.id, human_id="m1", status="succeeded", recipe="yolov8n-160",
                      framework="ultralytics", training_data_version_id=v1.id, metrics={"mAP50": 0.61, "mAP50-95": 0.42})
    s.add(m1)
    s.flush()
    s.add(ModelVersion(project_id=project.id, model_id=m.id, human_id="m2", status="succeeded", recipe="yolov8n-160",
                       framework="ultralytics", training_data_version_id=v1.id, parent_model_version_id=m1.id,
                       metrics={"mAP50": 0.66, "mAP50-95": 0.47}))
    for e in range(1, 11):
        s.add(TrainingEpochMetric(model_version_id=m1.id, epoch=e, train_loss=2.4 / e ** 0.5, val_loss=2.6 / e ** 0.45,
                                  precision=0.3 + 0.04 * e, recall=0.25 + 0.035 * e, map50=0.2 + 0.041 * e,
                                  map50_95=0.1 + 0.032 * e))
    names = ["circle", "square", "triangle", "background"]
    s.add(Evaluation(model_version_id=m1.id, dataset_version_id=v1.id, split="test", precision=0.71, recall=0.64,
                     f1_score=0.67, map50=0.61, map50_95=0.42,
                     per_class={"circle": {"ap50": 0.7}, "square": {"ap50": 0.6}, "triangle": {"ap50": 0.53}},
                     extra={"confusion_names": names,
                            "confusion_matrix": [[14, 1, 0, 2], [1, 12, 2, 1], [0, 3, 9, 3], [2, 1, 2, 0]]}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(home: Path, *, timeout: float = 60.0) -> Iterator[str]:
    """``dsgen serve`` over ``home`` on a free port; yields its base URL and stops it after."""
    port = free_port()
    env = {**os.environ, "DSGEN_HOME": str(home)}
    env.pop("DSGEN_DATABASE_URL", None)
    env.pop("DSGEN_STORAGE", None)
    dsgen = Path(sys.executable).with_name("dsgen")
    log = open(home / "serve.log", "wb")  # closed below, after the process
    proc = subprocess.Popen([str(dsgen), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dsgen serve did not start: {(home / 'serve.log').read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def chromium(*, width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A Playwright browser context of Debian's Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dsgen-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                    headless=True, viewport={"width": width, "height": height})
        try:
            yield ctx
        finally:
            ctx.close()


def login(page: Any, base: str, *, email: str = EMAIL, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector(f"[data-project={PROJECT}]")
