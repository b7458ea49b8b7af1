"""specifications as master data, QC results judged against them, reviews, OOS records

A QC result may now belong to a cell product (a sample) instead of a lot; it points at the
specification version and limit it was judged against. Results recorded before this revision
keep their typed spec text and carry no specification.

Revision ID: 0004
Revises: 0003
"""

import warnings

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def _str(n: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n)


def upgrade() -> None:
    op.create_table(
        "specification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", _str(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("product", _str(64), nullable=False),
        sa.Column("stage", _str(16), nullable=False),
        sa.Column("title", _str(200), nullable=False),
        sa.Column("state", _str(16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("approved_by_id", sa.Integer(), nullable=True),
        sa.Column("approved_at", _TIME(), nullable=True),
        sa.Column("ended_at", _TIME(), nullable=True),
        sa.Column("signature_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["approved_by_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code", "version", name="uq_specification_code_version"),
    )
    op.create_index("ix_specification_product", "specification", ["product", "stage", "state"])
    op.create_table(
        "spec_limit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("spec_id", sa.Integer(), nullable=False),
        sa.Column("test", _str(32), nullable=False),
        sa.Column("method", _str(100), nullable=True),
        sa.Column("unit", _str(32), nullable=True),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("lower_inclusive", sa.Boolean(), nullable=False),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("upper_inclusive", sa.Boolean(), nullable=False),
        sa.Column("alert_lower", sa.Float(), nullable=True),
        sa.Column("alert_upper", sa.Float(), nullable=True),
        sa.Column("action_lower", sa.Float(), nullable=True),
        sa.Column("action_upper", sa.Float(), nullable=True),
        sa.Column("text", _str(200), nullable=True),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["spec_id"], ["specification.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_spec_limit_spec_id", "spec_limit", ["spec_id"])
    # SQLite cannot make lot_id nullable in place: the batch copies the table (only qc_result
    # itself points at qc_result, so the copy keeps every reference). Reflecting it reads
    # vector_lot too, whose index on lower(lot_number) SQLAlchemy cannot reflect (and need not).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index")
        _alter_qc_result()
    op.create_table(
        "oos_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=True),
        sa.Column("sample_id", sa.Integer(), nullable=True),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("test", _str(32), nullable=False),
        sa.Column("phase", _str(16), nullable=False),
        sa.Column("opened_at", _TIME(), nullable=False),
        sa.Column("closed_at", _TIME(), nullable=True),
        sa.Column("conclusion", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["result_id"], ["qc_result.id"]),
        sa.ForeignKeyConstraint(["lot_id"], ["vector_lot.id"]),
        sa.ForeignKeyConstraint(["sample_id"], ["sample.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("result_id"),
    )
    op.create_index("ix_oos_record_lot_id", "oos_record", ["lot_id"])
    op.create_index("ix_oos_record_sample_id", "oos_record", ["sample_id"])
    op.create_index("ix_oos_record_org_id", "oos_record", ["org_id"])


def _alter_qc_result() -> None:
    with op.batch_alter_table("qc_result") as batch:
        batch.alter_column("lot_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("sample_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("spec_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("limit_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("method", _str(100), nullable=True))
        batch.add_column(sa.Column("unit", _str(32), nullable=True))
        batch.add_column(sa.Column("sampled_at", _TIME(), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("flag", _str(16), nullable=True))
        batch.add_column(sa.Column("reviewed_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reviewed_at", _TIME(), nullable=True))
        batch.add_column(sa.Column("review_signature_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retest_of_oos_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_qc_result_sample", "sample", ["sample_id"], ["id"])
        batch.create_foreign_key("fk_qc_result_spec", "specification", ["spec_id"], ["id"])
        batch.create_foreign_key("fk_qc_result_limit", "spec_limit", ["limit_id"], ["id"])
        batch.create_foreign_key("fk_qc_result_reviewer", "app_user", ["reviewed_by_id"], ["id"])
        batch.create_index("ix_qc_result_sample_id", ["sample_id"])
        batch.create_index("ix_qc_result_retest_of_oos_id", ["retest_of_oos_id"])


def downgrade() -> None:
    op.drop_table("oos_record")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index")
        _unalter_qc_result()
    op.drop_table("spec_limit")
    op.drop_table("specification")


def _unalter_qc_result() -> None:
    # Before 0004 a result belonged to a lot; cell-product results recorded on a sample
    # have no place in that schema, so a downgrade drops them (and links to them).
    op.execute(
        "UPDATE qc_result SET supersedes_id = NULL WHERE supersedes_id IN "
        "(SELECT id FROM qc_result WHERE lot_id IS NULL)"
    )
    op.execute("DELETE FROM qc_result WHERE lot_id IS NULL")
    with op.batch_alter_table("qc_result") as batch:
        batch.drop_index("ix_qc_result_retest_of_oos_id")
        batch.drop_index("ix_qc_result_sample_id")
        for name in ("reviewer", "limit", "spec", "sample"):
            batch.drop_constraint(f"fk_qc_result_{name}", type_="foreignkey")
        for column in (
            "retest_of_oos_id",
            "review_signature_id",
            "reviewed_at",
            "reviewed_by_id",
            "flag",
            "reason",
            "sampled_at",
            "unit",
            "method",
            "limit_id",
            "spec_id",
            "sample_id",
        ):
            batch.drop_column(column)
        batch.alter_column("lot_id", existing_type=sa.Integer(), nullable=False)
