"""Printer status polls: when a printer's state began, and whether it answered at all

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("printer_check", schema=None) as batch_op:
        batch_op.add_column(sa.Column("since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("answered", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    # A state kept before this revision began no later than it was last heard.
    op.execute("UPDATE printer_check SET since = checked_at")
    op.execute(
        "UPDATE printer_check SET answered = false "
        "WHERE summary LIKE '%no answer to ~HS%' OR summary LIKE 'cannot open printer port%'"
    )
    with op.batch_alter_table("printer_check", schema=None) as batch_op:
        batch_op.alter_column(
            "since", existing_type=sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("printer_check", schema=None) as batch_op:
        batch_op.drop_column("answered")
        batch_op.drop_column("since")
