"""``production_model``: the project's production model, decided after each evaluation.

A candidate (a model version trained, exported and evaluated, with no decision yet) is promoted
when it is not worse than the production model on that model's test split beyond the policy's
tolerance, and not worse on the classes it adds; otherwise it stays a candidate with its reason.
Each materialization records the decisions it made and the production history.
"""

import dagster as dg

from dsgen_core.loop import promotion
from dsgen_pipelines.metadata import md_table
from dsgen_pipelines.ml.assets import evaluation
from dsgen_pipelines.resources import TRANSIENT_RETRIES, RegistryResource, StorageResource, run_actor, user_errors

PROMOTION_POOL = "promotion"


@dg.asset(
    deps=[dg.AssetDep(evaluation, partition_mapping=dg.AllPartitionMapping())],
    retry_policy=TRANSIENT_RETRIES,
    pool=PROMOTION_POOL,  # one decision at a time: two would compare with the same stale production model
    group_name="models",
    kinds={"onnx"},
    description="The project's production model (a deployment row): promoted from the evaluated candidates, "
                "with why; auto-annotation uses it by default.",
)
def production_model(context: dg.AssetExecutionContext, registry: RegistryResource,
                     storage: StorageResource) -> dg.MaterializeResult:
    store = storage.open()
    with user_errors(), registry.session() as s:
        project = registry.get_project(s)
        decisions = promotion.decide_pending(s, project, storage=store, actor=run_actor(context))
        current = promotion.production_model(s, project)
        history = promotion.production_history(s, project)
    for d in decisions:
        context.log.info(f"{d.model_version}: {d.decision} ({d.reason})")
    return dg.MaterializeResult(metadata={
        "production_model": current.human_id if current is not None else "",
        "decisions": dg.MetadataValue.md(md_table(["model version", "decision", "compared with", "reason"], (
            [d.model_version, d.decision, d.reference or "", d.reason] for d in decisions)) if decisions
            else "no new candidate"),
        "promoted": [d.model_version for d in decisions if d.promoted],
        "history": dg.MetadataValue.md(md_table(["model version", "status", "since", "reason", "by"], (
            [h.model_version, h.status, h.since.isoformat(timespec="seconds"), h.reason, h.actor or ""]
            for h in history))),
    })


promotion_job = dg.define_asset_job("promotion_job", selection=[production_model],
                                    description="Decide the promotion of the evaluated candidates.")
