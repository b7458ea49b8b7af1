"""Engine and sessions: SQLite (WAL, synchronous=FULL, foreign keys) or PostgreSQL by URL."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, create_engine, select

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


# Connections per process: requests, print workers and verify's helpers share them.
POOL_SIZE = 20
MAX_OVERFLOW = 20


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for url with the pragmas and locking the audit chain relies on."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
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
        # The DBAPI connections (by id) whose transaction holds `writers`.
        holding: set[int] = set()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # noqa: ANN001
            # Straight to the driver (as driver_execute): every transaction pays for this.
            dbapi_conn = conn.connection.dbapi_connection
            if _read_only.get():
                with driver_errors(conn, "BEGIN"):
                    dbapi_conn.execute("BEGIN")
                return
            # Bounded: a leaked lock degrades to busy-handler waits, never to a hang.
            if writers.acquire(timeout=30):
                holding.add(id(dbapi_conn))
            try:
                with driver_errors(conn, "BEGIN IMMEDIATE"):
                    dbapi_conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                _release(dbapi_conn)
                raise

        def _release(dbapi_conn) -> None:  # noqa: ANN001
            # do_commit gets the pool's proxy of the connection; BEGIN saw the driver's own.
            key = id(getattr(dbapi_conn, "dbapi_connection", dbapi_conn))
            if key in holding:
                holding.discard(key)
                writers.release()

        # The lock is released once COMMIT (or ROLLBACK) has returned, not at SQLAlchemy's
        # commit event, which fires before it: the next writer's BEGIN IMMEDIATE would then
        # meet the database still locked by the commit's fsync and fall into the busy handler's
        # sleeps (up to 100 ms a try). That was the seconds-long stall of scans on SQLite
        # (docs/benchmarks.md, "The SQLite stall"). Each engine has a dialect of its own.
        dialect = engine.dialect
        do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

        def _commit(dbapi_conn) -> None:  # noqa: ANN001
            try:
                do_commit(dbapi_conn)
            finally:
                _release(dbapi_conn)

        def _rollback(dbapi_conn) -> None:  # noqa: ANN001
            try:
                do_rollback(dbapi_conn)
            finally:
                _release(dbapi_conn)

        dialect.do_commit = _commit  # type: ignore[method-assign]
        dialect.do_rollback = _rollback  # type: ignore[method-assign]

        return engine

    connect_args = {}
    schema = u.query.get("schema") if u.query else None
    if schema:
        # Tests isolate themselves in a schema of their own; search_path puts everything there.
        u = u.difference_update_query(["schema"])
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(
        u, echo=echo, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, connect_args=connect_args
    )


def spare_connections(engine: Engine) -> int:
    """Return how many more connections the engine's pool can hand out without waiting."""
    return POOL_SIZE + MAX_OVERFLOW - engine.pool.checkedout()


def new_session(engine: Engine) -> Session:
    """Open a session that keeps objects usable after commit (responses serialise them)."""
    return Session(engine, expire_on_commit=False)


# --- the driver's own connection, for the few statements every change runs --------------------
# A custody move runs a handful of fixed statements. Through SQLAlchemy each costs tens of
# microseconds of Python before the database sees it, several times the statement itself; the
# hot ones (the audit append, the sample update) go straight to the driver inside the session's
# transaction. Everything else stays on SQLAlchemy.

_driver_sql: dict[tuple[str, str], str] = {}


def driver_sql(dialect: str, sql: str) -> str:
    """Return sql written with ? placeholders in the paramstyle of the dialect's driver."""
    key = (dialect, sql)
    out = _driver_sql.get(key)
    if out is None:
        # psycopg uses %s; no statement passed here contains a literal ? or %.
        out = _driver_sql[key] = sql.replace("?", "%s") if dialect == "postgresql" else sql
    return out


