"""``dsgen train``, ``recipes``, ``models``, ``model show``, ``export onnx``, ``evaluate``, ``annotate``."""

from __future__ import annotations

import sys

import click

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.errors import DsgenError
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.recipes import get_recipe, load_recipes
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import ModelVersion
from dsgen_core.storage import open_storage


def _epoch_line(epoch: int, epochs: int, m: dict[str, float | None]) -> None:
    def f(key: str) -> str:
        v = m.get(key)
        return "-" if v is None else f"{v:.3f}"

    click.echo(f"epoch {epoch}/{epochs}  loss {f('train_loss')}  P {f('precision')}  R {f('recall')}  "
               f"mAP50 {f('map50')}  mAP50-95 {f('map50_95')}", err=True)


@click.command()
@click.option("--version", "version_tag", required=True, help="Frozen dataset version to train on.")
@click.option("--recipe", default="demo", show_default=True, help="Training recipe (see `dsgen recipes`).")
@click.option("--parent", help="Model version to continue from (incremental training with rehearsal), e.g. m1.")
@project_option
@json_option
def train(version_tag: str, recipe: str, parent: str | None, project: str, as_json: bool) -> None:
    """Train a YOLO model version from a frozen dataset version (offline; the model is built from its YAML)."""
    from dsgen_core.ml.trainer import train_model  # torch only for this command

    reg = open_registry()
    r = get_recipe(recipe, reg.settings.home)
    result = train_model(reg, project, version_tag, r, storage=open_storage(reg.settings.storage_root), parent=parent,
                         on_epoch=None if as_json and not sys.stderr.isatty() else _epoch_line, actor=cli_actor())
    m = result.metrics
    emit(result.summary(), as_json,
         f"model version {result.human_id} ({r.name} on {version_tag}{', parent ' + parent if parent else ''}): "
         f"{result.status} in {result.seconds:.0f} s; mAP50 {m['map50']:.3f}, mAP50-95 {m['map50_95']:.3f}, "
         f"P {m['precision']:.3f}, R {m['recall']:.3f}\n  weights: {result.artifacts[0]['uri']}\n"
         f"  curves: {result.curves_png}")


@click.command()
@json_option
def recipes(as_json: bool) -> None:
    """The training recipes: built-in ones and $DSGEN_HOME/recipes/*.yaml."""
    found = load_recipes(open_registry().settings.home)
    emit({k: r.to_dict() for k, r in found.items()}, as_json, "\n".join(
        f"{r.name:<14} {r.task:<8} {r.weights or r.model_source():<20} {r.epochs:>4} epochs  {r.imgsz:>4} px  {r.description}"
        for r in found.values()))


@click.command()
@project_option
@json_option
def models(project: str, as_json: bool) -> None:
    """The project's model versions."""
    from dsgen_core.loop.promotion import production_model

    reg = open_registry()
    with reg.session() as s:
        p = get_project(s, project)
        rows = [mvs.model_version_summary(s, mv) for mv in mvs.list_model_versions(s, p)]
        prod = production_model(s, p)
    current = prod.human_id if prod is not None else None

    def decision(r: mvs.ModelVersionSummary) -> str:
        if r.human_id == current:
            return "PRODUCTION"
        if r.error:
            return f"error: {r.error.splitlines()[0][:80]}"
        d = r.promotion or {}
        return f"{d['decision']}: {d.get('reason', '')}" if d else ""

    emit([{**r.to_dict(), "production": r.human_id == current} for r in rows], as_json, "\n".join(
        f"{r.human_id:<5} {r.status:<10} {r.recipe or '':<12} data {r.dataset_version or '-':<6} "
        f"parent {r.parent or '-':<5} mAP50 {((r.metrics or {}).get('map50') or 0):.3f}  {decision(r)}".rstrip()
        for r in rows) or f"no model versions in project {project!r} yet (`dsgen train --version TAG`)")




@click.group("model")
def model_() -> None:
    """One model version."""


@model_.command("show")
@click.argument("model_version")
@project_option
@json_option
def model_show(model_version: str, project: str, as_json: bool) -> None:
    """A model version: data, recipe, parent, metrics, artifacts."""
    reg = open_registry()
    with reg.session() as s:
        summary = mvs.model_version_summary(s, mvs.get_model_version(s, get_project(s, project), model_version))
    emit(summary.to_dict(), as_json)


@model_.command("promote")
@click.argument("model_version")
@click.option("--check/--force", default=True, show_default=True,
              help="--check compares it with the production model as the loop does (it may stay a candidate); "
                   "--force makes it the production model regardless.")
