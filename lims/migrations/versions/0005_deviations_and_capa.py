"""deviations, the records they concern, and their CAPA actions

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime
_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "deviation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", _STR(length=32), nullable=False),
        sa.Column("title", _STR(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("severity", _STR(length=16), nullable=False),
        sa.Column("category", _STR(length=64), nullable=True),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("state", _STR(length=16), nullable=False),
        sa.Column("source", _STR(length=200), nullable=True),
        sa.Column("references_id", sa.Integer(), nullable=True),
        sa.Column("raised_by_id", sa.Integer(), nullable=False),
        sa.Column("raised_at", _TIME(), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("closed_at", _TIME(), nullable=True),
        sa.Column("signature_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["closed_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["raised_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["references_id"], ["deviation.id"]),
        sa.ForeignKeyConstraint(["signature_id"], ["signature.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index("ix_deviation_org_id", "deviation", ["org_id"])
    op.create_index("ix_deviation_state", "deviation", ["state"])
    op.create_table(
        "capa_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deviation_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("done_by_id", sa.Integer(), nullable=True),
        sa.Column("done_at", _TIME(), nullable=True),
        sa.Column("effectiveness_check", sa.Text(), nullable=True),
        sa.Column("carried_to_id", sa.Integer(), nullable=True),
        sa.Column("carried_from_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["carried_from_id"], ["capa_action.id"]),
        sa.ForeignKeyConstraint(["carried_to_id"], ["capa_action.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["deviation_id"], ["deviation.id"]),
        sa.ForeignKeyConstraint(["done_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["owner_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_capa_action_deviation_id", "capa_action", ["deviation_id"])
    op.create_table(
        "deviation_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deviation_id", sa.Integer(), nullable=False),
        sa.Column("kind", _STR(length=16), nullable=False),
        sa.Column("ref", _STR(length=64), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=True),
        sa.Column("sample_id", sa.Integer(), nullable=True),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("print_job_id", sa.Integer(), nullable=True),
        sa.Column("added_by_id", sa.Integer(), nullable=False),
        sa.Column("added_at", _TIME(), nullable=False),
        sa.Column("removed_by_id", sa.Integer(), nullable=True),
        sa.Column("removed_at", _TIME(), nullable=True),
        sa.ForeignKeyConstraint(["added_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["deviation_id"], ["deviation.id"]),
        sa.ForeignKeyConstraint(["location_id"], ["location.id"]),
        sa.ForeignKeyConstraint(["lot_id"], ["vector_lot.id"]),
        sa.ForeignKeyConstraint(["print_job_id"], ["print_job.id"]),
        sa.ForeignKeyConstraint(["removed_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["sample_id"], ["sample.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deviation_link_deviation_id", "deviation_link", ["deviation_id"])
    op.create_index("ix_deviation_link_lot_id", "deviation_link", ["lot_id"])
    op.create_index("ix_deviation_link_sample_id", "deviation_link", ["sample_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_deviation_link_sample_id", "deviation_link"),
        ("ix_deviation_link_lot_id", "deviation_link"),
        ("ix_deviation_link_deviation_id", "deviation_link"),
    ):
        op.drop_index(index, table_name=table)
    op.drop_table("deviation_link")
    op.drop_index("ix_capa_action_deviation_id", table_name="capa_action")
    op.drop_table("capa_action")
    op.drop_index("ix_deviation_state", table_name="deviation")
    op.drop_index("ix_deviation_org_id", table_name="deviation")
    op.drop_table("deviation")
