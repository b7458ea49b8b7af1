"""Append-only, hash-chained audit trail: record(), verify() and the QA queries."""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, event, false, func, literal_column, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session
from sqlmodel import select as sm_select

from lims.db import (
    dialect_name,
    driver_errors,
    driver_execute,
    from_db_time,
    spare_connections,
    to_db_time,
)
from lims.models import AuditEvent, AuditHead, utcnow

GENESIS_HASH = "0" * 64

# The order of fields in the hashed record; changing it breaks every existing chain.
HASHED_FIELDS = (
    "seq",
    "ts",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "org_id",
    "lot_id",
    "location_id",
    "before",
    "after",
    "reason",
    "station",
    "device",
    "signature_id",
    "corrects_seq",
    "prev_hash",
)


def canonical_json(value: Any) -> str:
    """Serialise value the same way every time (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def ts_text(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(fields: dict[str, Any]) -> str:
    """Hash one event: SHA-256 over a JSON array of HASHED_FIELDS in order."""
    values = [fields[name] for name in HASHED_FIELDS]
    values[1] = ts_text(values[1])
    payload = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


_HEAD = AuditHead.__table__
_INSERT_COLUMNS = (*HASHED_FIELDS, "hash")
# Written for the driver (see lims.db.driver_execute): the append runs on every change.
_INSERT_SQL = "INSERT INTO audit_event ({}) VALUES ({})".format(
    ", ".join(f'"{c}"' for c in _INSERT_COLUMNS), ", ".join("?" for _ in _INSERT_COLUMNS)
)
_HEAD_UPDATE_SQL = "UPDATE audit_head SET seq = ?, hash = ?, ts = ? WHERE id = 1"
# PostgreSQL: the event and the new head in one round trip.
_APPEND_SQL_PG = f"WITH appended AS ({_INSERT_SQL}) {_HEAD_UPDATE_SQL}"
_HEAD_SELECT_SQL = "SELECT seq, hash, ts FROM audit_head WHERE id = 1"


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: dict | None = None,
    after: dict | None = None,
    reason: str | None = None,
    org_id: int | None = None,
    lot_id: int | None = None,
    location_id: int | None = None,
    station: str | None = None,
    device: str | None = None,
    signature_id: int | None = None,
    corrects_seq: int | None = None,
) -> dict[str, Any]:
    """Append one event to the chain inside the caller's transaction and return it."""
    dialect = dialect_name(session)
    head_seq, head_hash, last_ts = _read_head(session, dialect)
    now = utcnow()
    if last_ts is not None and last_ts > now:
        # The clock stepped back: times never decrease along the chain, which lets
        # time-range queries run as seq ranges (see seq_range).
        now = last_ts
    fields: dict[str, Any] = {
        "seq": head_seq + 1,
        "ts": now,
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "org_id": org_id,
        "lot_id": lot_id,
        "location_id": location_id,
        "before": None if before is None else canonical_json(before),
        "after": None if after is None else canonical_json(after),
        "reason": reason,
        "station": station,
        "device": device,
        "signature_id": signature_id,
        "corrects_seq": corrects_seq,
        "prev_hash": head_hash,
    }
    fields["hash"] = event_hash(fields)
    row = [fields[c] for c in _INSERT_COLUMNS]
    row[1] = db_ts = to_db_time(dialect, now)
    head = (fields["seq"], fields["hash"], db_ts)
    if dialect == "postgresql":
        driver_execute(session, _APPEND_SQL_PG, (*row, *head))
    else:
        driver_execute(session, _INSERT_SQL, row)
        driver_execute(session, _HEAD_UPDATE_SQL, head)
    session.info[_HEAD_KEY] = (session.get_transaction(), (fields["seq"], fields["hash"], now))
    return fields


_HEAD_KEY = "lims_audit_head"


