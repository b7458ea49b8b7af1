"""Cleanroom rental: room status, bookings, line clearance checklists and records, EM points
and results

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime
_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "room_booking",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", _STR(length=32), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", _TIME(), nullable=False),
        sa.Column("ends_at", _TIME(), nullable=False),
        sa.Column("changeover_minutes", sa.Integer(), nullable=False),
        sa.Column("state", _STR(length=16), nullable=False),
        sa.Column("purpose", _STR(length=200), nullable=True),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", _TIME(), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", _TIME(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["location.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["requested_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["decided_by_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index("ix_room_booking_room_starts", "room_booking", ["room_id", "starts_at"])
    op.create_index("ix_room_booking_org_id", "room_booking", ["org_id"])
    op.create_table(
        "room_state",
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("status", _STR(length=16), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["location.id"]),
        sa.ForeignKeyConstraint(["booking_id"], ["room_booking.id"]),
        sa.PrimaryKeyConstraint("room_id"),
    )
    op.create_table(
        "room_checklist_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", _STR(length=300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["location.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_room_checklist_item_room_id", "room_checklist_item", ["room_id"])
    op.create_table(
        "line_clearance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("checklist", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("state", _STR(length=16), nullable=False),
        sa.Column("first_by_id", sa.Integer(), nullable=False),
        sa.Column("first_signature_id", sa.Integer(), nullable=False),
        sa.Column("second_by_id", sa.Integer(), nullable=True),
        sa.Column("second_signature_id", sa.Integer(), nullable=True),
        sa.Column("started_at", _TIME(), nullable=False),
        sa.Column("completed_at", _TIME(), nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["location.id"]),
        sa.ForeignKeyConstraint(["first_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["second_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["first_signature_id"], ["signature.id"]),
        sa.ForeignKeyConstraint(["second_signature_id"], ["signature.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_line_clearance_room_id", "line_clearance", ["room_id"])
    op.create_table(
        "em_point",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("code", _STR(length=64), nullable=False),
        sa.Column("name", _STR(length=200), nullable=False),
        sa.Column("kind", _STR(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["location.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_em_point_room_id", "em_point", ["room_id"])
    op.create_table(
        "em_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("point_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("taken_at", _TIME(), nullable=False),
        sa.Column("occupancy", _STR(length=16), nullable=False),
        sa.Column("measure", _STR(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("grade", _STR(length=8), nullable=False),
        sa.Column("alert_limit", sa.Float(), nullable=True),
        sa.Column("action_limit", sa.Float(), nullable=True),
        sa.Column("level", _STR(length=8), nullable=False),
        sa.Column("deviation_id", sa.Integer(), nullable=True),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["point_id"], ["em_point.id"]),
        sa.ForeignKeyConstraint(["room_id"], ["location.id"]),
        sa.ForeignKeyConstraint(["deviation_id"], ["deviation.id"]),
        sa.ForeignKeyConstraint(["recorded_by_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_em_result_point_taken", "em_result", ["point_id", "taken_at"])
    op.create_index("ix_em_result_room_id", "em_result", ["room_id"])


def downgrade() -> None:
    for table in (
        "em_result",
        "em_point",
        "line_clearance",
        "room_checklist_item",
        "room_state",
        "room_booking",
    ):
        op.drop_table(table)
