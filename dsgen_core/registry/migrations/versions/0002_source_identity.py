"""identity by source, classes across ontology versions, per-project model ids

Revision ID: 0002
Revises: 0001

- assets: unique by ``source_key`` (the source's path or id) instead of by sha256; sha256 stays,
  indexed, as a fact. Existing assets take their file name as key.
- annotations (and the version snapshot): ``source_key``, the source's annotation id ("coco:17"),
  unique per image; that index (asset_id first) replaces the plain one on asset_id.
- label_classes: one row per class and project; ontology versions list them in
  ``ontology_version_classes``. Rows that an ontology fork had copied are merged into the oldest
  row of the same key, and everything that pointed at a copy points at it (frozen snapshots
  included: their content hash reads class keys, not ids, so it does not change).
- model_versions: ``project_id``; human ids (m3) unique per project.
- embedding_versions: project, level, active flag; embedding_outbox names objects or images by id
  without a foreign key (a delete outlives its row).
- import_batches: ``actor``.

The merge of copied classes cannot be undone; downgrading refuses (restore a backup instead).
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
SNAPSHOT = 'dataset_version_annotations'
FROZEN_MESSAGE = "dataset version is frozen: its definition, members and annotations cannot change"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    _label_classes_per_project(sqlite)
    _assets_by_source_key()
    _annotations_by_source_key(sqlite)
    _model_versions_per_project()
    _embeddings()
    with op.batch_alter_table('import_batches') as b:
        b.add_column(sa.Column('actor', sa.String(length=255), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("0002 merged label classes copied between ontology versions; it cannot be undone. "
                              "Restore a backup of the registry made before the upgrade.")


def _label_classes_per_project(sqlite: bool) -> None:
    op.create_table(
        'ontology_version_classes',
        sa.Column('ontology_version_id', BigId, nullable=False),
        sa.Column('label_class_id', BigId, nullable=False),
        sa.Column('display_name', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['label_class_id'], ['label_classes.id'],
                                name=op.f('fk_ontology_version_classes_label_class_id_label_classes'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['ontology_version_id'], ['ontology_versions.id'],
                                name=op.f('fk_ontology_version_classes_ontology_version_id_ontology_versions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('ontology_version_id', 'label_class_id', name=op.f('pk_ontology_version_classes')),
    )
    with op.batch_alter_table('ontology_version_classes') as b:
        b.create_index('ix_ontology_version_classes_label_class_id', ['label_class_id'], unique=False)
    with op.batch_alter_table('label_classes') as b:
        b.add_column(sa.Column('project_id', BigId, nullable=True))
    op.execute("UPDATE label_classes SET project_id = "
               "(SELECT o.project_id FROM ontology_versions o WHERE o.id = label_classes.ontology_version_id)")
    keep = "(SELECT project_id, key, MIN(id) AS id FROM label_classes GROUP BY project_id, key)"
    op.execute("INSERT INTO ontology_version_classes (ontology_version_id, label_class_id, display_name) "
               f"SELECT lc.ontology_version_id, k.id, lc.display_name FROM label_classes lc JOIN {keep} k "
               "ON k.project_id = lc.project_id AND k.key = lc.key")
    op.execute("CREATE TABLE _dsgen_class_map (old_id BIGINT PRIMARY KEY, new_id BIGINT NOT NULL)")
    op.execute(f"INSERT INTO _dsgen_class_map (old_id, new_id) SELECT lc.id, k.id FROM label_classes lc JOIN {keep} k "
               "ON k.project_id = lc.project_id AND k.key = lc.key WHERE lc.id <> k.id")
    remap = ("UPDATE {t} SET label_class_id = (SELECT m.new_id FROM _dsgen_class_map m WHERE m.old_id = {t}.label_class_id) "
             "WHERE label_class_id IN (SELECT old_id FROM _dsgen_class_map)")
    op.execute(remap.format(t='annotations'))
    op.execute(remap.format(t='tracks'))
    with _frozen_snapshot_writable(sqlite):
        op.execute(remap.format(t=SNAPSHOT))
    op.execute("DELETE FROM label_classes WHERE id IN (SELECT old_id FROM _dsgen_class_map)")
    op.execute("DROP TABLE _dsgen_class_map")
    with op.batch_alter_table('label_classes') as b:
        b.drop_constraint('uq_label_classes_ontology_version_id_key', type_='unique')
        b.drop_index('ix_label_classes_ontology_version_id')
        if not sqlite:  # SQLite's batch mode rebuilds the table without the column's foreign key
            b.drop_constraint('fk_label_classes_ontology_version_id_ontology_versions', type_='foreignkey')
        b.drop_column('ontology_version_id')
        b.alter_column('project_id', existing_type=BigId, nullable=False)
        b.create_foreign_key(op.f('fk_label_classes_project_id_projects'), 'projects', ['project_id'], ['id'],
                             ondelete='CASCADE')
        b.create_unique_constraint(op.f('uq_label_classes_project_id_key'), ['project_id', 'key'])
        b.create_index(op.f('ix_label_classes_project_id'), ['project_id'], unique=False)


def _assets_by_source_key() -> None:
    with op.batch_alter_table('assets') as b:
        b.add_column(sa.Column('source_key', sa.Text(), nullable=True))
    op.execute("UPDATE assets SET source_key = file_name")
    # Results files with --create-missing made placeholder images named after their COCO id.
    op.execute("UPDATE assets SET source_key = 'coco-image:' || file_name "
               "WHERE status = 'referenced' AND external_id IS NOT NULL AND file_name = CAST(external_id AS TEXT)")
    op.execute("UPDATE assets SET source_key = source_key || '#' || CAST(id AS TEXT) WHERE id NOT IN "
               "(SELECT MIN(id) FROM assets GROUP BY project_id, source_key)")
    with op.batch_alter_table('assets') as b:
        b.alter_column('source_key', existing_type=sa.Text(), nullable=False)
        b.drop_constraint('uq_assets_project_id_sha256', type_='unique')
        b.create_unique_constraint(op.f('uq_assets_project_id_source_key'), ['project_id', 'source_key'])
        b.create_index('ix_assets_project_sha256', ['project_id', 'sha256'], unique=False)


def _annotations_by_source_key(sqlite: bool) -> None:
    for table in ('annotations', SNAPSHOT):
        with op.batch_alter_table(table) as b:
            b.add_column(sa.Column('source_key', sa.Text(), nullable=True))
    op.execute("UPDATE annotations SET source_key = 'coco:' || CAST(external_id AS TEXT) WHERE external_id IS NOT NULL "
               "AND id IN (SELECT MIN(id) FROM annotations WHERE external_id IS NOT NULL GROUP BY asset_id, external_id)")
    with _frozen_snapshot_writable(sqlite):
        op.execute(f"UPDATE {SNAPSHOT} SET source_key = (SELECT a.source_key FROM annotations a "
                   f"WHERE a.id = {SNAPSHOT}.annotation_id)")
    # The identity index leads with asset_id, so it replaces the plain index on asset_id.
    op.create_index('uq_annotations_asset_source_key', 'annotations', ['asset_id', 'source_key'], unique=True)
    op.drop_index('ix_annotations_asset_id', table_name='annotations')


def _model_versions_per_project() -> None:
    with op.batch_alter_table('model_versions') as b:
        b.add_column(sa.Column('project_id', BigId, nullable=True))
    op.execute("UPDATE model_versions SET project_id = (SELECT m.project_id FROM models m WHERE m.id = model_versions.model_id)")
    with op.batch_alter_table('model_versions') as b:
        b.alter_column('project_id', existing_type=BigId, nullable=False)
        b.drop_constraint('uq_model_versions_human_id', type_='unique')
        b.create_unique_constraint(op.f('uq_model_versions_project_id_human_id'), ['project_id', 'human_id'])
        b.create_foreign_key(op.f('fk_model_versions_project_id_projects'), 'projects', ['project_id'], ['id'],
                             ondelete='CASCADE')


def _embeddings() -> None:
    with op.batch_alter_table('embedding_versions') as b:
        b.add_column(sa.Column('project_id', BigId, nullable=True))
        b.add_column(sa.Column('level', sa.String(length=10), nullable=False, server_default='object'))
        b.add_column(sa.Column('is_active', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('embedding_versions') as b:
        b.alter_column('level', existing_type=sa.String(length=10), server_default=None)
        b.alter_column('is_active', existing_type=sa.Boolean(), server_default=None)
        b.create_foreign_key(op.f('fk_embedding_versions_project_id_projects'), 'projects', ['project_id'], ['id'],
                             ondelete='CASCADE')
        b.create_index(op.f('ix_embedding_versions_project_id'), ['project_id'], unique=False)
        b.create_check_constraint(op.f('ck_embedding_versions_level'), "level IN ('object','image')")
    with op.batch_alter_table('embedding_outbox') as b:
        b.drop_constraint('fk_embedding_outbox_annotation_id_annotations', type_='foreignkey')
        b.alter_column('annotation_id', existing_type=BigId, nullable=True)
        b.add_column(sa.Column('asset_id', BigId, nullable=True))
        b.create_index(op.f('ix_embedding_outbox_annotation_id'), ['annotation_id'], unique=False)
        b.create_check_constraint(op.f('ck_embedding_outbox_target'), "annotation_id IS NOT NULL OR asset_id IS NOT NULL")


class _frozen_snapshot_writable:
    """The frozen-version triggers refuse every write to a snapshot; a migration that rewrites
    references (not content) lifts them for its own statements only."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite

    def __enter__(self) -> None:
        if self.sqlite:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{SNAPSHOT}_frozen_update")
        else:
            op.execute(f"ALTER TABLE {SNAPSHOT} DISABLE TRIGGER trg_{SNAPSHOT}_frozen")

    def __exit__(self, *exc: object) -> None:
        if self.sqlite:  # as 0001 made it
            op.execute(f"CREATE TRIGGER trg_{SNAPSHOT}_frozen_update BEFORE UPDATE ON {SNAPSHOT} "
                       f"WHEN (SELECT is_frozen FROM dataset_versions WHERE id = OLD.dataset_version_id) "
                       f"BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END")
        else:
            op.execute(f"ALTER TABLE {SNAPSHOT} ENABLE TRIGGER trg_{SNAPSHOT}_frozen")