def _read_head(session: Session, dialect: str) -> tuple[int, str, datetime | None]:
    """Return the chain head, locking it for this transaction on first use."""
    cached = session.info.get(_HEAD_KEY)
    if cached is not None and cached[0] is session.get_transaction():
        # This transaction holds the lock and read or wrote the head itself: no need to read it
        # again (a many-sample request appends dozens of events).
        return cached[1]
    if dialect == "postgresql":
        # Serialise appends so the chain never forks: the head row's lock is held until commit
        # or rollback, and a waiting writer then reads the new head (one round trip).
        row = driver_execute(session, _HEAD_SELECT_SQL + " FOR UPDATE").fetchone()
    else:
        # On SQLite the writer already holds the database write lock (BEGIN IMMEDIATE).
        row = driver_execute(session, _HEAD_SELECT_SQL).fetchone()
    return row[0], row[1], from_db_time(row[2])


# PostgreSQL: the chain head read (and locked) by the change an append follows, in its
# RETURNING. The sub-select runs after the row is changed, so locks come in the same order as
# a separate SELECT ... FOR UPDATE would take them; a waiting writer gets the newest head.
_HEAD_RETURNING_PG = (
    " RETURNING (SELECT json_build_array(seq, hash, ts) FROM audit_head WHERE id = 1 FOR UPDATE)"
)


def update_before_append(session: Session, sql: str, params: Sequence[Any]) -> int:
    """Run an UPDATE (? placeholders) that an append follows at once; return its row count.

    On PostgreSQL a statement costs about as much as its round trip, and a custody move made
    seven: the chain head comes back with the change, and record() uses it. The caller must
    append straight after, with no other lock taken in between.
    """
    cached = session.info.get(_HEAD_KEY)
    if dialect_name(session) != "postgresql" or (
        cached is not None and cached[0] is session.get_transaction()
    ):
        return driver_execute(session, sql, params).rowcount
    rows = driver_execute(session, sql + _HEAD_RETURNING_PG, params).fetchall()
    if rows:
        seq, head_hash, ts = rows[0][0]
        session.info[_HEAD_KEY] = (
            session.get_transaction(),
            (seq, head_hash, datetime.fromisoformat(ts).astimezone(UTC)),
        )
    return len(rows)


@event.listens_for(OrmSession, "after_soft_rollback")
@event.listens_for(OrmSession, "after_commit")
def _forget_head(session: OrmSession, *_args: Any) -> None:
    # Any rollback (a savepoint too) may have undone appends: read the head again next time.
    session.info.pop(_HEAD_KEY, None)


@dataclass
class VerifyResult:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "ok": self.ok,
            "events": self.events,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


_COLUMNS = [getattr(AuditEvent, name) for name in HASHED_FIELDS] + [AuditEvent.hash]


_INT_FIELDS = frozenset({"seq", "org_id", "lot_id", "location_id", "signature_id", "corrects_seq"})


# replace(replace(col, '\', '\\'), '"', '\"') in E'' literals, which read the same whatever
# standard_conforming_strings says.
_PG_QUOTE = """replace(replace("{0}", E'\\\\', E'\\\\\\\\'), '"', E'\\\\"')"""


