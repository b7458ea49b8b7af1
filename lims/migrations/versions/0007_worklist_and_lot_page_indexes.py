"""indexes for the home worklists, the lists and the lot page at a centre's size (bench/centre.py)

Revision ID: 0007
Revises: 0006

Measured at 10,000 lots, 100,000 samples and 1,000,000 events: without them QA's and a
technician's home read whole tables (results awaiting review, lots by state, open OOS, tubes in
someone's custody), a client's home counts its samples by state from the table, the samples and
lots lists sort the whole table for their newest page, and a lot page scans signatures for the
lot's own.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# name, table, columns, partial condition (both engines understand these WHERE clauses)
INDEXES = (
    ("ix_sample_custodian", "sample", ["custodian_id", "state"], "custodian_id IS NOT NULL"),
    ("ix_sample_created", "sample", ["created_at", "id"], None),
    ("ix_sample_org_created", "sample", ["org_id", "created_at", "id"], None),
    ("ix_sample_org_state", "sample", ["org_id", "state"], None),
    ("ix_sample_state_created", "sample", ["state", "created_at", "id"], None),
    ("ix_vector_lot_created", "vector_lot", ["created_at", "id"], None),
    (
        "ix_qc_result_unreviewed",
        "qc_result",
        ["recorded_at", "id", "recorded_by_id"],
        "reviewed_by_id IS NULL",
    ),
    ("ix_qc_result_supersedes", "qc_result", ["supersedes_id"], "supersedes_id IS NOT NULL"),
    ("ix_vector_lot_state", "vector_lot", ["state", "id"], None),
    ("ix_oos_record_phase", "oos_record", ["phase", "id"], None),
    ("ix_signature_record", "signature", ["record_type", "record_id", "id"], None),
)


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        cond = (
            {}
            if where is None
            else {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}
        )
        op.create_index(name, table, columns, **cond)


def downgrade() -> None:
    for name, table, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