@project_option
@json_option
def promote(model_version: str, check: bool, project: str, as_json: bool) -> None:
    """Make a model version the project's production model (what auto-annotation uses by default)."""
    from dsgen_core.loop import promotion

    reg = open_registry()
    with reg.session() as s:
        p = get_project(s, project)
        if check:
            d = promotion.decide_promotion(s, p, model_version, storage=open_storage(reg.settings.storage_root),
                                           actor=cli_actor())
        else:
            mv = mvs.get_model_version(s, p, model_version)
            d = promotion.PromotionDecision(mv.human_id, True, "promoted by hand (--force)", None)
            mv.promotion = d.to_dict()
            promotion.promote(s, p, mv, reason=d.to_dict(), actor=cli_actor())
    emit(d.to_dict(), as_json, f"{d.model_version}: {d.decision} ({d.reason})")
    if not d.promoted:
        sys.exit(1)


@click.command("onnx")
@click.argument("model_version")
@click.option("--opset", type=int, help="ONNX opset (default: Ultralytics' choice for this torch).")
@project_option
@json_option
def export_onnx_cmd(model_version: str, opset: int | None, project: str, as_json: bool) -> None:
    """Export a model version's best weights to ONNX (onnxslim applied) and register the artifact."""
    from dsgen_core.ml.onnx_artifacts import export_model_onnx

    reg = open_registry()
    with reg.session() as s:
        info = export_model_onnx(s, get_project(s, project), model_version,
                                 storage=open_storage(reg.settings.storage_root), opset=opset, actor=cli_actor())
    emit(info.to_dict(), as_json, f"{info.model_version}: {info.uri} (opset {info.opset}, IR {info.ir_version}, "
                                  f"input {info.inputs[0]['shape']}, {(info.size_bytes or 0) / 1e6:.1f} MB, "
                                  f"sha256 {(info.sha256 or '')[:12]}…)")


@click.command()
@click.argument("model_version")
@click.option("--version", "version_tag", help="Dataset version to evaluate on (default: the one it was trained on).")
@click.option("--split", default="test", show_default=True)
@project_option
@json_option
def evaluate(model_version: str, version_tag: str | None, split: str, project: str, as_json: bool) -> None:
    """COCO metrics of the model's ONNX artifact (ONNX Runtime) on a frozen version's split.

    A model (or its parent) without an ONNX artifact is exported first, and the command says so.
    """
    from dsgen_core.evaluation.model_eval import evaluate_model_version
    from dsgen_core.ml.onnx_artifacts import ONNX_ROLE, export_model_onnx

    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session() as s:
        proj = get_project(s, project)
        mv = mvs.get_model_version(s, proj, model_version)
        for m in (mv, s.get(ModelVersion, mv.parent_model_version_id) if mv.parent_model_version_id else None):
            if m is not None and m.status == "succeeded" and mvs.artifact(s, m, ONNX_ROLE, "onnx") is None:
                click.echo(f"{m.human_id} has no ONNX artifact yet: exporting it first", err=True)
                export_model_onnx(s, proj, m.human_id, storage=storage, actor=cli_actor())
        r = evaluate_model_version(s, proj, model_version, storage=storage, version_tag=version_tag, split=split,
                                   actor=cli_actor())
    emit(r.to_dict(), as_json, "\n".join([
        (f"{r.model_version} on {r.dataset_version}/{r.split} ({r.images} images): "
        f"P {r.precision:.3f}  R {r.recall:.3f}  F1 {r.f1:.3f}  mAP50 {r.map50:.3f}  mAP50-95 {r.map50_95:.3f}"),
        *(f"  {k:<16} P {c['precision']:.3f}  R {c['recall']:.3f}  mAP50 {c['map50']:.3f}  mAP50-95 {c['map50_95']:.3f}"
          for k, c in r.per_class.items()),
        f"  PR curve: {r.charts['pr_curve']}", f"  confusion matrix: {r.charts['confusion_matrix']}",
    ]))


@click.command()
@click.argument("model_version", required=False)
@click.option("--query", "-q", default="", help="Which images to annotate (default: all of the project).")
@click.option("--conf", default=0.25, show_default=True, help="Lowest confidence kept.")
@project_option
@json_option
def annotate(model_version: str | None, query: str, conf: float, project: str, as_json: bool) -> None:
    """Write the model's detections into the registry as model annotations (source=model, confidence).
    Without MODEL_VERSION: the project's production model."""
    from dsgen_core.loop.promotion import production_model
    from dsgen_core.ml.auto_annotate import auto_annotate

    reg = open_registry()
    with reg.session() as s:
        p = get_project(s, project)
        if model_version is None:
            prod = production_model(s, p)
            if prod is None:
                raise DsgenError(f"project {project!r} has no production model: name a model version, or promote "
                                 "one (dsgen model promote m1)")
            model_version = prod.human_id
        r = auto_annotate(s, p, model_version, storage=open_storage(reg.settings.storage_root),
                          query=query, conf=conf, actor=cli_actor(), progress=sys.stderr.isatty() and not as_json)
    emit(r.to_dict(), as_json, f"{r.model_version}: {r.annotations} model annotations on {r.images} images "
                               f"({r.replaced} earlier ones of this model replaced) in {r.seconds} s; "
                               f"query them with `dsgen query 'model:{r.model_version} confidence<0.5'`")
