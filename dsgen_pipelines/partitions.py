"""One dynamic partition per dataset version tag (``v1``, ``v2``, ...) of the configured project."""

import dagster as dg

dataset_versions = dg.DynamicPartitionsDefinition(name="dataset_versions")
