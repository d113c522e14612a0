"""Declarative automation: what follows a frozen version, and the sensor that evaluates it."""

import dagster as dg

# Materialize a partition once its upstream partition is (re)materialized and that partition's
# blocking checks passed: a failed check of a version leaves it unexported, a failed ONNX parity
# check leaves the model unevaluated.
after_checked_upstream = (
    dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("eager, after blocking checks passed")

automation_sensor = dg.AutomationConditionSensorDefinition(
    "dsgen_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="Evaluates the automation conditions: exports and insights after each frozen version, thumbnails after imports.",
)
