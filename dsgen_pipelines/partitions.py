"""One dynamic partition per dataset version tag (``v1``, ``v2``, ...) of the configured project."""

import dagster as dg

from dsgen_core.config import load_settings
from dsgen_core.ml.recipes import load_recipes

# The name on its own: the instance's partition calls want a str, the definition's name is optional.
DATASET_VERSIONS = "dataset_versions"
dataset_versions = dg.DynamicPartitionsDefinition(name=DATASET_VERSIONS)

# One partition per embedding version and level, keyed by its Chroma collection ("objects_visual_demo-m1").
EMBEDDING_VERSIONS = "embedding_versions"
embedding_versions = dg.DynamicPartitionsDefinition(name=EMBEDDING_VERSIONS)

# Models, ONNX artifacts and evaluations: one partition per (dataset version, recipe); the partition
# key reads "v1|demo". Recipes are the built-in ones plus $DSGEN_HOME/recipes/*.yaml at load time,
# detection ones only: the ONNX parity check and the evaluation run detection models (segment and
# pose recipes train from the CLI).
recipes = dg.StaticPartitionsDefinition(
    sorted(name for name, r in load_recipes(load_settings().home).items() if r.task == "detect"))
model_partitions = dg.MultiPartitionsDefinition({"dataset_version": dataset_versions, "recipe": recipes})
