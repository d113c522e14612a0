"""Datamaker annotatorData (seed 004): import with dm-schema validation, and export back."""
