"""frozen versions hold copies of what their exports read; TRUNCATE is refused

Revision ID: 0003
Revises: 0002

- dataset_version_assets: the member image's source key, file name, storage URI, sha256, size,
  source id, extra fields and import batch, copied when the version froze (exports used to read
  the live ``assets`` row, which nothing protects).
- dataset_version_classes: the version's classes as they were when it froze (key, the name in
  its ontology, supercategory, skeleton, source id, extra fields), under the frozen-version triggers.
- dataset_versions.hash_version: what the content hash covers; existing versions keep their
  hash, computed the old way (1); new freezes hash the copies too (2).
- PostgreSQL: a statement trigger on every table refuses TRUNCATE (it fires no row trigger, and
  ``TRUNCATE dataset_versions CASCADE`` also emptied the live annotations).

Existing frozen versions are filled from the live rows as they are now, under the triggers' lift
for this migration only.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSONType = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql')
FROZEN_MESSAGE = "dataset version is frozen: its definition, members and annotations cannot change"
TRUNCATE_MESSAGE = "TRUNCATE is refused on registry tables: a cascade would reach frozen versions or live data"
MEMBER_COLUMNS = ('source_key', 'file_name', 'storage_uri', 'sha256', 'width', 'height', 'external_id', 'extra',
                  'import_batch_id')
CLASSES = 'dataset_version_classes'


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == 'sqlite'
    with op.batch_alter_table('dataset_versions') as b:
        b.add_column(sa.Column('hash_version', sa.Integer(), nullable=False, server_default='1'))
    with op.batch_alter_table('dataset_version_assets') as b:
        for name, type_ in (('source_key', sa.Text()), ('file_name', sa.Text()), ('storage_uri', sa.Text()),
                            ('sha256', sa.String(length=64)), ('width', sa.Integer()), ('height', sa.Integer()),
                            ('external_id', sa.BigInteger()), ('extra', JSONType), ('import_batch_id', BigId)):
            b.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        CLASSES,
        sa.Column('dataset_version_id', BigId, nullable=False),
        sa.Column('label_class_id', BigId, nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('display_name', sa.String(length=255), nullable=False),
        sa.Column('supercategory', sa.String(length=255), nullable=True),
        sa.Column('keypoint_spec', JSONType, nullable=True),
        sa.Column('external_id', sa.Integer(), nullable=True),
        sa.Column('extra', JSONType, nullable=True),
        sa.Column('in_ontology', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['dataset_version_id'], ['dataset_versions.id'],
                                name=op.f('fk_dataset_version_classes_dataset_version_id_dataset_versions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('dataset_version_id', 'label_class_id', name=op.f('pk_dataset_version_classes')),
    )

    # Fill the copies of versions frozen before now, with the member trigger lifted for this statement.
    members = 'dataset_version_assets'
    if sqlite:
        op.execute(f"DROP TRIGGER trg_{members}_frozen_update")
    else:
        op.execute(f"ALTER TABLE {members} DISABLE TRIGGER trg_{members}_frozen")
    cols = ', '.join(MEMBER_COLUMNS)
    op.execute(f"UPDATE {members} SET ({cols}) = (SELECT {', '.join('a.' + c for c in MEMBER_COLUMNS)} FROM assets a "
               f"WHERE a.id = {members}.asset_id)")
    if sqlite:  # as 0001 made it
        op.execute(f"CREATE TRIGGER trg_{members}_frozen_update BEFORE UPDATE ON {members} "
                   f"WHEN (SELECT is_frozen FROM dataset_versions WHERE id = OLD.dataset_version_id) "
                   f"BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END")
    else:
        op.execute(f"ALTER TABLE {members} ENABLE TRIGGER trg_{members}_frozen")
    op.execute(
        f"INSERT INTO {CLASSES} (dataset_version_id, label_class_id, key, display_name, supercategory, keypoint_spec, "
        "external_id, extra, in_ontology) "
        "SELECT v.id, lc.id, lc.key, COALESCE(oc.display_name, lc.display_name), lc.supercategory, lc.keypoint_spec, "
        "lc.external_id, lc.extra, oc.label_class_id IS NOT NULL FROM dataset_versions v "
        "JOIN label_classes lc ON lc.project_id = v.project_id "
        "LEFT JOIN ontology_version_classes oc ON oc.label_class_id = lc.id AND oc.ontology_version_id = v.ontology_version_id "
        "WHERE v.is_frozen AND (oc.label_class_id IS NOT NULL OR lc.id IN "
        "(SELECT s.label_class_id FROM dataset_version_annotations s WHERE s.dataset_version_id = v.id))"
    )

    if sqlite:
        for when, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD")):
            op.execute(f"CREATE TRIGGER trg_{CLASSES}_frozen_{when.lower()} BEFORE {when} ON {CLASSES} "
                       f"WHEN (SELECT is_frozen FROM dataset_versions WHERE id = {row}.dataset_version_id) "
                       f"BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END")
        return
    op.execute(f"CREATE TRIGGER trg_{CLASSES}_frozen BEFORE INSERT OR UPDATE OR DELETE ON {CLASSES} "
               "FOR EACH ROW EXECUTE FUNCTION dsgen_refuse_frozen()")
    op.execute(f"""
        CREATE FUNCTION dsgen_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING MESSAGE = '{TRUNCATE_MESSAGE} (' || TG_TABLE_NAME || ')', ERRCODE = 'P0001';
        END $$""")
    for table in sorted(set(sa.inspect(bind).get_table_names()) - {'alembic_version'}):
        op.execute(f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
                   "EXECUTE FUNCTION dsgen_refuse_truncate()")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        for table in sorted(set(sa.inspect(bind).get_table_names()) - {'alembic_version'}):
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS dsgen_refuse_truncate()")
    op.drop_table(CLASSES)  # its triggers go with it
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch rebuild would trip over the triggers.
    for name in MEMBER_COLUMNS:
        op.drop_column('dataset_version_assets', name)
    op.drop_column('dataset_versions', 'hash_version')
