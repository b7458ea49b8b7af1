"""Engine and sessions: SQLite (WAL, synchronous=FULL, foreign keys) or PostgreSQL by URL."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

# Writers on SQLite take the write lock at BEGIN (BEGIN IMMEDIATE) so that a transaction that
# read a row can never lose a race to another writer half-way through; readers stay deferred.
_read_only: contextvars.ContextVar[bool] = contextvars.ContextVar("lims_read_only", default=False)


@contextmanager
def read_only() -> Iterator[None]:
    """Mark transactions begun inside this block as readers (deferred BEGIN on SQLite)."""
    token = _read_only.set(True)
    try:
        yield
    finally:
        _read_only.reset(token)


def set_read_only(value: bool) -> contextvars.Token:
    """Mark the current context's transactions as readers or writers."""
    return _read_only.set(value)


def is_sqlite(engine: Engine) -> bool:
    """Tell whether engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for url with the pragmas and locking the audit chain relies on."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # noqa: ANN001
            # Let us issue BEGIN ourselves (the driver's implicit BEGIN is always deferred).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # Writer threads of this process queue on a lock before BEGIN IMMEDIATE. Without it they
        # all poll SQLite's busy handler, whose sleeps grow to 100 ms: one unlucky writer could
        # wait a second behind a stream of others. Other processes still meet the busy handler.
        writers = threading.RLock()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # noqa: ANN001
            if _read_only.get():
                conn.exec_driver_sql("BEGIN")
                return
            # Bounded: a leaked lock degrades to busy-handler waits, never to a hang.
            if writers.acquire(timeout=30):
                conn.info["lims_writer"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(conn)
                raise

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _release(conn):  # noqa: ANN001
            if conn.info.pop("lims_writer", False):
                writers.release()

        return engine

    connect_args = {}
    schema = u.query.get("schema") if u.query else None
    if schema:
        # Tests isolate themselves in a schema of their own; search_path puts everything there.
        u = u.difference_update_query(["schema"])
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(u, echo=echo, pool_size=20, max_overflow=20, connect_args=connect_args)


def new_session(engine: Engine) -> Session:
    """Open a session that keeps objects usable after commit (responses serialise them)."""
    return Session(engine, expire_on_commit=False)
