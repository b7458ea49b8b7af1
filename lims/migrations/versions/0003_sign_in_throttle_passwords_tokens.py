"""sign-in throttling, password history and ageing, token expiry and last use

Tokens made before this revision expire 90 days after the upgrade (they never expired before;
ending them at once would stop every bench agent).

Revision ID: 0003
Revises: 0002
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # Plain ADD COLUMN: a batch copy of app_user would trip SQLite's foreign keys to it.
    op.add_column(
        "app_user", sa.Column("lockouts", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "app_user",
        sa.Column("last_login_from", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )
    op.add_column(
        "app_user",
        sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("app_user", sa.Column("password_changed_at", _TIME(), nullable=True))
    op.add_column("api_token", sa.Column("expires_at", _TIME(), nullable=True))
    op.add_column("api_token", sa.Column("last_used_at", _TIME(), nullable=True))
    token = sa.table("api_token", sa.column("expires_at", _TIME()))
    op.execute(token.update().values(expires_at=datetime.now(UTC) + timedelta(days=90)))

    op.create_table(
        "password_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_password_history_user_id", "password_history", ["user_id"])
    op.create_table(
        "login_throttle",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("locked_until", _TIME(), nullable=True),
        sa.Column("last_failure_at", _TIME(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_throttle_last_failure_at", "login_throttle", ["last_failure_at"])


def downgrade() -> None:
    op.drop_index("ix_login_throttle_last_failure_at", table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_index("ix_password_history_user_id", table_name="password_history")
    op.drop_table("password_history")
    for table, column in (
        ("api_token", "last_used_at"),
        ("api_token", "expires_at"),
        ("app_user", "password_changed_at"),
        ("app_user", "must_change_password"),
        ("app_user", "last_login_from"),
        ("app_user", "lockouts"),
    ):
        op.drop_column(table, column)
