"""The registry schema: every entity of the design seeds as typed SQLAlchemy 2 tables, by domain.

One schema serves SQLite (default) and PostgreSQL (scale-out); JSON columns become JSONB on
PostgreSQL. Integer surrogate keys keep bulk imports fast; the sources' own identifiers (paths,
COCO ids, CVAT track ids) are kept as data: they are the records' identity, and exports give
them back. These classes are the ORM's "models"; trained networks are ``dsgen_core.ml``.

    from dsgen_core.registry.schema import Annotation, Asset, LabelClass
"""

from dsgen_core.registry.schema.accounts import (
    PROJECT_ROLES,
    ApiKey,
    ProjectMember,
    RateCounter,
    RefreshToken,
    RevokedAccessToken,
    UsageRecord,
    User,
)
from dsgen_core.registry.schema.activity import AuditLog, ChangeEvent, ExportJob, InsightView
from dsgen_core.registry.schema.annotations import (
    Annotation,
    AnnotationContent,
    AnnotationGroup,
    AnnotationGroupMember,
    AnnotationRelation,
    Track,
    TrackMember,
)
from dsgen_core.registry.schema.base import Base, BigId, Json, as_utc, utcnow
from dsgen_core.registry.schema.curation import AnnotationMetadata, AnnotationTag, AssetMetadata, AssetTag
from dsgen_core.registry.schema.cvat import CVAT_TASK_STATUSES, CvatFrame, CvatObject, CvatTask
from dsgen_core.registry.schema.embeddings import EmbeddingOutbox, EmbeddingVersion, NearDuplicate
from dsgen_core.registry.schema.media import Asset, Frame, ImportBatch
from dsgen_core.registry.schema.ml import (
    Deployment,
    Evaluation,
    Model,
    ModelArtifact,
    ModelVersion,
    TrainingEpochMetric,
)
from dsgen_core.registry.schema.projects import (
    SHAPE_TYPES,
    Dataset,
    LabelClass,
    OntologyVersion,
    OntologyVersionClass,
    Project,
    ProjectPolicy,
)
from dsgen_core.registry.schema.versions import (
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAnnotation,
    DatasetVersionAsset,
    DatasetVersionClass,
)

__all__ = [
    "CVAT_TASK_STATUSES",
    "PROJECT_ROLES",
    "SHAPE_TYPES",
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
    "CvatFrame",
    "CvatObject",
    "CvatTask",
    "Dataset",
    "DatasetSplit",
    "DatasetVersion",
    "DatasetVersionAnnotation",
    "DatasetVersionAsset",
    "DatasetVersionClass",
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
    "NearDuplicate",
    "OntologyVersion",
    "OntologyVersionClass",
    "Project",
    "ProjectMember",
    "ProjectPolicy",
    "RateCounter",
    "RefreshToken",
    "RevokedAccessToken",
    "Track",
    "TrackMember",
    "TrainingEpochMetric",
    "UsageRecord",
    "User",
    "as_utc",
    "utcnow",
]
