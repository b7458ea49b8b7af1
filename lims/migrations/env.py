"""Alembic environment: migrate the connection the app hands over (or the URL in the ini)."""

from alembic import context
from sqlalchemy import create_engine

import lims.manufacturing.models  # noqa: F401 - its tables join the metadata
import lims.printing.models  # noqa: F401 - its tables belong to the metadata too
import lims.therapy.models  # noqa: F401 - the cell therapy tables (shipments among them)
from lims.models import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    """Run migrations on the given connection inside one transaction."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            context.configure(
                connection=conn, target_metadata=target_metadata, render_as_batch=True
            )
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `flask --app app init-db`")
run_migrations_online()
