"""Viral vector manufacturing: materials received by GS1, genealogy links, batch records

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "material_kind",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column("supplier", sa.String(length=200), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("gtin"),
    )
    op.create_table(
        "material_lot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("kind_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("supplier_lot", sa.String(length=20), nullable=False),
        sa.Column("serial", sa.String(length=20), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("gs1", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("received_by_id", sa.Integer(), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("released_by_id", sa.Integer(), nullable=True),
        sa.Column("signature_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["kind_id"], ["material_kind.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["received_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["released_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["signature_id"], ["signature.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("kind_id", "supplier_lot", "serial", name="uq_material_lot_item"),
    )
    op.create_index("ix_material_lot_kind_id", "material_lot", ["kind_id"])
    op.create_index("ix_material_lot_org_id", "material_lot", ["org_id"])
    op.create_index("ix_material_lot_expires_on", "material_lot", ["expires_on"])
    op.create_index("ix_material_lot_state", "material_lot", ["state"])
    op.create_table(
        "genealogy_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_kind", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_lot_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.Column("recorded_by_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["child_lot_id"], ["vector_lot.id"]),
        sa.ForeignKeyConstraint(["recorded_by_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    # Covering: each step of a where-used or made-from walk is answered by the index alone.
    op.create_index(
        "ix_genealogy_parent", "genealogy_link", ["parent_kind", "parent_id", "child_lot_id"]
    )
    op.create_index(
        "ix_genealogy_child", "genealogy_link", ["child_lot_id", "parent_kind", "parent_id"]
    )

    _batch_records()


def _batch_records() -> None:
    op.create_table(
        "process_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("product", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("approved_by_id", sa.Integer(), nullable=True),
        sa.Column("signature_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["approved_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["signature_id"], ["signature.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code", "version", name="uq_process_template_version"),
    )
    op.create_index("ix_process_template_code", "process_template", ["code"])
    op.create_table(
        "process_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("instructions", sa.String(length=2000), nullable=True),
        sa.Column("needs_verifier", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["template_id"], ["process_template.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_process_step_template_id", "process_step", ["template_id"])
    op.create_table(
        "process_parameter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["step_id"], ["process_step.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_process_parameter_step_id", "process_parameter", ["step_id"])
    op.create_table(
        "batch_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("started_by_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["vector_lot.id"]),
        sa.ForeignKeyConstraint(["template_id"], ["process_template.id"]),
        sa.ForeignKeyConstraint(["started_by_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lot_id"),
    )
    op.create_table(
        "batch_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("done_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("equipment", sa.String(length=64), nullable=True),
        sa.Column("room", sa.String(length=64), nullable=True),
        sa.Column("verifier_id", sa.Integer(), nullable=True),
        sa.Column("verified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("signature_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["batch_record.id"]),
        sa.ForeignKeyConstraint(["step_id"], ["process_step.id"]),
        sa.ForeignKeyConstraint(["operator_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["verifier_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["signature_id"], ["signature.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id", "step_id", name="uq_batch_step_once"),
    )
    op.create_index("ix_batch_step_record_id", "batch_step", ["record_id"])
    op.create_table(
        "batch_value",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_step_id", sa.Integer(), nullable=False),
        sa.Column("parameter_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("in_range", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["batch_step_id"], ["batch_step.id"]),
        sa.ForeignKeyConstraint(["parameter_id"], ["process_parameter.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batch_value_batch_step_id", "batch_value", ["batch_step_id"])


def downgrade() -> None:
    op.drop_index("ix_batch_value_batch_step_id", table_name="batch_value")
    op.drop_table("batch_value")
    op.drop_index("ix_batch_step_record_id", table_name="batch_step")
    op.drop_table("batch_step")
    op.drop_table("batch_record")
    op.drop_index("ix_process_parameter_step_id", table_name="process_parameter")
    op.drop_table("process_parameter")
    op.drop_index("ix_process_step_template_id", table_name="process_step")
    op.drop_table("process_step")
    op.drop_index("ix_process_template_code", table_name="process_template")
    op.drop_table("process_template")
    op.drop_index("ix_genealogy_child", table_name="genealogy_link")
    op.drop_index("ix_genealogy_parent", table_name="genealogy_link")
    op.drop_table("genealogy_link")
    for ix in ("state", "expires_on", "org_id", "kind_id"):
        op.drop_index(f"ix_material_lot_{ix}", table_name="material_lot")
    op.drop_table("material_lot")
    op.drop_table("material_kind")
