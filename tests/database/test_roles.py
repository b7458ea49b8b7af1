"""PostgreSQL least privilege: migrations as the tables' owner, the app as a role of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from alembic import command
from conftest import ENGINE, PG_URL, PgDatabases
from helpers import PASSWORD, bearer, move, register, review_all
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from lims import StartupError, audit, create_app
from lims.audit import verification
from lims.db import make_engine, new_session
from lims.migrate import (
    alembic_config,
    app_role_problems,
    current_revision,
    head_revision,
    migrate,
)

pg_only = pytest.mark.skipif(
    ENGINE != "postgresql", reason="database roles and grants are PostgreSQL's (SQLite has none)"
)

SIGN = {"password": PASSWORD, "meaning": "release"}


@dataclass
class Roles:
    """A database owned by its own owner role, and an app role that owns nothing."""

    dbname: str
    owner: str
    app: str

    def url(self, role: str) -> str:
        u = make_url(PG_URL).set(username=role, database=self.dbname)
        return u.render_as_string(hide_password=False)

    @property
    def owner_url(self) -> str:
        return self.url(self.owner)

    @property
    def app_url(self) -> str:
        return self.url(self.app)

    def start(self, **config: object):  # noqa: ANN201
        """Start the app as the app role, migrating as the owner (both URLs given)."""
        base = {"DATABASE_URL": self.app_url, "MIGRATE_DATABASE_URL": self.owner_url}
        return create_app({**base, "TESTING": True, "SECRET_KEY": "t", **config})


@pytest.fixture
def roles(pg_databases: PgDatabases) -> Iterator[Roles]:
    """Set up the two roles as docs/scale-out.md tells a centre to; drop them afterwards."""
    tag = uuid.uuid4().hex[:10]
    owner, app_role = f"lims_owner_{tag}", f"lims_app_{tag}"
    admin = pg_databases.admin
    admin.execute(f'CREATE ROLE "{owner}" LOGIN')
    admin.execute(f'CREATE ROLE "{app_role}" LOGIN')
    dbname = pg_databases.create()
    admin.execute(f'ALTER DATABASE "{dbname}" OWNER TO "{owner}"')
    with psycopg.connect(
        make_url(PG_URL)
        .set(database=dbname, drivername="postgresql")
        .render_as_string(hide_password=False),
        autocommit=True,
    ) as conn:
        conn.execute(f'ALTER SCHEMA public OWNER TO "{owner}"')
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    try:
        yield Roles(dbname, owner, app_role)
    finally:
        pg_databases.drop(dbname)
        admin.execute(f'DROP ROLE IF EXISTS "{app_role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{owner}"')


def refused(conn, sql: str) -> str:  # noqa: ANN001
    """Run sql and return the database's refusal (insufficient privilege), rolled back."""
    if conn.in_transaction():
        conn.rollback()
    with pytest.raises(ProgrammingError) as info:
        with conn.begin():
            conn.execute(text(sql))
    assert info.value.orig.sqlstate == "42501", (sql, info.value.orig)
    return str(info.value.orig)


@pg_only
def test_the_app_role_cannot_touch_the_trail_or_the_schema(roles: Roles):
    app = roles.start(LOAD_DEMO=True)
    engine = app.extensions["lims"]["engine"]
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar() == roles.app
            events = conn.execute(text("SELECT count(*) FROM audit_event")).scalar()
            assert events > 0
            assert "must be owner" in refused(conn, "ALTER TABLE audit_event DISABLE TRIGGER USER")
            refused(conn, "ALTER TABLE audit_event DISABLE TRIGGER audit_no_change")
            refused(conn, "ALTER TABLE audit_event ADD COLUMN note text")
            refused(conn, "DROP TRIGGER audit_no_change ON audit_event")
            refused(conn, "DROP TABLE audit_event")
            assert "permission denied" in refused(conn, "UPDATE audit_event SET actor = 'x'")
            refused(conn, "DELETE FROM audit_event WHERE seq = (SELECT max(seq) FROM audit_event)")
            refused(conn, "TRUNCATE audit_event")
            refused(conn, "DELETE FROM audit_head")
            refused(conn, "INSERT INTO audit_head (id, seq, hash) VALUES (2, 0, 'x')")
            refused(conn, "UPDATE signature SET meaning = 'x'")
            refused(conn, "UPDATE em_result SET value = 0")
            refused(conn, "UPDATE line_clearance SET note = 'x'")
            refused(conn, "DELETE FROM line_clearance_countersign")
            refused(conn, "DELETE FROM signature")
            refused(conn, "UPDATE alembic_version SET version_num = '0001'")
            refused(conn, "ALTER TABLE sample DISABLE TRIGGER ALL")
            assert "schema public" in refused(conn, "CREATE TABLE shadow (x int)")
            refused(conn, "CREATE TRIGGER t BEFORE INSERT ON sample EXECUTE FUNCTION now()")
            assert conn.execute(text("SELECT count(*) FROM audit_event")).scalar() == events
            assert app_role_problems(conn, roles.app) == []
        with new_session(engine) as db:
            assert audit.verify(db).ok
    finally:
        engine.dispose()


