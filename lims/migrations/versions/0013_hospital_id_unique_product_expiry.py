"""a hospital id names one patient per organisation (whatever its case); a released cell
product's expiry date

The API refuses a second registration of a hospital id, but two registrations at the same
moment could both pass that check: the index makes the later one a 409. The expiry date QA
gives at an episode's release goes on the final product's label.

Revision ID: 0013
Revises: 0012
"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

INDEX = "uq_therapy_patient_hospital_id"


def upgrade() -> None:
    clashes = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT min(hospital_id) FROM therapy_patient GROUP BY org_id, lower(hospital_id)"
                " HAVING count(*) > 1 ORDER BY lower(hospital_id)"
            )
        )
        .scalars()
        .all()
    )
    if clashes:
        from lims import StartupError

        # Merging two registrations of one person splits or joins chains of identity: QA's call.
        raise StartupError(
            "cannot upgrade the database: these hospital ids are registered more than once in "
            f"one organisation ({', '.join(clashes)}); QA must decide which registration (COI) "
            "each person keeps and correct the database (nothing was changed), then start again"
        )
    op.create_index(
        INDEX, "therapy_patient", ["org_id", sa.text("lower(hospital_id)")], unique=True
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index")
        with op.batch_alter_table("therapy_episode") as batch:
            batch.add_column(sa.Column("expires_on", sa.Date(), nullable=True))


def downgrade() -> None:
    # The batch copy reflects the patient table, whose case-blind index SQLite cannot describe.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*expression-based index")
        with op.batch_alter_table("therapy_episode") as batch:
            batch.drop_column("expires_on")
    op.drop_index(INDEX, table_name="therapy_patient")