def _payload_sql(dialect: str) -> str | None:
    """Return SQL that renders event_hash's JSON payload of a row, or None for other engines.

    The database renders the payload (escaping as json.dumps does, ensure_ascii off) so Python
    only hashes one string per event instead of building 18 objects and a JSON array. A payload
    that differs from Python's in any byte cannot match the stored hash, and every mismatch is
    recomputed by event_hash itself: the result is exactly the one of the pure-Python check.
    That needs each field rendered unambiguously: a rendering equal to Python's must decode to
    the same values, else an edited row could render as the original and pass.
    """
    if dialect == "sqlite":
        # SQLAlchemy stores SQLite times as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC).
        cols = [
            "substr(ts, 1, 10) || 'T' || substr(ts, 12) || 'Z'" if f == "ts" else f'"{f}"'
            for f in HASHED_FIELDS
        ]
        return f"json_array({', '.join(cols)})"
    if dialect == "postgresql":
        parts = []
        for f in HASHED_FIELDS:
            if f == "ts":
                # Digits and fixed letters only: nothing to escape.
                expr = (
                    "'\"' || to_char(ts AT TIME ZONE 'UTC', "
                    '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') || \'"\''
                )
            elif f in _INT_FIELDS:
                expr = f'"{f}"::text'
            elif f == "reason":
                # Free text, often with line breaks: to_json escapes control characters too.
                expr = f'to_json("{f}")::text'
            else:
                # A fifth less rendering time than to_json, which looks the type up per call.
                # Escaping only backslash and quote is json.dumps's output for text without
                # control characters; text with them keeps them raw, which json.dumps never
                # writes, so it cannot match a stored hash and goes to event_hash. Either way
                # the rendering stays unambiguous.
                expr = "'\"' || " + _PG_QUOTE.format(f) + " || '\"'"
            parts.append(f"coalesce({expr}, 'null')")
        return "'[' || " + " || ',' || ".join(parts) + " || ']'"
    return None


def _python_hash(conn: Any, seq: int) -> str:
    row = conn.execute(select(*_COLUMNS).where(AuditEvent.seq == seq)).one()
    return event_hash(dict(zip(HASHED_FIELDS, row[:-1], strict=True)))


def _batches(conn: Any, batch: int, after: int = 0) -> Iterator[list[tuple[int, str, str, str]]]:
    """Yield batches of (seq, prev_hash, stored hash, recomputed hash) in seq order after a seq."""
    payload = _payload_sql(conn.dialect.name)
    if payload is None:
        while True:
            rows = conn.execute(
                select(*_COLUMNS)
                .where(AuditEvent.seq > after)
                .order_by(AuditEvent.seq)
                .limit(batch)
            ).all()
            if not rows:
                return
            yield [
                (r[0], r[16], r[17], event_hash(dict(zip(HASHED_FIELDS, r[:-1], strict=True))))
                for r in rows
            ]
            after = rows[-1][0]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"SELECT seq, prev_hash, hash, {payload} FROM audit_event "
        f"WHERE seq > {mark} ORDER BY seq LIMIT {int(batch)}"
    )
    # The raw DBAPI cursor of this session's connection: same transaction, no Row objects.
    with driver_errors(conn, sql):
        cur = conn.connection.cursor()
        sha = hashlib.sha256
        try:
            while True:
                cur.execute(sql, (after,))
                rows = cur.fetchall()
                if not rows:
                    return
                out = []
                for seq, prev_hash, stored, text in rows:
                    h = sha(text.encode()).hexdigest()
                    if h != stored:
                        h = _python_hash(conn, seq)
                    out.append((seq, prev_hash, stored, h))
                yield out
                after = rows[-1][0]
        finally:
            cur.close()


class _Walk:
    """Where the walk along the chain stands: the last good event and how many were good."""

    def __init__(self, last_seq: int = 0, prev: str = GENESIS_HASH) -> None:
        self.count = 0
        self.last_seq = last_seq
        self.prev = prev

    def broken(self, seq: int, problem: str) -> VerifyResult:
        """Return the result that names seq as the first bad event."""
        return VerifyResult(False, self.count, self.last_seq, self.prev, seq, problem)

    def check(self, rows: list[tuple[int, str, str, str]]) -> VerifyResult | None:
        """Walk rows of (seq, prev_hash, stored, recomputed hash); return the first break."""
        # Locals in the loop: on SQLite this loop is the cost of verify.
        count, last_seq, prev = self.count, self.last_seq, self.prev
        expected_seq = last_seq + 1
        bad: tuple[int, str] | None = None
        for seq, prev_hash, stored, h in rows:
            if seq != expected_seq:
                bad = (expected_seq, f"event {expected_seq} is missing")
                break
            if prev_hash != prev:
                bad = (seq, f"event {seq} does not follow event {seq - 1}")
                break
            if h != stored:
                bad = (seq, f"event {seq} was altered (hash mismatch)")
                break
            prev = h
            last_seq = seq
            expected_seq = seq + 1
            count += 1
        self.count, self.last_seq, self.prev = count, last_seq, prev
        return None if bad is None else self.broken(*bad)


