"""embedding versions say what made their vectors; tracks are namespaced by their source

Revision ID: 0005
Revises: 0004

- embedding_versions: unique per (name, level), so one encoder's object- and image-level versions
  share a name; encoder kind, the model version it came from (lineage), weights file and
  its sha256, preprocessing, crop policy and the fingerprint the Chroma collection carries.
- embedding_outbox: ``next_attempt_at`` (retry backoff) and an index the drain reads in order.
- near_duplicates: near-duplicate image groups found by an image-level embedding version.
- tracks: ``scope`` (the source whose numbering the track id is), ``origin`` (human | model),
  ``status`` (proposed | accepted | rejected) and ``score``; unique per (project, scope, id).
  Tracks imported before keep the empty scope, as they were.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSONType = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('embedding_versions') as b:
        b.add_column(sa.Column('encoder', sa.String(length=20), nullable=False, server_default='model'))
        b.add_column(sa.Column('model_version_id', BigId, nullable=True))
        b.add_column(sa.Column('weights_uri', sa.Text(), nullable=True))
        b.add_column(sa.Column('artifact_sha256', sa.String(length=64), nullable=True))
        b.add_column(sa.Column('preprocessing', JSONType, nullable=True))
        b.add_column(sa.Column('crop_policy', sa.String(length=100), nullable=True))
        b.add_column(sa.Column('fingerprint', sa.String(length=64), nullable=True))
        b.add_column(sa.Column('created_by', sa.String(length=255), nullable=True))
        b.create_foreign_key(op.f('fk_embedding_versions_model_version_id_model_versions'), 'model_versions',
                             ['model_version_id'], ['id'], ondelete='RESTRICT')
        b.create_index(op.f('ix_embedding_versions_model_version_id'), ['model_version_id'], unique=False)
        b.create_check_constraint(op.f('ck_embedding_versions_encoder'),
                                  "encoder IN ('model','timm','open_clip','onnx')")
        b.drop_constraint('uq_embedding_versions_name', type_='unique')
        b.create_unique_constraint(op.f('uq_embedding_versions_name_level'), ['name', 'level'])
    with op.batch_alter_table('embedding_outbox') as b:
        b.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        b.create_index('ix_embedding_outbox_drain', ['embedding_version_id', 'status', 'id'], unique=False)
    op.create_table(
        'near_duplicates',
        sa.Column('embedding_version_id', BigId, nullable=False),
        sa.Column('asset_id', BigId, nullable=False),
        sa.Column('project_id', BigId, nullable=False),
        sa.Column('group_id', BigId, nullable=False),
        sa.Column('distance', sa.Float(), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_near_duplicates_asset_id_assets'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['embedding_version_id'], ['embedding_versions.id'],
                                name=op.f('fk_near_duplicates_embedding_version_id_embedding_versions'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_near_duplicates_project_id_projects'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('embedding_version_id', 'asset_id', name=op.f('pk_near_duplicates')),
    )
    op.create_index('ix_near_duplicates_project_id_group_id', 'near_duplicates', ['project_id', 'group_id'])
    if op.get_bind().dialect.name == 'postgresql':  # as 0003 gave every registry table
        op.execute("CREATE TRIGGER trg_near_duplicates_no_truncate BEFORE TRUNCATE ON near_duplicates "
                   "FOR EACH STATEMENT EXECUTE FUNCTION dsgen_refuse_truncate()")
    with op.batch_alter_table('tracks') as b:
        b.add_column(sa.Column('scope', sa.Text(), nullable=False, server_default=''))
        b.add_column(sa.Column('origin', sa.String(length=10), nullable=False, server_default='human'))
        b.add_column(sa.Column('status', sa.String(length=10), nullable=False, server_default='accepted'))
        b.add_column(sa.Column('score', sa.Float(), nullable=True))
        b.drop_constraint('uq_tracks_project_id_external_id', type_='unique')
        b.create_unique_constraint(op.f('uq_tracks_project_id_scope_external_id'), ['project_id', 'scope', 'external_id'])
        b.create_check_constraint(op.f('ck_tracks_origin'), "origin IN ('human','model')")
        b.create_check_constraint(op.f('ck_tracks_status'), "status IN ('proposed','accepted','rejected')")


def downgrade() -> None:
    with op.batch_alter_table('tracks') as b:
        b.drop_constraint(op.f('ck_tracks_status'), type_='check')
        b.drop_constraint(op.f('ck_tracks_origin'), type_='check')
        # Fails when two scopes hold the same track id: they cannot share one namespace again.
        b.drop_constraint(op.f('uq_tracks_project_id_scope_external_id'), type_='unique')
        b.create_unique_constraint(op.f('uq_tracks_project_id_external_id'), ['project_id', 'external_id'])
        for c in ('score', 'status', 'origin', 'scope'):
            b.drop_column(c)
    op.drop_table('near_duplicates')
    with op.batch_alter_table('embedding_outbox') as b:
        b.drop_index('ix_embedding_outbox_drain')
        b.drop_column('next_attempt_at')
    with op.batch_alter_table('embedding_versions') as b:
        b.drop_constraint(op.f('uq_embedding_versions_name_level'), type_='unique')
        b.create_unique_constraint(op.f('uq_embedding_versions_name'), ['name'])
        b.drop_constraint(op.f('ck_embedding_versions_encoder'), type_='check')
        b.drop_index(op.f('ix_embedding_versions_model_version_id'))
        b.drop_constraint(op.f('fk_embedding_versions_model_version_id_model_versions'), type_='foreignkey')
        for c in ('created_by', 'fingerprint', 'crop_policy', 'preprocessing', 'artifact_sha256', 'weights_uri',
                  'model_version_id', 'encoder'):
            b.drop_column(c)
