"""Bring a database to the newest schema with Alembic (on start and by `init-db`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATE_LOCK = 0x4C494D54


def alembic_config() -> Config:
    """Return the Alembic configuration of this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_DIR))
    return cfg


def head_revision() -> str:
    """Return the newest migration id."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """Return the migration id the database is at (None when empty)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade the database to head; several processes starting at once take turns."""
    if current_revision(engine) == head_revision():
        return
    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATE_LOCK})")
        # On SQLite the transaction began with BEGIN IMMEDIATE: other starters wait for us.
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
