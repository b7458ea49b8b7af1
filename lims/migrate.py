"""Bring a database to the newest schema with Alembic, as the role that owns the tables.

On PostgreSQL the app may connect as a role of its own; see docs/scale-out.md (Database roles).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from lims import StartupError
from lims.db import is_sqlite, make_engine

_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATE_LOCK = 0x4C494D54

# What the app's role may do to each table; every other table of the schema gets
# APP_RIGHTS. The audit trail and e-signatures are append-only (their rows are Part 11
# records), the chain head only moves forward, and the schema version is the owner's.
# A table a later revision adds that must be append-only belongs here too.
APP_RIGHTS = ("SELECT", "INSERT", "UPDATE", "DELETE")
APP_TABLE_RIGHTS: dict[str, tuple[str, ...]] = {
    "audit_event": ("SELECT", "INSERT"),
    "audit_head": ("SELECT", "UPDATE"),
    "signature": ("SELECT", "INSERT"),
    "lot_trail_review": ("SELECT", "INSERT"),
    # Genealogy links and batch values are records: a wrong one is corrected by a new record.
    "genealogy_link": ("SELECT", "INSERT"),
    "batch_value": ("SELECT", "INSERT"),
    # QA's signed review of a batch record: a Part 11 record, written once.
    "batch_record_review": ("SELECT", "INSERT"),
    # A shipment's logger readings are what it was checked against: never edited.
    "therapy_logger_reading": ("SELECT", "INSERT"),
    # Monitoring results are records too: written once, with their deviation if any.
    "em_result": ("SELECT", "INSERT"),
    # A line clearance and its countersignature: two signed records, each written once.
    "line_clearance": ("SELECT", "INSERT"),
    "line_clearance_countersign": ("SELECT", "INSERT"),
    "alembic_version": ("SELECT",),
}


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


def migrate(
    engine: Engine, *, app_role: str | None = None, url_setting: str = "LIMS_DATABASE_URL"
) -> None:
    """Upgrade the database to head; several processes starting at once take turns.

    On PostgreSQL, app_role (if given) is then granted what the app needs, in the same
    transaction: after every upgrade, so tables a revision adds are covered. A role that may
    not change the schema gets a StartupError naming the URL to set (url_setting is the
    variable engine's URL came from).
    """
    if app_role is None and current_revision(engine) == head_revision():
        return
    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATE_LOCK})")
            # Read under the lock: another starter may have upgraded while we waited.
            at = MigrationContext.configure(conn).get_current_revision()
            if at != head_revision():
                _check_can_migrate(conn, at, url_setting)
        # On SQLite the transaction began with BEGIN IMMEDIATE: other starters wait for us.
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        if app_role is not None and conn.dialect.name == "postgresql":
            grant_app_rights(conn, app_role)


def upgrade_database(
    engine: Engine, migrate_url: str | None = None, *, grant_to: str | None = None
) -> str | None:
    """Bring engine's database to head; return the PostgreSQL role granted the app's rights.

    Without migrate_url the migration runs as engine's own role, as it always did. With it
    (LIMS_MIGRATE_DATABASE_URL, the tables' owner) the migration runs as that role and the
    role engine connects as (the app's) is granted its rights. grant_to names the role to
    grant instead (`init-db --grant`).
    """
    if not migrate_url:
        if grant_to is not None and is_sqlite(engine):
            raise StartupError("--grant is for PostgreSQL roles; SQLite has no roles")
        migrate(engine, app_role=grant_to)
        return grant_to
    if is_sqlite(engine) or make_url(migrate_url).get_backend_name() != "postgresql":
        raise StartupError(
            "LIMS_MIGRATE_DATABASE_URL is for PostgreSQL (the role that owns the tables); "
            "with SQLite set LIMS_DATABASE_URL only"
        )
    app_user, app_place = _whoami(engine)
    owner = make_engine(migrate_url)
    try:
        owner_user, owner_place = _whoami(owner)
        if owner_place != app_place:
            raise StartupError(
                f"LIMS_MIGRATE_DATABASE_URL leads to {owner_place} but LIMS_DATABASE_URL to "
                f"{app_place}: both must name the same database"
            )
        if grant_to is None and owner_user == app_user:
            raise StartupError(
                f"LIMS_DATABASE_URL and LIMS_MIGRATE_DATABASE_URL both connect as {app_user}: "
                "the app needs a role of its own that does not own the tables "
                "(see docs/scale-out.md), or leave LIMS_MIGRATE_DATABASE_URL unset"
            )
        role = grant_to or app_user
        migrate(owner, app_role=role, url_setting="LIMS_MIGRATE_DATABASE_URL")
    except SQLAlchemyError as err:
        cause = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        shown = make_url(migrate_url).render_as_string(hide_password=True)
        raise StartupError(
            f"cannot migrate with LIMS_MIGRATE_DATABASE_URL {shown}: {cause}"
        ) from err
    finally:
        owner.dispose()
    return role


def grant_app_rights(conn: Connection, role: str) -> None:
    """Grant role what the app needs on the current schema's tables, and nothing more.

    Run as the owner of the tables. Rights granted before (to role or to PUBLIC) are taken
    back first, so a role that once had more keeps only these. Raises StartupError when role
    could change the schema anyway (a superuser, an owner, CREATE on the schema).
    """
    q = conn.dialect.identifier_preparer.quote
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    problems = app_role_problems(conn, role)
    if problems:
        raise StartupError(
            f"the app's role {role} {' and '.join(problems)}: it must not be able to change "
            "the schema or the audit trail's guards (see docs/scale-out.md, Database roles)"
        )
    r, s = q(role), q(schema)
    for sql in (
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM PUBLIC, {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM PUBLIC, {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT {', '.join(APP_RIGHTS)} ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
    ):
        conn.exec_driver_sql(sql)
    present = set(
        conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).scalars()
    )
    for table, rights in APP_TABLE_RIGHTS.items():
        if table in present:
            conn.exec_driver_sql(f"REVOKE ALL ON {s}.{q(table)} FROM {r}")
            conn.exec_driver_sql(f"GRANT {', '.join(rights)} ON {s}.{q(table)} TO {r}")


def app_role_problems(conn: Connection, role: str) -> list[str]:
    """Return why role could change the schema of the current one (empty: it cannot)."""
    row = conn.exec_driver_sql(
        "SELECT r.rolsuper,"
        " EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE n.nspname = current_schema() AND pg_has_role(r.oid, c.relowner, 'USAGE')),"
        " has_schema_privilege(r.oid, current_schema(), 'CREATE')"
        " FROM pg_roles r WHERE r.rolname = %s",
        (role,),
    ).first()
    if row is None:
        return ["does not exist"]
    superuser, owns, creates = row
    if superuser:
        return ["is a superuser"]
    problems = []
    if owns:
        problems.append("owns the tables (or is a member of their owner's role)")
    if creates:
        problems.append(
            "may create tables in the schema (PUBLIC may, before PostgreSQL 15: "
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC)"
        )
    return problems


def _check_can_migrate(conn: Connection, at: str | None, url_setting: str) -> None:
    """Refuse, in one line, to upgrade as a role that may not change the schema."""
    user, allowed = conn.exec_driver_sql(
        "SELECT current_user, CASE WHEN to_regclass('alembic_version') IS NULL"
        " THEN has_schema_privilege(current_schema(), 'CREATE')"
        " ELSE pg_has_role((SELECT relowner FROM pg_class"
        "  WHERE oid = to_regclass('alembic_version')), 'USAGE') END"
    ).one()
    if allowed:
        return
    state = f"is at schema {at}" if at else "is empty"
    if url_setting == "LIMS_MIGRATE_DATABASE_URL":
        fix = "LIMS_MIGRATE_DATABASE_URL must connect as the role that owns the tables"
    else:
        fix = (
            "set LIMS_MIGRATE_DATABASE_URL to the URL of the role that owns the tables and "
            "start again (or run `flask --app app init-db` with it set)"
        )
    raise StartupError(
        f"the database {state} and this version needs {head_revision()}, but {url_setting} "
        f"connects as {user}, which may not change the schema: {fix}"
    )


def _whoami(engine: Engine) -> tuple[str, str]:
    """Return the role engine connects as and the database.schema it works in."""
    with engine.connect() as conn:
        user, db, schema = conn.exec_driver_sql(
            "SELECT current_user, current_database(), current_schema()"
        ).one()
    return user, f"{db}.{schema}"
