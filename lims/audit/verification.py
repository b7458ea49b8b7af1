"""Chain verification: recompute every event's hash, in Python on SQLite and inside PostgreSQL."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from lims.audit import checkpoint
from lims.audit.chain import GENESIS_HASH, HASHED_FIELDS, MAX_SEQ, event_hash
from lims.db import driver_errors, spare_connections
from lims.models import AuditEvent, AuditHead


@dataclass
class VerifyResult:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    # The checkpoint the chain was judged against (Checkpoint.to_dict), None if there is none.
    checkpoint: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "ok": self.ok,
            "events": self.events,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "checkpoint": self.checkpoint,
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
        threading.Thread(target=run, args=("second", second_conn, second, MAX_SEQ), daemon=True),
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
        broken = _walk_in_postgres(conn, batch, walk, MAX_SEQ, progress)
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


def verify(
    session: Session,
    *,
    batch: int = 10000,
    progress=None,  # noqa: ANN001
    checkpoints: bool = True,
) -> VerifyResult:
    """Recompute the whole chain and name the first seq where it breaks.

    With checkpoints (and a checkpoint store attached to the session's engine), the chain must
    also hold the newest signed checkpoint: a cut tail or a rewritten chain names its seq.
    """
    result = _verify_chain(session, batch, progress)
    store = checkpoint.store_for(session) if checkpoints else None
    return result if store is None else checkpoint.check(session, result, store)


def _verify_chain(session: Session, batch: int, progress: Any) -> VerifyResult:
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
