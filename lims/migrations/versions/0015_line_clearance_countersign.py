"""Line clearances insert-only: the countersignature is a row of its own

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "line_clearance_countersign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clearance_id", sa.Integer(), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=False),
        sa.Column("signature_id", sa.Integer(), nullable=False),
        sa.Column("signed_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["clearance_id"], ["line_clearance.id"]),
        sa.ForeignKeyConstraint(["by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["signature_id"], ["signature.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("clearance_id"),
    )
    # Clearances countersigned before this revision keep their second signature.
    op.execute(
        "INSERT INTO line_clearance_countersign (clearance_id, by_id, signature_id, signed_at) "
        "SELECT id, second_by_id, second_signature_id, completed_at FROM line_clearance "
        "WHERE state = 'complete'"
    )
    with op.batch_alter_table("line_clearance", schema=None) as batch_op:
        batch_op.drop_column("completed_at")
        batch_op.drop_column("second_signature_id")
        batch_op.drop_column("second_by_id")
        batch_op.drop_column("state")


def downgrade() -> None:
    with op.batch_alter_table("line_clearance", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(16), nullable=False, server_default="signed_once")
        )
        batch_op.add_column(sa.Column("second_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("second_signature_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("completed_at", _TIME(), nullable=True))
    op.execute(
        "UPDATE line_clearance SET state = 'complete', "
        "second_by_id = (SELECT by_id FROM line_clearance_countersign c "
        "WHERE c.clearance_id = line_clearance.id), "
        "second_signature_id = (SELECT signature_id FROM line_clearance_countersign c "
        "WHERE c.clearance_id = line_clearance.id), "
        "completed_at = (SELECT signed_at FROM line_clearance_countersign c "
        "WHERE c.clearance_id = line_clearance.id) "
        "WHERE id IN (SELECT clearance_id FROM line_clearance_countersign)"
    )
    op.drop_table("line_clearance_countersign")
