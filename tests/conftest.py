"""Shared fixtures: a fresh real database per test (SQLite file, or PostgreSQL), app, clients.

The whole suite runs on SQLite by default. With LIMS_TEST_ENGINE=postgresql it runs again on the
PostgreSQL server at LIMS_TEST_PG_URL (default: 127.0.0.1:5432, database `test`): every test gets
its own database, copied from a template that holds the migrated demo centre.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from lims import create_app
from lims.accounts import users
from lims.db import new_session
from printers.mock import PrinterSimulator

ENGINE = os.environ.get("LIMS_TEST_ENGINE", "sqlite")
PG_URL = os.environ.get("LIMS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin():
    """Return an autocommit psycopg connection to the server's maintenance database, or None."""
    try:
        import psycopg
    except ImportError:
        return None
    u = make_url(PG_URL)
    try:
        return psycopg.connect(
            host=u.host or "127.0.0.1",
            port=u.port or 5432,
            user=u.username or "postgres",
            dbname=u.database or "test",
            autocommit=True,
            connect_timeout=3,
        )
    except psycopg.OperationalError:
        return None


def pg_available() -> bool:
    """Tell whether the PostgreSQL server for tests answers."""
    conn = _pg_admin()
    if conn is None:
        return False
    conn.close()
    return True


def _pg_url_for(dbname: str) -> str:
    return make_url(PG_URL).set(database=dbname).render_as_string(hide_password=False)


class PgDatabases:
    """Create PostgreSQL databases for tests (from a template) and drop them afterwards."""

    def __init__(self) -> None:
        self.admin = _pg_admin()
        self.template: str | None = None
        self.created: list[str] = []

    def create(self, *, template: str | None = None) -> str:
        name = f"lims_t_{uuid.uuid4().hex[:12]}"
        tpl = f' TEMPLATE "{template}"' if template else " TEMPLATE template0"
        self.admin.execute(f'CREATE DATABASE "{name}"{tpl}')
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _build_demo(url: str) -> None:
    app = create_app({"DATABASE_URL": url, "TESTING": True, "LOAD_DEMO": True, "SECRET_KEY": "t"})
    app.extensions["lims"]["engine"].dispose()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """PostgreSQL database factory; skips the test when no server answers."""
    if not pg_available():
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}; start it to run this test")
    dbs = PgDatabases()
    yield dbs
    for name in dbs.created:
        dbs.drop(name)
    dbs.admin.close()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """Build the migrated demo centre once per session; tests get copies of it."""
    if ENGINE == "postgresql":
        dbs: PgDatabases = request.getfixturevalue("pg_databases")
        name = dbs.create()
        _build_demo(_pg_url_for(name))
        return name
    path = tmp_path_factory.mktemp("template") / "demo.sqlite3"
    _build_demo(f"sqlite:///{path}")
    # Fold the WAL into the main file so a plain file copy is complete.
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return str(path)


@pytest.fixture
def db_url(demo_template: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Return the URL of a fresh copy of the demo centre's database for this test."""
    if ENGINE == "postgresql":
        dbs: PgDatabases = request.getfixturevalue("pg_databases")
        return _pg_url_for(dbs.create(template=demo_template))
    target = tmp_path / "lims.sqlite3"
    shutil.copyfile(demo_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def empty_db_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Return the URL of an empty database (nothing migrated)."""
    if ENGINE == "postgresql":
        dbs: PgDatabases = request.getfixturevalue("pg_databases")
        return _pg_url_for(dbs.create())
    return f"sqlite:///{tmp_path / 'empty.sqlite3'}"


def checkpoint_config(folder: Path) -> dict[str, str]:
    """Return config keeping a test's signed audit checkpoints and their key in folder."""
    return {"CHECKPOINT_DIR": str(folder / "checkpoints"), "CHECKPOINT_KEY": str(folder / "ckey")}


@pytest.fixture
def app(db_url: str, tmp_path: Path):  # noqa: ANN201
    """Return the app on a fresh demo database."""
    application = create_app(
        {
            "DATABASE_URL": db_url,
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            **checkpoint_config(tmp_path),
        }
    )
    yield application
    application.extensions["lims"]["engine"].dispose()


@pytest.fixture
def client(app):  # noqa: ANN001, ANN201
    return app.test_client()


@pytest.fixture
def runner(app):  # noqa: ANN001, ANN201
    return app.test_cli_runner()


@pytest.fixture
def engine(app):  # noqa: ANN001, ANN201
    return app.extensions["lims"]["engine"]


@pytest.fixture
def auth(app) -> Callable[..., dict[str, str]]:  # noqa: ANN001
    """Return a function username[, station] -> headers with a fresh bearer token."""
    cache: dict[tuple[str, str | None], dict[str, str]] = {}

    def make(username: str, station: str | None = None) -> dict[str, str]:
        key = (username, station)
        if key not in cache:
            with new_session(app.extensions["lims"]["engine"]) as db:
                secret, _ = users.create_token(
                    db, username=username, station=station, actor=users.system_actor(db)
                )
                db.commit()
            cache[key] = {"Authorization": f"Bearer {secret}"}
        return cache[key]

    return make


@pytest.fixture
def tech(auth) -> dict[str, str]:  # noqa: ANN001
    """Return the bearer headers of the demo technician tech1."""
    return auth("tech1")


@pytest.fixture
def sim() -> Iterator[PrinterSimulator]:
    """Run a label printer simulator on 127.0.0.1 for the test (a scanner test may override)."""
    simulator = PrinterSimulator().start()
    yield simulator
    simulator.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def race_app(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    """The demo centre on a database of its own on each engine, whatever LIMS_TEST_ENGINE says."""
    if request.param == "postgresql":
        # Skips, saying where it looked, when no PostgreSQL server answers.
        dbs: PgDatabases = request.getfixturevalue("pg_databases")
        url = _pg_url_for(dbs.create())
    else:
        url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    application = create_app(
        {
            "DATABASE_URL": url,
            "TESTING": True,
            "LOAD_DEMO": True,
            "SECRET_KEY": "t",
            **checkpoint_config(tmp_path),
        }
    )
    yield application
    application.extensions["lims"]["engine"].dispose()


class Server:
    """The app on a real socket, served by werkzeug in a thread."""

    def __init__(self, app, port: int = 0) -> None:  # noqa: ANN001
        self.srv = make_server("127.0.0.1", port, app, threaded=True)
        self.port = self.srv.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(5)


@pytest.fixture
def server(app) -> Iterator[Server]:  # noqa: ANN001
    """Serve the test's app over real HTTP (a station agent's server)."""
    srv = Server(app)
    yield srv
    srv.stop()


@pytest.fixture
def qa2(app, auth) -> dict[str, str]:  # noqa: ANN001
    """Return the bearer headers of a second QA person, qa2 (four eyes need two)."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        users.create_user(
            db,
            username="qa2",
            full_name="Quentin Quality",
            role="qa",
            org="centre",
            password="demo-only-lims",
            actor=users.system_actor(db),
        )
        db.commit()
    return auth("qa2")