@contextmanager
def driver_errors(
    conn: Connection, statement: str = "", params: Sequence[Any] = ()
) -> Iterator[None]:
    """Turn driver errors raised inside the block into SQLAlchemy's DBAPIError family.

    Statements run on the driver connection then fail as they would through SQLAlchemy: the
    request boundary answers them (409, 503), and a lost connection is invalidated so that the
    rollback after it does not fail too.
    """
    dialect = conn.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as err:
        lost = dialect.is_disconnect(err, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(err)
        raise DBAPIError.instance(
            statement,
            params,
            err,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from err


def driver_execute(session: Session, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run sql (? placeholders) on the driver connection of the session's transaction.

    Pending ORM changes are flushed first and the transaction is begun if needed; errors
    arrive as through SQLAlchemy (driver_errors).
    """
    if session.autoflush:
        session.flush()  # as an ORM query would: changes pending in the session are seen
    # session.connection() costs more than a statement; the transaction keeps one connection.
    # Keyed by the innermost transaction: inside begin_nested, session.connection() is what
    # emits the SAVEPOINT, so a statement sent here is undone with the savepoint it belongs to.
    tx = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_DRIVER_KEY)
    if tx is None or cached is None or cached[0] is not tx:
        conn = session.connection()
        tx = session.get_nested_transaction() or session.get_transaction()
        cached = session.info[_DRIVER_KEY] = (tx, conn, conn.dialect.name)
    conn = cached[1]
    if not sql.startswith("SELECT"):
        session.info.pop(_MEMO_KEY, None)  # it writes: what memo kept may be stale
    statement = driver_sql(cached[2], sql)
    with driver_errors(conn, statement, params):
        return conn.connection.dbapi_connection.execute(statement, params)


_DRIVER_KEY = "lims_driver_connection"


# --- what a request reads twice ----------------------------------------------------------------
# A lot page asks for the release specification, its limits, the lot's results and its OOS once
# to show them and again when the release rules judge the lot. memo keeps such an answer for the
# rest of the transaction, until the session writes anything: a change, a flush, a bulk UPDATE or
# a statement other than a SELECT sent through driver_execute forgets every answer kept.

_MEMO_KEY = "lims_memo"


def memo(session: Session, key: tuple[Any, ...], read: Callable[[], Any]) -> Any:
    """Return read() once per transaction for key while the session has written nothing."""
    kept = session.info.get(_MEMO_KEY)
    if kept is None or session.new or session.dirty or session.deleted:
        # Changes not yet flushed would be flushed by the query itself (autoflush): read again.
        kept = session.info[_MEMO_KEY] = {}
    if key not in kept:
        kept[key] = read()
    return kept[key]


def remember(session: Session, key: tuple[Any, ...], value: Any) -> None:
    """Keep value as memo's answer for key (read along with something else)."""
    memo(session, key, lambda: value)


def forget(session: OrmSession) -> None:
    """Drop every answer memo kept for the session."""
    session.info.pop(_MEMO_KEY, None)


@event.listens_for(OrmSession, "after_flush")
def _forget_on_flush(session: OrmSession, _context: Any) -> None:
    forget(session)


@event.listens_for(OrmSession, "do_orm_execute")
def _forget_on_write(state: Any) -> None:
    if not state.is_select:
        forget(state.session)


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_connection(session: OrmSession, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_DRIVER_KEY, None)
        forget(session)


def dialect_name(session: Session) -> str:
    """Return the name of the database dialect the session talks to (sqlite, postgresql)."""
    return session.get_bind().dialect.name


def to_db_time(dialect: str, t: datetime) -> Any:
    """Convert an aware time to what the column stores (as SQLModel's UTCDateTime does)."""
    t = t.astimezone(UTC)
    if dialect == "sqlite":
        # SQLAlchemy's SQLite DATETIME text format, which verify's SQL payload also reads.
        return t.strftime("%Y-%m-%d %H:%M:%S.%f")
    return t


def from_db_time(value: Any) -> datetime | None:
    """Convert a time read through the driver to an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def _as_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _as_date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


# Conversions the column types would apply on load: SQLite returns times and dates as text and
# booleans as integers.
_CONVERTERS = {datetime: from_db_time, date: _as_date, bool: _as_bool}
_shapes: dict[type, tuple[tuple[str, ...], dict[str, Callable[[Any], Any]], str]] = {}


def row_shape(model: type) -> tuple[tuple[str, ...], dict[str, Callable[[Any], Any]], str]:
    """Return a table model's column names, their load conversions and its primary key column."""
    shape = _shapes.get(model)
    if shape is None:
        table = model.__table__
        names = tuple(table.columns.keys())
        # A TypeDecorator (SQLModel's UTCDateTime) names its Python type on its impl.
        kinds = {c.name: getattr(c.type, "impl", c.type).python_type for c in table.columns}
        convert = {name: _CONVERTERS[k] for name, k in kinds.items() if k in _CONVERTERS}
        shape = _shapes[model] = (names, convert, table.primary_key.columns.values()[0].name)
    return shape


def column_list(model: type, alias: str = "") -> str:
    """Return the model's columns in row_shape order, quoted, for a driver SELECT."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{c}"' for c in row_shape(model)[0])


def adopt(session: Session, model: type, row: Sequence[Any]) -> Any:
    """Return the session's instance of a row read through the driver (row_shape's columns).

    The instance is what the ORM would have loaded (persistent, nothing to flush), built without
    the ORM's load machinery or model validation; an instance already in the session wins.
    """
    names, convert, pk = row_shape(model)
    values = dict(zip(names, row, strict=True))
    obj = session.identity_map.get(session.identity_key(model, values[pk]))
    if obj is None:
        for name, fn in convert.items():
            values[name] = fn(values[name])
        obj = model._sa_class_manager.new_instance()
        obj.__dict__.update(values)
        make_transient_to_detached(obj)
        session.add(obj)
    return obj


def rows_by_id(session: Session, model: type, ids: Iterable[int | None]) -> dict[int, Any]:
    """Load the rows of model with these ids in one query (None ids are skipped)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {row.id: row for row in session.exec(select(model).where(model.id.in_(wanted)))}


def ping(session: Session) -> None:
    """Ask the database for one row: raises when it does not answer."""
    session.exec(text("SELECT 1")).first()
