"""The hash chain: canonical JSON, the event hash, and appending under the chain head's lock."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from lims.db import dialect_name, driver_execute, from_db_time, to_db_time
from lims.inputs import blank
from lims.models import utcnow

GENESIS_HASH = "0" * 64
# seq is a 32-bit integer column: bounds beyond it are clamped (PostgreSQL refuses the cast).
MAX_SEQ = 2**31 - 1

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
        # A reason of only spaces says nothing: every record keeps it as none, not each caller.
        "reason": None if blank(reason) else reason,
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


class Acting(Protocol):
    """Who acts, as lims.accounts.users.Actor says it (the trail needs no more of it)."""

    @property
    def username(self) -> str: ...
    @property
    def station(self) -> str | None: ...
    @property
    def device(self) -> str | None: ...


def record_by(
    session: Session,
    actor: Acting,
    *,
    action: str,
    entity_type: str,
    entity_id: str,
    **fields: Any,
) -> dict[str, Any]:
    """Append an event done by actor: its username, and the station and device it acted from.

    fields are record()'s other arguments; a station or device given there wins over the actor's.
    """
    fields.setdefault("station", actor.station)
    fields.setdefault("device", actor.device)
    return record(
        session,
        actor=actor.username,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        **fields,
    )


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
