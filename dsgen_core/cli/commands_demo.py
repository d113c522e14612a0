"""``dsgen demo``: the whole registry flow on generated data, with nothing to download."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

import click
import orjson
from sqlalchemy import select

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry
from dsgen_core.config import Settings
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
from dsgen_core.insights.charts import render_charts
from dsgen_core.insights.compute import compute_insights
from dsgen_core.ml.recipes import get_recipe
from dsgen_core.query import count_query
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import ensure_project, get_project
from dsgen_core.registry.stats import registry_stats
from dsgen_core.registry.tagging import add_tags, set_metadata
from dsgen_core.storage import open_storage
from dsgen_core.thumbnails import make_thumbnails
from dsgen_core.versions.lifecycle import create_version, get_version, version_summary

DEMO_VERSION = "v1"


def _step(msg: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"[demo] {msg}", err=True)


_EPOCH = re.compile(r"epoch \d+/\d+ \{[^}]*\}")


def _through_dagster(settings: Settings, project: str, tag: str, train: str | None,
                     embed: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Materialize the version's Dagster assets in the local instance, in a separate process: dsgen_core never imports Dagster."""
    env = {**os.environ, "DSGEN_PROJECT": project, "DSGEN_HOME": str(settings.home),
           "DSGEN_DATABASE_URL": settings.database_url, "DSGEN_STORAGE": settings.storage_root}
    proc = subprocess.Popen([sys.executable, "-m", "dsgen_pipelines.launch", "--json", tag,
                             *(["--train", train] if train else []), *(["--embed", embed] if embed else [])], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    err: list[str] = []

    def follow() -> None:  # the run's log, kept for an error; its training epochs shown as they come
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if progress and (m := _EPOCH.search(line)):
                click.echo(f"[demo] training {m.group(0)}", err=True)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read()  # not communicate(): the thread owns stderr
    proc.wait()
    reader.join()
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise DsgenError(f"materializing {tag!r} through Dagster failed (exit {proc.returncode}):\n{''.join(err)[-3000:]}")
    return orjson.loads(lines[-1])


def _demo_evaluation(reg: Registry, project: str, recipe: str, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """The newest evaluation of the demo model (what the Dagster run computed; a re-run reuses it)."""
    from dsgen_core.evaluation.model_eval import own_test_evaluation
    from dsgen_core.ml.model_versions import latest_model_version

    with reg.session() as s:
        try:
            mv = latest_model_version(s, get_project(s, project), DEMO_VERSION, recipe)
        except NotFound:
            if missing_ok:
                return None
            raise
        row = own_test_evaluation(s, mv)
        if row is None and missing_ok:
            return None
        if row is None:
            raise DsgenError(f"model {mv.human_id} trained but was not evaluated; see the Dagster run's logs")
        storage_root = reg.settings.storage_root
        return {"model_version": mv.human_id, "recipe": recipe, "split": row.split, "precision": row.precision,
                "recall": row.recall, "f1": row.f1_score, "map50": row.map50, "map50_95": row.map50_95,
                "per_class": row.per_class, "images": (row.extra or {}).get("images"),
                "charts": {k: f"{storage_root}/{v}" if not str(v).startswith("s3://") else v
                           for k, v in ((row.extra or {}).get("charts") or {}).items()},
                "training_seconds": round((mv.finished_at - mv.started_at).total_seconds(), 1)
                if mv.finished_at and mv.started_at else None}


def _demo_embeddings(reg: Registry, project: str, recipe: str) -> dict[str, Any]:
    """The demo model's backbone as the project's embedding versions, synced (a no-op when Dagster did it),
    with one similarity search and the near-duplicate count."""
    from dsgen_core.embeddings.search import find_duplicates, similar_objects
    from dsgen_core.embeddings.store import open_store
    from dsgen_core.embeddings.sync import encoder_factory, model_encoder, sync_version
    from dsgen_core.embeddings.versions import default_version_name, ensure_embedding_versions
    from dsgen_core.ml.model_versions import latest_model_version
    from dsgen_core.registry.schema import Annotation, Asset

    storage = open_storage(reg.settings.storage_root)
    store = open_store(reg.settings)
    with reg.session() as s:
        proj = get_project(s, project)
        mv = latest_model_version(s, proj, DEMO_VERSION, recipe)
        spec = model_encoder(reg, s, mv, storage).spec
        made = ensure_embedding_versions(s, proj, default_version_name(proj, spec), spec, model_version=mv,
                                         actor=cli_actor())
    synced = [sync_version(reg, project, m.id, store=store, embedder=encoder_factory(reg, m.id, storage),
                           actor=cli_actor()) for m in made]
    with reg.session() as s:
        proj = get_project(s, project)
        first = s.scalar(select(Annotation.id).join(Asset, Asset.id == Annotation.asset_id).where(
            Asset.project_id == proj.id, Annotation.bbox_w.is_not(None)).order_by(Annotation.id).limit(1))
        similar = similar_objects(s, proj, store=store, object_id=first, version=made[0].name, top_k=5) \
            if first is not None else None
        dups = find_duplicates(s, proj, store=store, version=made[0].name, actor=cli_actor())
    return {"versions": [m.collection for m in made], "model_version": mv.human_id,
            "dimension": made[0].dimension, "synced": {r.version + "/" + r.level: r.upserted for r in synced},
            "similar_to": first, "similar": similar.to_dict() if similar else None,
            "exact_duplicate_groups": len(dups.exact), "near_duplicate_groups": len(dups.near),
            "near_duplicate_images": dups.near_images, "near_threshold": dups.threshold}


@click.command()
@click.option("--project", default="demo", show_default=True, help="Project the demo data goes into.")
@click.option("--images", "n_images", default=300, show_default=True, help="How many synthetic images.")
@click.option("--seed", default=0, show_default=True)
@click.option("--dagster/--no-dagster", "with_dagster", default=True, show_default=True,
              help=f"Also freeze version {DEMO_VERSION} and export it through Dagster, in the local instance "
                   "$DAGSTER_HOME (default ./.dagster_home) that `dg dev` then shows.")
@click.option("--recipe", default="demo", show_default=True,
              help="Recipe of the model trained on the version (`dsgen recipes`); e.g. tiny for a quick run.")
@click.option("--train/--no-train", "with_training", default=True, show_default=True,
              help="Train a model on the version, export it to ONNX and evaluate it on the test split.")
@click.option("--loop", is_flag=True,
              help="Then start a dagster-daemon, import a second batch with a new class and watch the loop: "
                   "re-embedding, v2, its exports, the child model (rehearsal), ONNX, evaluation, promotion.")
@json_option
def demo(project: str, n_images: int, seed: int, with_dagster: bool, recipe: str, with_training: bool, loop: bool,
         as_json: bool) -> None:
    """Generate a CVAT-style COCO export of synthetic shapes, import it, tag it, query it and chart it;
    then freeze version v1, export it (COCO, YOLO) and chart it through Dagster; then train a YOLO
    model on it (recipe ``demo``: a few CPU minutes), export it to ONNX and evaluate it.

    Safe to run again: the import is idempotent and a frozen version stays as it is.
    """
    if loop and not (with_dagster and with_training):
        raise DsgenError("--loop needs --dagster and --train: the loop continues from the demo's model")
    t0 = time.perf_counter()
    reg = open_registry()
    quiet = as_json
    with_training = with_training and with_dagster  # the demo trains through Dagster
    if with_training and get_recipe(recipe, reg.settings.home).task != "detect":
        raise DsgenError(f"recipe {recipe!r} is not a detection recipe; the demo evaluates detection models")
    src = reg.settings.home / "demo" / f"shapes-{n_images}-{seed}"
    if not (src / "annotations" / "instances_default.json").exists():
        _step(f"generating {n_images} synthetic images into {src}", quiet)
        generate_demo_dataset(src, n_images=n_images, seed=seed)
    _step("importing the CVAT COCO 1.0 export", quiet)
    storage = open_storage(reg.settings.storage_root)
    actor = cli_actor()
    with reg.session(bulk=True) as s:
        imported = import_coco(s, ensure_project(s, project, source="coco", actor=actor),
                               src / "annotations" / "instances_default.json", images=src / "images", storage=storage,
                               sources_dir=local_sources_dir(storage, reg.settings.home), actor=actor,
                               progress=sys.stderr.isatty() and not quiet)
    _step("making thumbnails", quiet)
    with reg.session() as s:
        thumbs = make_thumbnails(s, get_project(s, project), storage=storage, progress=sys.stderr.isatty() and not quiet)
    with reg.session() as s:
        proj = get_project(s, project)
        tagged = add_tags(s, proj, ["has-occlusion"], query="attr.occluded:true", actor=actor)
        add_tags(s, proj, ["video"], query="has:track", actor=actor)
        set_metadata(s, proj, "origin", "synthetic", query="", actor=actor)
        queries: dict[str, Any] = {
            q: count_query(s, proj, q)
            for q in ("category:circle", "tag:has-occlusion", "has:mask", "has:track -tag:has-occlusion", "width>=160")
        }
    _step("computing insights and drawing charts", quiet)
    out_dir = reg.settings.home / "insights" / project
    with reg.session() as s:
        insights = compute_insights(s, get_project(s, project))
        stats = registry_stats(s, get_project(s, project))
    charts = render_charts(insights, out_dir)
    overview = charts.get("overview") or next(iter(charts.values()), None)
    dagster = None
    if with_dagster:
        _step(f"freezing version {DEMO_VERSION!r} and exporting it through Dagster", quiet)
        with reg.session() as s:
            try:
                get_version(s, get_project(s, project), DEMO_VERSION)
            except NotFound:
                create_version(s, get_project(s, project), DEMO_VERSION, actor=actor)
        train = recipe if with_training and not _demo_evaluation(reg, project, recipe, missing_ok=True) else None
        if train:
            _step(f"training recipe {recipe!r} on {DEMO_VERSION}, exporting it to ONNX and evaluating it "
                  "(through Dagster; a few minutes)", quiet)
        dagster = _through_dagster(reg.settings, project, DEMO_VERSION, train, recipe if with_training else None,
                                   progress=not quiet)
    evaluation = _demo_evaluation(reg, project, recipe) if with_training else None
    embeddings = None
    if with_training:
        _step("embedding the objects and images with the model's backbone (Chroma)", quiet)
        embeddings = _demo_embeddings(reg, project, recipe)
    version = None
    with reg.session() as s:
        try:
            v = version_summary(s, get_version(s, get_project(s, project), DEMO_VERSION))
            version = {"tag": v.tag, "frozen": v.frozen, "content_hash": v.content_hash, "splits": v.splits,
                       "annotations": v.annotations}
        except NotFound:
            pass
    summary = {
        "project": project,
        "database": reg.settings.database_shown,
        "source": str(src),
        "import": imported.summary(),
        "stats": stats,
        "thumbnails": thumbs.to_dict(),
        "tagged_has_occlusion": tagged,
        "queries": queries,
        "classes": {c["key"]: c["objects"] for c in insights["class_distribution"]["classes"]},
        "charts": {k: str(v) for k, v in charts.items()},
        "overview_chart": str(overview) if overview else None,
        "version": version,
        "dagster": dagster,
        "evaluation": evaluation,
        "embeddings": embeddings,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    human = "\n".join([
        f"demo project {project!r} in {reg.settings.database_shown}",
        f"  images {stats['images']}, objects {stats['objects']}, categories {stats['categories']}, tracks {stats['tracks']}",
        *(f"  query {q!r}: {n} images" for q, n in queries.items()),
        f"  insights chart: {overview}",
        *([(f"  version {version['tag']}: {'frozen' if version['frozen'] else 'draft'}, images per split "
           f"{version['splits']}, content hash {version['content_hash']}")] if version else []),
        *([(f"  version {DEMO_VERSION} frozen, exported and charted through Dagster: "
           f"{', '.join(dagster['versions'][DEMO_VERSION]['materialized'])} in {reg.settings.export_dir(project, DEMO_VERSION, '*')}"),
           f"  see it: DAGSTER_HOME={dagster['dagster_home']} DSGEN_PROJECT={project} dg dev"] if dagster else []),
        *([(f"  model {evaluation['model_version']} ({recipe}) on {DEMO_VERSION}/test, ONNX Runtime: "
           f"mAP50 {evaluation['map50']:.3f}, mAP50-95 {evaluation['map50_95']:.3f}, P {evaluation['precision']:.3f}, "
           f"R {evaluation['recall']:.3f}, F1 {evaluation['f1']:.3f}"),
           *(f"    {k:<10} mAP50 {c['map50']:.3f}  mAP50-95 {c['map50_95']:.3f}" for k, c in evaluation["per_class"].items()),
           f"  PR curve: {evaluation['charts']['pr_curve']}"] if evaluation else []),
        *(_embedding_lines(embeddings) if embeddings else []),
        f"  done in {summary['seconds']} s",
    ])
    emit(summary, as_json, human)
    if loop:
        click.echo("\nthe continuous loop (a second batch, with a new class):", err=as_json)
        # Dagster lives in dsgen_pipelines (dsgen_core does not import it); the output streams through.
        code = subprocess.call([sys.executable, "-m", "dsgen_pipelines.loop.watch", "--project", project,
                                "--recipe", recipe, "--images", str(max(30, n_images // 5)), "--seed", str(seed + 1),
                                *(["--json"] if as_json else [])])
        if code:
            sys.exit(code)


def _embedding_lines(e: dict[str, Any]) -> list[str]:
    lines = [f"  embeddings: {e['model_version']}'s backbone, {e['dimension']}-d, in Chroma {', '.join(e['versions'])}"]
    if e["similar"]:
        lines.append(f"  objects most like object {e['similar_to']} (`dsgen similar {e['similar_to']}`):")
        lines += [f"    {h['object_id']:>6}  distance {h['distance']:.4f}  {h['category']:<10} {h['file_name']}"
                  for h in e["similar"]["hits"]]
    near = (f"{e['near_duplicate_groups']} near-duplicate groups ({e['near_duplicate_images']} images, cosine "
            f"distance <= {e['near_threshold']})" if e["near_threshold"] > 0
            else "no near-duplicates (this model's image vectors do not tell the images apart)")
    lines.append(f"  duplicates: {e['exact_duplicate_groups']} groups of identical images, {near}; `dsgen duplicates`")
    return lines
