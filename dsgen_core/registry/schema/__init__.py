"""The registry schema: every entity of the design seeds as typed SQLAlchemy 2 tables, by domain.

One schema serves SQLite (default) and PostgreSQL (scale-out); JSON columns become JSONB on
PostgreSQL. Integer surrogate keys keep bulk imports fast; the sources' own identifiers (paths,
COCO ids, CVAT track ids) are kept as data: they are the records' identity, and exports give
them back. These classes are the ORM's "models"; trained networks are ``dsgen_core.ml``.

    from dsgen_core.registry.schema import Annotation, Asset, LabelClass
"""

from dsgen_core.registry.schema.base import Base, BigId, Json, utcnow
from dsgen_core.registry.schema.accounts import User, ApiKey, UsageRecord
from dsgen_core.registry.schema.projects import Project, Dataset, OntologyVersion, LabelClass, OntologyVersionClass, SHAPE_TYPES
from dsgen_core.registry.schema.media import ImportBatch, Asset, Frame
from dsgen_core.registry.schema.annotations import Track, AnnotationContent, Annotation, TrackMember, AnnotationRelation, AnnotationGroup, AnnotationGroupMember
from dsgen_core.registry.schema.curation import AssetTag, AnnotationTag, AssetMetadata, AnnotationMetadata
from dsgen_core.registry.schema.embeddings import EmbeddingVersion, EmbeddingOutbox
from dsgen_core.registry.schema.versions import DatasetVersion, DatasetSplit, DatasetVersionAsset, DatasetVersionAnnotation
from dsgen_core.registry.schema.ml import Model, ModelVersion, TrainingEpochMetric, ModelArtifact, Evaluation, Deployment
from dsgen_core.registry.schema.activity import InsightView, ExportJob, AuditLog, ChangeEvent

__all__ = [
    "Annotation",
    "AnnotationContent",
    "AnnotationGroup",
    "AnnotationGroupMember",
    "AnnotationMetadata",
    "AnnotationRelation",
    "AnnotationTag",
    "ApiKey",
    "Asset",
    "AssetMetadata",
    "AssetTag",
    "AuditLog",
    "Base",
    "BigId",
    "ChangeEvent",
    "Dataset",
    "DatasetSplit",
    "DatasetVersion",
    "DatasetVersionAnnotation",
    "DatasetVersionAsset",
    "Deployment",
    "EmbeddingOutbox",
    "EmbeddingVersion",
    "Evaluation",
    "ExportJob",
    "Frame",
    "ImportBatch",
    "InsightView",
    "Json",
    "LabelClass",
    "Model",
    "ModelArtifact",
    "ModelVersion",
    "OntologyVersion",
    "OntologyVersionClass",
    "Project",
    "SHAPE_TYPES",
    "Track",
    "TrackMember",
    "TrainingEpochMetric",
    "UsageRecord",
    "User",
    "utcnow",
]