def _check_head(conn: Any, walk: _Walk, head: tuple[int, str] | None = None) -> VerifyResult:
    """Return the verdict on a chain walked to its end without a break, given the head row."""
    if head is None:
        head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    head_seq, head_hash = head
    if head_seq != walk.last_seq or head_hash != walk.prev:
        # The head is written with every append: a chain shorter than the head lost its tail.
        return walk.broken(
            walk.last_seq + 1,
            f"the chain ends at event {walk.last_seq} but {head_seq} events were recorded",
        )
    return VerifyResult(True, walk.count, walk.last_seq, walk.prev)


def _pg_batch_sql(batch: int) -> str:
    """Return SQL that checks the next batch of events inside PostgreSQL and sums it up.

    One row comes back: the batch's event count, last seq, last hash, and whether any event
    fails the hash, the seq continuity or the link to the one before (the first against the
    carried %(after)s / %(prev)s). Nothing per event crosses the wire, so the server's rendering
    is the whole cost. A batch that fails is walked again by the exact path, which names the
    event and judges odd text by event_hash itself.
    """
    payload = _payload_sql("postgresql")
    return (
        "SELECT count(*), max(seq), min(hash) FILTER (WHERE is_last), coalesce(bool_or(bad), false)"
        " FROM (SELECT seq, hash, lead(seq) OVER w IS NULL AS is_last,"
        " seq <> lag(seq, 1, %(after)s::int) OVER w + 1"
        " OR prev_hash::text IS DISTINCT FROM lag(hash::text, 1, %(prev)s::text) OVER w"
        " OR h IS DISTINCT FROM hash::text AS bad"
        f" FROM (SELECT seq, prev_hash, hash, encode(sha256(convert_to({payload}, 'UTF8')), 'hex')"
        " AS h FROM audit_event WHERE seq > %(after)s AND seq <= %(until)s"
        f" ORDER BY seq LIMIT {int(batch)}) AS b WINDOW w AS (ORDER BY seq)) AS c"
    )


def _walk_in_postgres(
    conn: Any,
    batch: int,
    walk: _Walk,
    until: int,
    progress: Callable[[int], Any] | None,
    stop: threading.Event | None = None,
) -> VerifyResult | None:
    """Walk the chain up to seq until, PostgreSQL checking each batch; return the first break."""
    sql = _pg_batch_sql(batch)
    with driver_errors(conn, sql):
        cur = conn.connection.cursor()
        try:
            while stop is None or not stop.is_set():
                cur.execute(sql, {"after": walk.last_seq, "prev": walk.prev, "until": until})
                n, last_seq, last_hash, bad = cur.fetchone()
                if n == 0:
                    return None
                if bad:
                    # Re-walk the batch exactly: it names the first bad event with its problem, and
                    # a row the SQL renders differently from Python is judged by event_hash alone.
                    exact = _batches(conn, batch, walk.last_seq)
                    rows = [r for r in next(exact, []) if r[0] <= until]
                    exact.close()
                    broken = walk.check(rows)
                    if broken is not None or not rows:
                        # No rows: deleted since the statement before (a read-committed walk); the
                        # chain ends here and the head judges it.
                        return broken
                    n = len(rows)
                else:
                    walk.count += n
                    walk.last_seq = last_seq
                    walk.prev = last_hash
                if progress is not None:
                    progress(n)
            return None
        finally:
            cur.close()


_POOL_HEADROOM = 4


