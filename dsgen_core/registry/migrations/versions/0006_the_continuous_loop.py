"""the continuous loop: annotation batches, the next-version policy, promotion

Revision ID: 0006
Revises: 0005

- import_batches are the loop's annotation batches: ``operation`` (import, auto_annotate, pull,
  ...), ``source`` (human | model) and ``failures`` (runs of the batch that failed);
- change_events carry the batch that made them (``batch_id``);
- dataset_versions: ``through_batch_id``, the newest batch when it froze;
- model_versions: ``promotion``, the promotion decision and its reason;
- deployments: the production model is a deployment (target ``registry``) with its project,
  ONNX artifact, reason and actor, one active per project (partial unique index);
  ``endpoint_url`` may be empty (the registry serves it);
- project_policies: one row per project, when the loop cuts the next version.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSONType = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
PRODUCTION = sa.text("name = 'production' AND status = 'active'")

def upgrade() -> None:
    op.create_table('project_policies',
    sa.Column('project_id', BigId, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('trigger', sa.String(length=10), nullable=False),
    sa.Column('min_annotations', sa.Integer(), nullable=True),
    sa.Column('min_images', sa.Integer(), nullable=True),
    sa.Column('min_classes', sa.Integer(), nullable=True),
    sa.Column('window_hours', sa.Float(), nullable=True),
    sa.Column('query', sa.Text(), nullable=True),
    sa.Column('split_config', JSONType, nullable=True),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('train', sa.Boolean(), nullable=False),
    sa.Column('recipe', sa.String(length=100), nullable=True),
    sa.Column('tolerance', sa.Float(), nullable=False),
    sa.Column('updated_by', sa.String(length=255), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("trigger IN ('sensor','schedule')", name=op.f('ck_project_policies_trigger')),
    sa.CheckConstraint('(min_annotations IS NULL OR min_annotations > 0) AND (min_images IS NULL OR min_images > 0) AND (min_classes IS NULL OR min_classes > 0) AND (window_hours IS NULL OR window_hours > 0)', name=op.f('ck_project_policies_thresholds')),
    sa.CheckConstraint('tolerance >= 0', name=op.f('ck_project_policies_tolerance')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_policies_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_project_policies'))
    )
    if op.get_bind().dialect.name == 'postgresql':  # as 0003 gave every registry table
        op.execute("CREATE TRIGGER trg_project_policies_no_truncate BEFORE TRUNCATE ON project_policies "
                   "FOR EACH STATEMENT EXECUTE FUNCTION dsgen_refuse_truncate()")
    with op.batch_alter_table('change_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', BigId, nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_change_events_batch_id_import_batches'), 'import_batches', ['batch_id'], ['id'], ondelete='SET NULL')

    # Not a batch (table copy): the frozen-version triggers of the split tables name this table.
    op.add_column('dataset_versions', sa.Column('through_batch_id', BigId, nullable=True))

    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', BigId, nullable=True))
        batch_op.add_column(sa.Column('model_artifact_id', BigId, nullable=True))
        batch_op.add_column(sa.Column('reason', JSONType, nullable=True))
        batch_op.add_column(sa.Column('actor', sa.String(length=255), nullable=True))
        batch_op.alter_column('endpoint_url',
               existing_type=sa.VARCHAR(length=255),
               nullable=True)
        batch_op.create_index('uq_deployments_production', ['project_id'], unique=True, sqlite_where=PRODUCTION, postgresql_where=PRODUCTION)
        batch_op.create_foreign_key(batch_op.f('fk_deployments_model_artifact_id_model_artifacts'), 'model_artifacts', ['model_artifact_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_deployments_project_id_projects'), 'projects', ['project_id'], ['id'], ondelete='CASCADE')
        batch_op.drop_constraint(op.f('ck_deployments_target'), type_='check')
        batch_op.create_check_constraint(op.f('ck_deployments_target'), "target IN ('edge','cloud','registry')")

    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('operation', sa.String(length=30), server_default='import', nullable=False))
        batch_op.add_column(sa.Column('source', sa.String(length=10), server_default='human', nullable=False))
        batch_op.add_column(sa.Column('failures', JSONType, nullable=True))

    # Batches written before this revision: auto-annotations are model batches, not human imports.
    op.execute("UPDATE import_batches SET operation = 'auto_annotate', source = 'model' "
               "WHERE format = 'model/detections'")
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('promotion', JSONType, nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('promotion')

    with op.batch_alter_table('import_batches', schema=None) as batch_op:
        batch_op.drop_column('failures')
        batch_op.drop_column('source')
        batch_op.drop_column('operation')

    with op.batch_alter_table('deployments', schema=None) as batch_op:
        # Fails while a production deployment exists: delete those rows first (they name no endpoint).
        batch_op.drop_constraint(op.f('ck_deployments_target'), type_='check')
        batch_op.create_check_constraint(op.f('ck_deployments_target'), "target IN ('edge','cloud')")
        batch_op.drop_constraint(batch_op.f('fk_deployments_project_id_projects'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_deployments_model_artifact_id_model_artifacts'), type_='foreignkey')
        batch_op.drop_index('uq_deployments_production', sqlite_where=PRODUCTION, postgresql_where=PRODUCTION)
        batch_op.alter_column('endpoint_url',
               existing_type=sa.VARCHAR(length=255),
               nullable=False)
        batch_op.drop_column('actor')
        batch_op.drop_column('reason')
        batch_op.drop_column('model_artifact_id')
        batch_op.drop_column('project_id')

    op.drop_column('dataset_versions', 'through_batch_id')

    with op.batch_alter_table('change_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_change_events_batch_id_import_batches'), type_='foreignkey')
        batch_op.drop_column('batch_id')

    op.drop_table('project_policies')
