"""Append-only, hash-chained audit trail: record(), verify() and the QA queries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlmodel import Session
from sqlmodel import select as sm_select

from lims.models import AuditEvent, AuditHead, utcnow

GENESIS_HASH = "0" * 64
# Any constant works: every writer of the chain takes this one PostgreSQL advisory lock.
_PG_AUDIT_LOCK = 0x4C494D53  # "LIMS"

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
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # Serialise appends so the chain never forks; released at commit or rollback.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_AUDIT_LOCK})")
    # On SQLite the writer already holds the database write lock (BEGIN IMMEDIATE).
    head_seq, head_hash = conn.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
    ).one()
    fields: dict[str, Any] = {
        "seq": head_seq + 1,
        "ts": utcnow(),
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
    conn.execute(insert(AuditEvent).values(**fields))
    conn.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=fields["seq"], hash=fields["hash"])
    )
    return fields


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


def verify(session: Session, *, batch: int = 5000, progress=None) -> VerifyResult:  # noqa: ANN001
    """Recompute the whole chain and name the first seq where it breaks."""
    conn = session.connection()
    expected_seq = 1
    prev = GENESIS_HASH
    count = 0
    last_seq = 0
    while True:
        rows = conn.execute(
            select(*_COLUMNS)
            .where(AuditEvent.seq >= expected_seq)
            .order_by(AuditEvent.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            fields = dict(zip(HASHED_FIELDS, row[:-1], strict=True))
            seq = fields["seq"]
            if seq != expected_seq:
                return VerifyResult(
                    False, count, last_seq, prev, expected_seq, f"event {expected_seq} is missing"
                )
            if fields["prev_hash"] != prev:
                return VerifyResult(
                    False,
                    count,
                    last_seq,
                    prev,
                    seq,
                    f"event {seq} does not follow event {seq - 1}",
                )
            h = event_hash(fields)
            if h != row[-1]:
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
    stmt = sm_select(AuditEvent)
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
    if since is not None:
        stmt = stmt.where(AuditEvent.ts >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.ts < until)
    if after_seq is not None:
        stmt = stmt.where(AuditEvent.seq > after_seq)
    stmt = stmt.order_by(AuditEvent.seq).limit(limit)
    return list(session.exec(stmt).all())


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
