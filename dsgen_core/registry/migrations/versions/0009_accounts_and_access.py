"""accounts and access for the REST API: admins, project roles, refresh tokens, revoked access tokens

Revision ID: 0009
Revises: 0008

- users.is_admin: every project and the accounts (the first one is made with `dsgen users add --admin`);
- project_members: a user's role in a project (viewer, editor, admin, owner);
- refresh_tokens: hashed, used once, rotated within a family; a reused one revokes its family;
- revoked_access_tokens: the jti of access tokens revoked before they expire (logout).
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TABLES = ('project_members', 'refresh_tokens', 'revoked_access_tokens')


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('is_admin', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table('project_members',
    sa.Column('project_id', BigId, nullable=False),
    sa.Column('user_id', BigId, nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('viewer','editor','admin','owner')", name=op.f('ck_project_members_role')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_members_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_project_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'user_id', name=op.f('pk_project_members'))
    )
    op.create_index(op.f('ix_project_members_user_id'), 'project_members', ['user_id'], unique=False)
    op.create_table('refresh_tokens',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('user_id', BigId, nullable=False),
    sa.Column('family', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refresh_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_tokens_token_hash'))
    )
    op.create_index(op.f('ix_refresh_tokens_family'), 'refresh_tokens', ['family'], unique=False)
    op.create_index(op.f('ix_refresh_tokens_user_id'), 'refresh_tokens', ['user_id'], unique=False)
    op.create_table('revoked_access_tokens',
    sa.Column('jti', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_revoked_access_tokens'))
    )
    op.create_index(op.f('ix_revoked_access_tokens_expires_at'), 'revoked_access_tokens', ['expires_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':  # as 0003 gave every registry table
        for table in TABLES:
            op.execute(f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION dsgen_refuse_truncate()")


def downgrade() -> None:
    op.drop_table('revoked_access_tokens')
    op.drop_table('refresh_tokens')
    op.drop_table('project_members')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('is_admin')
