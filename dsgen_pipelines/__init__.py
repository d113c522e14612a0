"""Dagster definitions of dsgen: assets, checks, partitions, resources, sensors and jobs.

Every asset body is short and calls ``dsgen_core``; the code location is ``dsgen``
(``dsgen_pipelines.definitions:defs``).
"""
