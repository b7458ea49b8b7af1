"""Append-only, hash-chained audit trail: record(), verify() and the QA queries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, event, func, literal_column, select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session
from sqlmodel import select as sm_select

from lims.db import driver_connection, driver_sql, from_db_time, to_db_time
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
# Written for the driver (see lims.db.driver_connection): the append runs on every change.
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
    dbapi, dialect = driver_connection(session)
    head_seq, head_hash, last_ts = _read_head(session, dbapi, dialect)
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
        dbapi.execute(driver_sql(dialect, _APPEND_SQL_PG), (*row, *head))
    else:
        dbapi.execute(_INSERT_SQL, row)
        dbapi.execute(_HEAD_UPDATE_SQL, head)
    session.info[_HEAD_KEY] = (session.get_transaction(), (fields["seq"], fields["hash"], now))
    return fields


_HEAD_KEY = "lims_audit_head"


def _read_head(session: Session, dbapi: Any, dialect: str) -> tuple[int, str, datetime | None]:
    """Return the chain head, locking it for this transaction on first use."""
    cached = session.info.get(_HEAD_KEY)
    if cached is not None and cached[0] is session.get_transaction():
        # This transaction holds the lock and wrote the head itself: no need to read it again
        # (a many-sample request appends dozens of events).
        return cached[1]
    if dialect == "postgresql":
        # Serialise appends so the chain never forks: the head row's lock is held until commit
        # or rollback, and a waiting writer then reads the new head (one round trip).
        row = dbapi.execute(_HEAD_SELECT_SQL + " FOR UPDATE").fetchone()
    else:
        # On SQLite the writer already holds the database write lock (BEGIN IMMEDIATE).
        row = dbapi.execute(_HEAD_SELECT_SQL).fetchone()
    return row[0], row[1], from_db_time(row[2])


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


def _payload_sql(dialect: str) -> str | None:
    """Return SQL that renders event_hash's JSON payload of a row, or None for other engines.

    The database renders the payload (escaping as json.dumps does, ensure_ascii off) so Python
    only hashes one string per event instead of building 18 objects and a JSON array. A payload
    that differs from Python's in any byte cannot match the stored hash, and every mismatch is
    recomputed by event_hash itself: the result is exactly the one of the pure-Python check.
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
                expr = (
                    "to_json(to_char(ts AT TIME ZONE 'UTC', "
                    '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'))::text'
                )
            elif f in _INT_FIELDS:
                expr = f'"{f}"::text'
            else:
                expr = f'to_json("{f}")::text'
            parts.append(f"coalesce({expr}, 'null')")
        return "'[' || " + " || ',' || ".join(parts) + " || ']'"
    return None


def _python_hash(conn: Any, seq: int) -> str:
    row = conn.execute(select(*_COLUMNS).where(AuditEvent.seq == seq)).one()
    return event_hash(dict(zip(HASHED_FIELDS, row[:-1], strict=True)))


def _batches(conn: Any, batch: int) -> Iterator[list[tuple[int, str, str, str]]]:
    """Yield batches of (seq, prev_hash, stored hash, recomputed hash) in seq order."""
    payload = _payload_sql(conn.dialect.name)
    after = 0
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


def verify(session: Session, *, batch: int = 10000, progress=None) -> VerifyResult:  # noqa: ANN001
    """Recompute the whole chain and name the first seq where it breaks."""
    conn = session.connection()
    expected_seq = 1
    prev = GENESIS_HASH
    count = 0
    last_seq = 0
    for rows in _batches(conn, batch):
        for seq, prev_hash, stored, h in rows:
            if seq != expected_seq:
                return VerifyResult(
                    False, count, last_seq, prev, expected_seq, f"event {expected_seq} is missing"
                )
            if prev_hash != prev:
                return VerifyResult(
                    False,
                    count,
                    last_seq,
                    prev,
                    seq,
                    f"event {seq} does not follow event {seq - 1}",
                )
            if h != stored:
                return VerifyResult(
                    False, count, last_seq, prev, seq, f"event {seq} was altered (hash mismatch)"
                )
            prev = h
            last_seq = seq
            expected_seq = seq + 1
            count += 1
        if progress is not None:
            progress(len(rows))
    head_seq, head_hash = conn.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
    ).one()
    if head_seq != last_seq or head_hash != prev:
        # The head is written with every append: a chain shorter than the head lost its tail.
        return VerifyResult(
            False,
            count,
            last_seq,
            prev,
            last_seq + 1,
            f"the chain ends at event {last_seq} but {head_seq} events were recorded",
        )
    return VerifyResult(True, count, last_seq, prev)


def count_events(session: Session) -> int:
    """Return the number of events in the trail."""
    return session.connection().execute(select(func.count()).select_from(AuditEvent)).scalar_one()


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
    """Build the SELECT of query() (the bench and EXPLAIN use it as is)."""
    stmt = sm_select(AuditEvent) if not columns else select(*columns)
    if entity_type is not None:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    if entity_ids is not None:
        stmt = stmt.where(AuditEvent.entity_id.in_(entity_ids))
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
