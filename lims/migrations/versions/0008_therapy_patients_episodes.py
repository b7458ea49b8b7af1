"""Cell therapy: product code catalogue (ISBT 128), patients/donors, treatment episodes,
pooled derivatives (several parents)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "therapy_product_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("allogeneic", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "therapy_patient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("coi", sa.String(length=64), nullable=False),
        sa.Column("coi_scheme", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("coi"),
    )
    op.create_index("ix_therapy_patient_org_id", "therapy_patient", ["org_id"])
    op.create_table(
        "therapy_episode",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("coi", sa.String(length=64), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("product_code_id", sa.Integer(), nullable=True),
        sa.Column("din", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=True),
        sa.Column("held_by", sa.String(length=32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["therapy_patient.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"]),
        sa.ForeignKeyConstraint(["product_code_id"], ["therapy_product_code.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
        sa.UniqueConstraint("din"),
    )
    op.create_index("ix_therapy_episode_patient_id", "therapy_episode", ["patient_id"])
    op.create_index("ix_therapy_episode_coi", "therapy_episode", ["coi"])
    op.create_index("ix_therapy_episode_org_id", "therapy_episode", ["org_id"])
    op.create_index("ix_therapy_episode_state", "therapy_episode", ["state"])
    op.create_table(
        "therapy_pool_parent",
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["pool_id"], ["sample.id"]),
        sa.ForeignKeyConstraint(["parent_id"], ["sample.id"]),
        sa.PrimaryKeyConstraint("pool_id", "parent_id"),
    )
    op.create_index("ix_therapy_pool_parent_parent_id", "therapy_pool_parent", ["parent_id"])


def downgrade() -> None:
    op.drop_table("therapy_pool_parent")
    op.drop_table("therapy_episode")
    op.drop_table("therapy_patient")
    op.drop_table("therapy_product_code")
