"""What a worker last heard from each printer (~HS), shown on the print queue page

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "printer_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("printer_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.ForeignKeyConstraint(["printer_id"], ["printer.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["print_job.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_printer_check_printer", "printer_check", ["printer_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_printer_check_printer", table_name="printer_check")
    op.drop_table("printer_check")
