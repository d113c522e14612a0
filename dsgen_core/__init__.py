"""dsgen core library: the registry, formats, query DSL and insights, usable without Dagster."""

__version__ = "0.1.0"
