"""usage per API key and rate-limit counters

Revision ID: 0010
Revises: 0009

- usage_records.api_key_id: the key an API request came through (requests are summed per user and per key);
- rate_counters: requests per caller and fixed window, when the rate limits are kept in the database
  (no DSGEN_REDIS_URL).
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('usage_records') as batch:
        batch.add_column(sa.Column('api_key_id', BigId, nullable=True))
        batch.create_foreign_key(op.f('fk_usage_records_api_key_id_api_keys'), 'api_keys', ['api_key_id'], ['id'],
                                 ondelete='SET NULL')
        batch.create_index(op.f('ix_usage_records_api_key_id'), ['api_key_id'], unique=False)
    op.create_table('rate_counters',
    sa.Column('bucket', sa.String(length=100), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'window_start', name=op.f('pk_rate_counters'))
    )
    op.create_index(op.f('ix_rate_counters_window_start'), 'rate_counters', ['window_start'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':  # as 0003 gave every registry table
        op.execute("CREATE TRIGGER trg_rate_counters_no_truncate BEFORE TRUNCATE ON rate_counters "
                   "FOR EACH STATEMENT EXECUTE FUNCTION dsgen_refuse_truncate()")


def downgrade() -> None:
    op.drop_table('rate_counters')
    with op.batch_alter_table('usage_records') as batch:
        batch.drop_index(op.f('ix_usage_records_api_key_id'))
        batch.drop_constraint(op.f('fk_usage_records_api_key_id_api_keys'), type_='foreignkey')
        batch.drop_column('api_key_id')
