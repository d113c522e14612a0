"""what a pull last saw of each CVAT job: its updated_date, as CVAT wrote it

Revision ID: 0008
Revises: 0007

``dsgen cvat pull --since`` reads only the jobs CVAT changed since the push or the last pull. It
compares CVAT's own ``updated_date`` of each job with the one recorded here, so the server's clock
is the only clock involved.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('cvat_tasks') as batch:
        batch.add_column(sa.Column('jobs_seen', JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cvat_tasks') as batch:
        batch.drop_column('jobs_seen')
