"""the CVAT round-trip: pushed tasks, their frames and objects

Revision ID: 0007
Revises: 0006

- cvat_tasks: each CVAT task a push made (server, task id, status, jobs, label map), under its
  export job;
- cvat_frames: a task's frame -> the registry asset it shows;
- cvat_objects: CVAT's shape or tag id -> the annotation, with both sides' fingerprints as of
  the push or the last pull, so a pull can tell added, changed, deleted and conflicting objects
  (and a track's fingerprint, so an unchanged track is not read again).
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSONType = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
TABLES = ('cvat_tasks', 'cvat_frames', 'cvat_objects')


def upgrade() -> None:
    op.create_table('cvat_tasks',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('export_job_id', BigId, nullable=False),
    sa.Column('project_id', BigId, nullable=False),
    sa.Column('server', sa.Text(), nullable=False),
    sa.Column('task_id', sa.BigInteger(), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('job_ids', JSONType, nullable=True),
    sa.Column('labels', JSONType, nullable=True),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pulled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_pull_batch_id', BigId, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('creating','uploading','annotating','pushed','failed','removed')", name=op.f('ck_cvat_tasks_status')),
    sa.ForeignKeyConstraint(['export_job_id'], ['export_jobs.id'], name=op.f('fk_cvat_tasks_export_job_id_export_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['last_pull_batch_id'], ['import_batches.id'], name=op.f('fk_cvat_tasks_last_pull_batch_id_import_batches'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_cvat_tasks_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cvat_tasks')),
    sa.UniqueConstraint('server', 'task_id', name=op.f('uq_cvat_tasks_server_task_id'))
    )
    with op.batch_alter_table('cvat_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cvat_tasks_export_job_id'), ['export_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cvat_tasks_project_id'), ['project_id'], unique=False)

    op.create_table('cvat_frames',
    sa.Column('cvat_task_id', BigId, nullable=False),
    sa.Column('frame', sa.Integer(), nullable=False),
    sa.Column('asset_id', BigId, nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['assets.id'], name=op.f('fk_cvat_frames_asset_id_assets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['cvat_task_id'], ['cvat_tasks.id'], name=op.f('fk_cvat_frames_cvat_task_id_cvat_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cvat_task_id', 'frame', name=op.f('pk_cvat_frames'))
    )
    with op.batch_alter_table('cvat_frames', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cvat_frames_asset_id'), ['asset_id'], unique=False)

    op.create_table('cvat_objects',
    sa.Column('cvat_task_id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=5), nullable=False),
    sa.Column('cvat_id', sa.BigInteger(), nullable=False),
    sa.Column('annotation_id', BigId, nullable=True),
    sa.Column('cvat_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('registry_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('members', JSONType, nullable=True),
    sa.CheckConstraint("kind IN ('shape','tag','track')", name=op.f('ck_cvat_objects_kind')),
    sa.ForeignKeyConstraint(['annotation_id'], ['annotations.id'], name=op.f('fk_cvat_objects_annotation_id_annotations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['cvat_task_id'], ['cvat_tasks.id'], name=op.f('fk_cvat_objects_cvat_task_id_cvat_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cvat_task_id', 'kind', 'cvat_id', name=op.f('pk_cvat_objects'))
    )
    with op.batch_alter_table('cvat_objects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cvat_objects_annotation_id'), ['annotation_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':  # as 0003 gave every registry table
        for table in TABLES:
            op.execute(f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION dsgen_refuse_truncate()")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