@pg_only
def test_the_app_works_as_its_role(roles: Roles, monkeypatch: pytest.MonkeyPatch):
    app = roles.start(LOAD_DEMO=True)
    engine = app.extensions["lims"]["engine"]
    try:
        client = app.test_client()
        tech, qa = bearer(app, "tech1"), bearer(app, "qa1")
        b = register(client, tech)["barcode"]
        assert move(client, tech, b, "receive", condition="cold", version=1).status_code == 200
        assert move(client, tech, b, "quarantine").json["state"] == "quarantine"
        assert move(client, qa, b, "release").json["state"] == "available"
        r = move(client, tech, b, "store", location="BOX-0002", position="C4")
        assert r.status_code == 200, r.json
        # An e-signature (append-only for the app role) and a QC result.
        qc = {"test": "mycoplasma", "result": "not detected"}
        lot = "/api/lots/AAV9-2611-001"
        assert client.post(f"{lot}/qc", json=qc, headers=tech).status_code == 201
        # QA's reviews: of each result, then of the trail (a row of an append-only table).
        review_all(client, "AAV9-2611-001", qa)
        r = client.post(
            f"{lot}/transitions", json={"action": "release", "signature": SIGN}, headers=qa
        )
        assert r.status_code == 200 and r.json["state"] == "released", r.json
        # An action-level EM result (insert-only) with its deviation and the room's hold.
        em = {"point": "EM-B1-A1", "taken_at": "2026-01-05T09:00:00Z", "occupancy": "at_rest"}
        r = client.post("/api/em-results", json={**em, "value": 50}, headers=tech)
        assert r.status_code == 201 and r.json["level"] == "action" and r.json["deviation"]
        assert client.get("/api/audit/verify", headers=qa).json["ok"] is True
        with new_session(engine) as db:
            result = audit.verify(db)
            assert result.ok and result.events > 10
            # The in-database walk split over two snapshot-sharing connections.
            splits = []
            real_split = verification._verify_split
            monkeypatch.setattr(
                verification, "_verify_split", lambda *a: splits.append(1) or real_split(*a)
            )
            split = audit.verify(db, batch=max(2, result.events // 4))
            assert split.ok and split.events == result.events and splits == [1]
        # init-db as the app: migrates (nothing to do) as the owner, grants again.
        out = app.test_cli_runner().invoke(args=["init-db"])
        assert out.exit_code == 0, out.output
        assert f"role {roles.app} may use the tables" in out.output
    finally:
        engine.dispose()


@pg_only
def test_starting_as_the_app_role_on_an_old_schema_says_which_url_to_set(roles: Roles):
    # An empty database: the app role may not create the tables.
    with pytest.raises(StartupError) as info:
        create_app({"DATABASE_URL": roles.app_url, "TESTING": True, "SECRET_KEY": "t"})
    message = str(info.value)
    assert "\n" not in message
    assert f"the database is empty and this version needs {head_revision()}" in message
    assert f"LIMS_DATABASE_URL connects as {roles.app}" in message
    assert "set LIMS_MIGRATE_DATABASE_URL to the URL of the role that owns the tables" in message

    # The owner migrates; then the schema falls behind (as after installing a newer version).
    owner = make_engine(roles.owner_url)
    try:
        migrate(owner, app_role=roles.app)
        cfg = alembic_config()
        with owner.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        with pytest.raises(
            StartupError,
            match=r"is at schema 0001 and this version needs .*"
            r"set LIMS_MIGRATE_DATABASE_URL",
        ):
            create_app({"DATABASE_URL": roles.app_url, "TESTING": True, "SECRET_KEY": "t"})
        assert current_revision(owner) == "0001"  # nothing tried
        # The owner's URL as well: the app upgrades as the owner and runs as itself.
        app = roles.start()
        app.extensions["lims"]["engine"].dispose()
        assert current_revision(owner) == head_revision()
        # At the newest schema the app role alone starts (no owner URL needed on app servers).
        app = create_app({"DATABASE_URL": roles.app_url, "TESTING": True, "SECRET_KEY": "t"})
        app.extensions["lims"]["engine"].dispose()
    finally:
        owner.dispose()


@pg_only
def test_grants_are_reapplied_on_each_upgrade_and_cover_new_tables(roles: Roles):
    roles.start().extensions["lims"]["engine"].dispose()
    owner = make_engine(roles.owner_url)
    try:
        with owner.begin() as conn:
            # A table a later revision adds, and a right someone granted by hand.
            conn.execute(text("CREATE TABLE later_table (id serial PRIMARY KEY, note text)"))
            conn.execute(text(f'GRANT ALL ON audit_event TO "{roles.app}"'))
        app = roles.start()
        engine = app.extensions["lims"]["engine"]
        try:
            with engine.connect() as conn:
                with conn.begin():
                    conn.execute(text("INSERT INTO later_table (note) VALUES ('ok')"))
                    conn.execute(text("DELETE FROM later_table"))
                refused(conn, "DELETE FROM audit_event")
                refused(conn, "ALTER TABLE later_table DISABLE TRIGGER ALL")
        finally:
            engine.dispose()
    finally:
        owner.dispose()


@pg_only
def test_init_db_grant_as_the_owner_and_refusals(roles: Roles):
    # One URL, the owner's (as today): init-db --grant gives the app role its rights.
    owner_app = create_app({"DATABASE_URL": roles.owner_url, "TESTING": True, "SECRET_KEY": "t"})
    try:
        runner = owner_app.test_cli_runner()
        out = runner.invoke(args=["init-db", "--grant", roles.app])
        assert out.exit_code == 0, out.output
        assert f"role {roles.app} may use the tables" in out.output
        out = runner.invoke(args=["init-db", "--grant", "postgres"])
        assert out.exit_code == 1 and "the app's role postgres is a superuser" in out.output
        out = runner.invoke(args=["init-db", "--grant", roles.owner])
        assert out.exit_code == 1 and "owns the tables" in out.output
        out = runner.invoke(args=["init-db", "--grant", "no_such_role_x"])
        assert out.exit_code == 1 and "does not exist" in out.output
    finally:
        owner_app.extensions["lims"]["engine"].dispose()
    app = create_app({"DATABASE_URL": roles.app_url, "TESTING": True, "SECRET_KEY": "t"})
    engine = app.extensions["lims"]["engine"]
    try:
        with engine.connect() as conn:
            refused(conn, "ALTER TABLE audit_event DISABLE TRIGGER USER")
    finally:
        engine.dispose()
    # Both URLs naming one role would give no separation: refused at start.
    with pytest.raises(StartupError, match="both connect as"):
        create_app(
            {
                "DATABASE_URL": roles.owner_url,
                "MIGRATE_DATABASE_URL": roles.owner_url,
                "TESTING": True,
                "SECRET_KEY": "t",
            }
        )


def test_an_owner_url_with_sqlite_is_refused(tmp_path):  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'one.sqlite3'}"
    with pytest.raises(StartupError, match="LIMS_MIGRATE_DATABASE_URL is for PostgreSQL"):
        create_app({"DATABASE_URL": url, "MIGRATE_DATABASE_URL": url, "SECRET_KEY": "t"})
