"""Cell therapy cold chain: product temperature limits, shipments, manifests, logger readings

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("therapy_product_code", sa.Column("min_temp_c", sa.Float(), nullable=True))
    op.add_column("therapy_product_code", sa.Column("max_temp_c", sa.Float(), nullable=True))
    op.create_table(
        "therapy_shipment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("product_code_id", sa.Integer(), nullable=False),
        sa.Column("min_temp_c", sa.Float(), nullable=False),
        sa.Column("max_temp_c", sa.Float(), nullable=False),
        sa.Column("shipper", sa.String(length=200), nullable=False),
        sa.Column("logger_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=True),
        sa.Column("held_by", sa.String(length=32), nullable=True),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("excursion", sa.Boolean(), nullable=False),
        sa.Column("excursion_first", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("excursion_last", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("min_seen_c", sa.Float(), nullable=True),
        sa.Column("max_seen_c", sa.Float(), nullable=True),
        sa.Column("dispatched_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["site_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["product_code_id"], ["therapy_product_code.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index("ix_therapy_shipment_org_id", "therapy_shipment", ["org_id"])
    op.create_index("ix_therapy_shipment_site_id", "therapy_shipment", ["site_id"])
    op.create_index("ix_therapy_shipment_state", "therapy_shipment", ["state"])
    op.create_table(
        "therapy_shipment_container",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.Column("coi", sa.String(length=64), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["shipment_id"], ["therapy_shipment.id"]),
        sa.ForeignKeyConstraint(["sample_id"], ["sample.id"]),
        sa.ForeignKeyConstraint(["episode_id"], ["therapy_episode.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for col in ("shipment_id", "sample_id", "episode_id"):
        op.create_index(f"ix_therapy_shipment_container_{col}", "therapy_shipment_container", [col])
    op.create_table(
        "therapy_logger_reading",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("temp_c", sa.Float(), nullable=False),
        sa.Column("import_no", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["shipment_id"], ["therapy_shipment.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_therapy_logger_reading_shipment_id", "therapy_logger_reading", ["shipment_id"]
    )


def downgrade() -> None:
    op.drop_table("therapy_logger_reading")
    op.drop_table("therapy_shipment_container")
    op.drop_table("therapy_shipment")
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy of the table would break the episodes'
    # foreign keys to it.
    op.drop_column("therapy_product_code", "max_temp_c")
    op.drop_column("therapy_product_code", "min_temp_c")
