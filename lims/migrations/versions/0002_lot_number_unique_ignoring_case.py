"""lot numbers unique without regard to case

The API already refuses AAV9-2611-001 next to aav9-2611-001 (a reader takes them for one lot),
but two creates at the same moment on PostgreSQL could both pass that check: the index makes
the loser a 409.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "uq_vector_lot_number_ci"


def upgrade() -> None:
    clashes = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT lot_number FROM vector_lot WHERE lower(lot_number) IN ("
                " SELECT lower(lot_number) FROM vector_lot"
                " GROUP BY lower(lot_number) HAVING count(*) > 1"
                ") ORDER BY lower(lot_number), lot_number"
            )
        )
        .scalars()
        .all()
    )
    if clashes:
        from lims import StartupError

        # Renaming a lot is a GMP decision (labels and records carry the number): not ours.
        raise StartupError(
            "cannot upgrade the database: these lot numbers differ only in upper/lower case "
            f"({', '.join(clashes)}); QA must decide which number each lot keeps and correct "
            "it in the database (nothing was changed), then start again"
        )
    op.create_index(INDEX, "vector_lot", [sa.text("lower(lot_number)")], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="vector_lot")