def _snapshot_helpers(conn: Any) -> list[Any] | None:
    """Open two connections that see exactly what conn's transaction sees now, or return None."""
    if conn.in_nested_transaction():
        return None  # a savepoint cannot export its snapshot (and the error would abort it)
    if spare_connections(conn.engine) < 2 + _POOL_HEADROOM:
        return None  # never wait for the pool (nor starve requests): walk on one connection
    # Another session cannot see this transaction's own writes, and a standby exports nothing.
    snapshot = conn.exec_driver_sql(
        "SELECT CASE WHEN txid_current_if_assigned() IS NULL AND NOT pg_is_in_recovery()"
        " THEN pg_export_snapshot() END"
    ).scalar()
    if snapshot is None:
        return None
    helpers: list[Any] = []
    try:
        for _ in range(2):
            helper = conn.engine.connect()
            helpers.append(helper)
            helper.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            quoted = snapshot.replace("'", "''")
            helper.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{quoted}'")
    except SQLAlchemyError:
        # No spare connection (or the server refused the snapshot): walk on one connection.
        for helper in helpers:
            helper.close()
        return None
    return helpers


def _verify_split(first_conn: Any, second_conn: Any, batch: int, progress: Any) -> VerifyResult:
    """Walk the chain's two halves at once, one per connection and thread; return the verdict.

    Rendering the payloads keeps one backend busy at about 150,000 events a second on the bench
    machine; two backends on two cores check about twice as many. Both connections share one
    snapshot, so the halves and the head are one consistent chain.
    """
    last = first_conn.execute(select(func.max(AuditEvent.seq))).scalar() or 0
    mid = last // 2
    start = first_conn.execute(
        select(AuditEvent.seq, AuditEvent.hash)
        .where(AuditEvent.seq <= mid)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()
    first = _Walk()
    # The second half goes on from the last event of the first as stored; that is where the
    # first half's walk ends whenever its result is used (it has no break).
    second = _Walk(*start) if start is not None else _Walk()
    reports: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    results: dict[str, Any] = {}

    def run(name: str, conn: Any, walk: _Walk, until: int) -> None:
        try:
            results[name] = _walk_in_postgres(conn, batch, walk, until, reports.put, stop)
            if name == "first" and results[name] is not None:
                stop.set()  # the second half cannot change the verdict any more
        except BaseException as exc:  # re-raised in the calling thread
            results[name] = exc
            stop.set()
        finally:
            reports.put(None)

    threads = [
        threading.Thread(target=run, args=("first", first_conn, first, mid), daemon=True),
        threading.Thread(target=run, args=("second", second_conn, second, _MAX_SEQ), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        # Progress is reported from this thread, as callers (a progress bar) expect.
        running = len(threads)
        while running:
            n = reports.get()
            if n is None:
                running -= 1
            elif progress is not None:
                progress(n)
    except BaseException:
        stop.set()
        raise
    finally:
        for t in threads:
            t.join()
    for outcome in results.values():
        if isinstance(outcome, BaseException):
            raise outcome
    if results["first"] is not None:
        return results["first"]
    if results["second"] is not None:
        broken = results["second"]
        broken.events += first.count
        return broken
    second.count += first.count
    return _check_head(first_conn, second)


# The head row and the newest event, read by one statement: one snapshot even in READ COMMITTED.
_HEAD_AND_TOP = select(
    AuditHead.seq, AuditHead.hash, select(func.max(AuditEvent.seq)).scalar_subquery()
).where(AuditHead.id == 1)


_CATCH_UP_ROUNDS = 100


def _verify_read_committed(conn: Any, batch: int, progress: Any) -> VerifyResult:
    """Walk the chain on conn alone, where every statement may see newer commits.

    Benches keep appending while QA verifies: an event committed after the walk's last batch
    moves the head past the walk's end. That is no lost tail when the newest event is the head
    (they commit together), so the walk goes on to it; judged against a head it has not
    reached, verify would report tampering that never happened.
    """
    walk = _Walk()
    for _ in range(_CATCH_UP_ROUNDS):
        broken = _walk_in_postgres(conn, batch, walk, _MAX_SEQ, progress)
        if broken is not None:
            return broken
        head_seq, head_hash, top = conn.execute(_HEAD_AND_TOP).one()
        if not (head_seq > walk.last_seq and top == head_seq):
            return _check_head(conn, walk, (head_seq, head_hash))
    # Appends never stopped: what was walked verified, up to its own end.
    return VerifyResult(True, walk.count, walk.last_seq, walk.prev)


def _verify_postgres(conn: Any, batch: int, progress: Any) -> VerifyResult:
    """Verify the chain with PostgreSQL checking the batches; return the verdict."""
    last = conn.execute(select(func.max(AuditEvent.seq))).scalar() or 0
    helpers = _snapshot_helpers(conn) if last >= 2 * batch else None
    if helpers is None:
        return _verify_read_committed(conn, batch, progress)
    try:
        return _verify_split(helpers[0], helpers[1], batch, progress)
    finally:
        for helper in helpers:
            helper.close()


def verify(session: Session, *, batch: int = 10000, progress=None) -> VerifyResult:  # noqa: ANN001
    """Recompute the whole chain and name the first seq where it breaks."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return _verify_postgres(conn, batch, progress)
    walk = _Walk()
    for rows in _batches(conn, batch):
        broken = walk.check(rows)
        if broken is not None:
            return broken
        if progress is not None:
            progress(len(rows))
    return _check_head(conn, walk)


def count_events(session: Session, **filters: Any) -> int:
    """Return the number of events in the trail, or of those matching query()'s filters."""
    if not filters:
        stmt = select(func.count()).select_from(AuditEvent)
    else:
        seq_from, seq_before = seq_range(
            session, filters.pop("since", None), filters.pop("until", None)
        )
        matching = query_statement(
            columns=(AuditEvent.seq,), seq_from=seq_from, seq_before=seq_before, **filters
        ).limit(None)
        stmt = select(func.count()).select_from(matching.order_by(None).subquery())
    return session.connection().execute(stmt).scalar_one()


def event_dict(ev: AuditEvent | Any) -> dict[str, Any]:
    """Return an event as JSON (before/after parsed)."""
    return {
        "seq": ev.seq,
        "ts": ts_text(ev.ts),
        "actor": ev.actor,
        "action": ev.action,
        "entity_type": ev.entity_type,
        "entity_id": ev.entity_id,
        "before": json.loads(ev.before) if ev.before else None,
        "after": json.loads(ev.after) if ev.after else None,
        "reason": ev.reason,
        "station": ev.station,
        "device": ev.device,
        "signature_id": ev.signature_id,
        "corrects_seq": ev.corrects_seq,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
    }


def query(
    session: Session,
    *,
    entity_type: str | None = None,
    entity_ids: list[str] | None = None,
    entities: list[tuple[str, list[str]]] | None = None,
    lot_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    station: str | None = None,
    location_id: int | None = None,
    org_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Return events matching every given filter, oldest first, after the cursor seq."""
    seq_from, seq_before = seq_range(session, since, until)
    stmt = query_statement(
        entity_type=entity_type,
        entity_ids=entity_ids,
        entities=entities,
        lot_id=lot_id,
        actor=actor,
        action=action,
        station=station,
        location_id=location_id,
        org_id=org_id,
        seq_from=seq_from,
        seq_before=seq_before,
        after_seq=after_seq,
        limit=limit,
    )
    return list(session.exec(stmt).all())


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def seq_range(
    session: Session, since: datetime | None, until: datetime | None
) -> tuple[int | None, int | None]:
    """Turn [since, until) into the seq range [from, before) that holds exactly those events.

    Times never decrease along the chain (record() keeps them so), so the events of a time range
    are a contiguous seq range: two index probes on (ts, seq) find it, and every other filter
    then walks its own (column, seq) index within that range, in seq order, with no sort.
    """
    conn = session.connection()

    def first_at_or_after(t: datetime) -> int | None:
        return conn.execute(
            select(AuditEvent.seq)
            .where(AuditEvent.ts >= _utc(t))
            .order_by(AuditEvent.ts, AuditEvent.seq)
            .limit(1)
        ).scalar()

    lo = hi = None
    if since is not None:
        lo = first_at_or_after(since)
        if lo is None:
            return _EMPTY, _EMPTY  # nothing happened since then
    if until is not None:
        hi = first_at_or_after(until)
    return lo, hi


# seq is a 32-bit integer column: bounds beyond it are clamped (PostgreSQL refuses the cast).
_MAX_SEQ = 2**31 - 1
_EMPTY = _MAX_SEQ  # seq >= _EMPTY AND seq < _EMPTY: nothing


def query_statement(
    *,
    entity_type: str | None = None,
    entity_ids: list[str] | None = None,
    entities: list[tuple[str, list[str]]] | None = None,
    lot_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    station: str | None = None,
    location_id: int | None = None,
    org_id: int | None = None,
    seq_from: int | None = None,
    seq_before: int | None = None,
    after_seq: int | None = None,
    limit: int = 100,
    columns: tuple = (),
) -> Any:
    """Build the SELECT of query() (the bench and EXPLAIN use it as is).

    entities: (entity_type, ids) pairs, any of which an event may match (a sample's lineage
    and the print jobs that labelled it).
    """
    stmt = sm_select(AuditEvent) if not columns else select(*columns)
    if entity_type is not None:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    if entity_ids is not None:
        stmt = stmt.where(AuditEvent.entity_id.in_(entity_ids))
    if entities is not None:
        stmt = stmt.where(
            or_(
                false(),
                *(
                    and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_(ids))
                    for kind, ids in entities
                    if ids
                ),
            )
        )
    if lot_id is not None:
        stmt = stmt.where(AuditEvent.lot_id == lot_id)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if station is not None:
        stmt = stmt.where(AuditEvent.station == station)
    if location_id is not None:
        stmt = stmt.where(AuditEvent.location_id == location_id)
    if org_id is not None:
        stmt = stmt.where(AuditEvent.org_id == org_id)
    if seq_from is not None:
        stmt = stmt.where(AuditEvent.seq >= min(seq_from, _MAX_SEQ))
    if seq_before is not None:
        stmt = stmt.where(AuditEvent.seq < min(seq_before, _MAX_SEQ))
    if after_seq is not None:
        stmt = stmt.where(AuditEvent.seq > min(after_seq, _MAX_SEQ))
    return stmt.order_by(AuditEvent.seq).limit(limit)


def iter_events(session: Session, *, batch: int = 2000, **filters: Any) -> Iterator[AuditEvent]:
    """Yield every matching event in seq order, a batch at a time (constant memory)."""
    after = filters.pop("after_seq", None)
    while True:
        rows = query(session, after_seq=after, limit=batch, **filters)
        if not rows:
            return
        yield from rows
        after = rows[-1].seq
        session.expunge_all()


def ts_text_column(dialect: str) -> Any:
    """Return a column expression giving ts as ts_text() does, rendered by the database."""
    if dialect == "sqlite":
        # SQLAlchemy stores SQLite times as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC).
        expr = "substr(ts, 1, 10) || 'T' || substr(ts, 12) || 'Z'"
    elif dialect == "postgresql":
        expr = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    else:
        return None
    return literal_column(expr, type_=String).label("ts_text")


def iter_rows(
    session: Session, *, columns: tuple, batch: int = 5000, **filters: Any
) -> Iterator[list[Any]]:
    """Yield batches of rows (seq, *columns) of matching events in seq order (constant memory).

    Plain rows, no ORM objects: exports read millions of events this way.
    """
    after = filters.pop("after_seq", None)
    seq_from, seq_before = seq_range(
        session, filters.pop("since", None), filters.pop("until", None)
    )
    conn = session.connection()
    while True:
        stmt = query_statement(
            columns=(AuditEvent.seq, *columns),
            seq_from=seq_from,
            seq_before=seq_before,
            after_seq=after,
            limit=batch,
            **filters,
        )
        rows = conn.execute(stmt).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]
