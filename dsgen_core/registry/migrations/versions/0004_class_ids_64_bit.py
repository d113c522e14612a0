"""class source ids are 64-bit, as every other source id

Revision ID: 0004
Revises: 0003

``label_classes.external_id`` and ``dataset_version_classes.external_id`` (the COCO category id a
class came with) were 32-bit on PostgreSQL: a category id past 2^31 failed the whole import as a
database error, where image and annotation ids of any 64-bit value are kept. SQLite's INTEGER is
64-bit already; nothing changes there. Widening rewrites no value, so content hashes are unchanged.
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLES = ('label_classes', 'dataset_version_classes')


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN external_id TYPE BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            # A value past 32 bits cannot go back: the cast fails and the downgrade with it.
            op.execute(f"ALTER TABLE {table} ALTER COLUMN external_id TYPE INTEGER")
