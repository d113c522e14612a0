"""CVAT push and pull as Dagster jobs, and the pull sensor, against the schema-checked stand-in (issue 12)."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import select

from cvat_server import StandIn, touch
from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Annotation, CvatObject
from dsgen_pipelines.cvat.jobs import cvat_pull_poll
from dsgen_pipelines.registry.assets import REGISTRY_ANNOTATIONS


def test_push_pull_and_the_poll_sensor(imported: Registry, defs: dg.Definitions, instance: dg.DagsterInstance,
                                       cvat: StandIn) -> None:
    push = defs.resolve_job_def("cvat_push_job").execute_in_process(instance=instance, run_config={
        "ops": {"cvat_push": {"config": {"name": "review", "query": ""}}}})
    assert push.success
    (task_id,) = cvat.tasks
    task = cvat.tasks[task_id]
    assert len(task["frames"]) == 40
    assert {sh["type"] for sh in task["shapes"]} >= {"polygon", "mask"}  # the demo's masks go as CVAT masks

    with dg.build_sensor_context(instance=instance, resources=defs.resources, definitions=defs) as ctx:
        first = cvat_pull_poll(ctx)
    assert isinstance(first, dg.SensorResult) and len(first.run_requests or []) == 1

    # An annotator deletes a mask and re-labels nothing else; the pull job brings it back as a batch.
    mask = next(sh for sh in task["shapes"] if sh["type"] == "mask")
    task["shapes"].remove(mask)
    touch(task, {mask["frame"]})  # as CVAT marks the job changed; the pull job reads only changed jobs
    with imported.session() as s:
        gone = s.scalar(select(CvatObject.annotation_id).where(CvatObject.cvat_id == mask["id"]))
    pull = defs.resolve_job_def("cvat_pull_job").execute_in_process(instance=instance, run_config={
        "ops": {"cvat_pull": {"config": {"task_id": task_id}}}})
    assert pull.success
    with imported.session() as s:
        assert s.get(Annotation, gone) is None
    run_tags = instance.get_run_by_id(pull.run_id).tags  # type: ignore[union-attr]
    batch = run_tags["dsgen/batches"]
    assert run_tags[f"dsgen/batch-{batch}"] == "true"
    obs = instance.fetch_observations(REGISTRY_ANNOTATIONS, limit=5).records
    assert obs and obs[0].asset_observation is not None
    assert obs[0].asset_observation.metadata["batch"].value == int(batch)


def test_masks_survive_the_round_trip_unchanged(imported: Registry, defs: dg.Definitions,
                                                instance: dg.DagsterInstance, cvat: StandIn) -> None:
    """A mask CVAT sends back as it got it is the same mask: decode(encode(m)) == m, so nothing is changed."""
    from dsgen_core.cvat.shapes import decode_mask, encode_mask
    from dsgen_core.storage import open_storage
    from dsgen_core.storage.masks import MaskStore

    masks = MaskStore(open_storage(imported.settings.storage_root))
    with imported.session() as s:
        rows = s.execute(select(Annotation.mask_uri, Annotation.asset_id).where(Annotation.mask_uri.is_not(None))).all()
    assert rows
    for uri, _asset in rows:
        rle = masks.get(uri)
        h, w = rle["size"]
        assert decode_mask(encode_mask(rle), w, h)["counts"] == rle["counts"]
