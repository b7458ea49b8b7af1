"""The QA queries on the trail: filters, cursor paging, counts and plain-row batches for exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import String, and_, false, func, literal_column, or_, select, text
from sqlmodel import Session
from sqlmodel import select as sm_select

from lims.audit.chain import MAX_SEQ, ts_text
from lims.models import AuditEvent, User


class Match(TypedDict, total=False):
    """What an event must match: every filter given (a None filter is not given)."""

    entity_type: str | None
    entity_ids: list[str] | None
    # (entity_type, ids) pairs, any of which an event may match (a sample's lineage and the
    # print jobs that labelled it).
    entities: list[tuple[str, list[str]]] | None
    lot_id: int | None
    actor: str | None
    actors: list[str] | None  # any of these usernames (a search by name found them)
    action: str | None
    station: str | None
    location_id: int | None
    org_id: int | None


class Filters(Match, total=False):
    """Match, within the time range [since, until)."""

    since: datetime | None
    until: datetime | None


# Declaration order is the order of the WHERE clauses.
_MATCH_NAMES_IN_ORDER = tuple(Match.__annotations__)
_MATCH_NAMES = frozenset(_MATCH_NAMES_IN_ORDER)


def count_events(session: Session, *, cap: int | None = None, **filters: Unpack[Filters]) -> int:
    """Return the number of events in the trail, or of those matching query()'s filters.

    With cap: count no further than cap + 1 (a page says "more than cap"; a trail of millions
    is not read to the end for a number on a screen).
    """
    if not filters and cap is None:
        stmt = select(func.count()).select_from(AuditEvent)
    else:
        seq_from, seq_before = seq_range(
            session, filters.pop("since", None), filters.pop("until", None)
        )
        matching = query_statement(
            columns=(AuditEvent.seq,), seq_from=seq_from, seq_before=seq_before, **filters
        ).limit(None if cap is None else cap + 1)
        stmt = select(func.count()).select_from(matching.order_by(None).subquery())
    return session.connection().execute(stmt).scalar_one()


def actions_in_trail(session: Session) -> list[str]:
    """Return every action the trail holds, in order: one index probe per action.

    A loose index scan on (action, seq), so that a trail of millions answers as fast as a new
    one (SELECT DISTINCT would read the whole index on PostgreSQL).
    """
    sql = text(
        "WITH RECURSIVE t(a) AS ("
        " SELECT MIN(action) FROM audit_event"
        " UNION ALL"
        " SELECT (SELECT MIN(action) FROM audit_event WHERE action > t.a) FROM t"
        " WHERE t.a IS NOT NULL"
        ") SELECT a FROM t WHERE a IS NOT NULL"
    )
    return [row[0] for row in session.connection().execute(sql)]


def actors_named(
    session: Session, name: str, *, org_ids: list[int] | None = None, limit: int = 50
) -> list[tuple[str, str]]:
    """Return (username, full name) of the users whose username or full name holds name.

    Case is ignored. org_ids: only users of these organisations (what a client may know).
    """
    like = "%" + name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = select(User.username, User.full_name).where(
        or_(
            func.lower(User.username).like(like, escape="\\"),
            func.lower(User.full_name).like(like, escape="\\"),
        )
    )
    if org_ids is not None:
        stmt = stmt.where(User.org_id.in_(org_ids))
    rows = session.connection().execute(stmt.order_by(User.username).limit(limit)).all()
    return [(r[0], r[1]) for r in rows]


def full_names(session: Session) -> dict[str, str]:
    """Return username -> full name of every user (a few hundred rows: read once per export)."""
    rows = session.connection().execute(select(User.username, User.full_name)).all()
    return {r[0]: r[1] for r in rows}


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
    after_seq: int | None = None,
    before_seq: int | None = None,
    newest_first: bool = False,
    limit: int = 100,
    **filters: Unpack[Filters],
) -> list[AuditEvent]:
    """Return events matching every given filter, oldest first, after the cursor seq.

    newest_first: newest first instead; before_seq: only events older than that seq.
    """
    since, until = filters.pop("since", None), filters.pop("until", None)
    seq_from, seq_before = seq_range(session, since, until)
    if before_seq is not None:
        seq_before = before_seq if seq_before is None else min(seq_before, before_seq)
    stmt = query_statement(
        seq_from=seq_from,
        seq_before=seq_before,
        after_seq=after_seq,
        limit=limit,
        newest_first=newest_first,
        **filters,
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
            return MAX_SEQ, MAX_SEQ  # seq >= MAX AND seq < MAX: nothing happened since then
    if until is not None:
        hi = first_at_or_after(until)
    return lo, hi


def query_statement(
    *,
    seq_from: int | None = None,
    seq_before: int | None = None,
    after_seq: int | None = None,
    limit: int = 100,
    columns: tuple = (),
    newest_first: bool = False,
    **match: Unpack[Match],
) -> Any:
    """Build the SELECT of query() over the seq range [seq_from, seq_before)."""
    unknown = match.keys() - _MATCH_NAMES
    if unknown:
        # A mistyped filter must not quietly widen a QA query to the whole trail.
        raise TypeError(f"unknown audit filter(s): {', '.join(sorted(unknown))}")
    stmt = sm_select(AuditEvent) if not columns else select(*columns)
    for name in _MATCH_NAMES_IN_ORDER:
        value = match.get(name)
        if value is None:
            continue
        if name == "entity_ids":
            stmt = stmt.where(AuditEvent.entity_id.in_(value))
        elif name == "actors":
            stmt = stmt.where(AuditEvent.actor.in_(value))
        elif name == "entities":
            stmt = stmt.where(
                or_(
                    false(),
                    *(
                        and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_(ids))
                        for kind, ids in value
                        if ids
                    ),
                )
            )
        else:
            stmt = stmt.where(getattr(AuditEvent, name) == value)
    if seq_from is not None:
        stmt = stmt.where(AuditEvent.seq >= min(seq_from, MAX_SEQ))
    if seq_before is not None:
        stmt = stmt.where(AuditEvent.seq < min(seq_before, MAX_SEQ))
    if after_seq is not None:
        stmt = stmt.where(AuditEvent.seq > min(after_seq, MAX_SEQ))
    return stmt.order_by(AuditEvent.seq.desc() if newest_first else AuditEvent.seq).limit(limit)


# Columns the audit list may be sorted by besides time (seq order is query()'s own); each is
# a tuple read left to right. Who, action and record walk their (column.., seq) indexes; where
# (a station may be empty) sorts the matching events.
AUDIT_SORTS: dict[str, tuple[Any, ...]] = {
    "actor": (AuditEvent.actor,),
    "action": (AuditEvent.action,),
    "record": (AuditEvent.entity_type, AuditEvent.entity_id),
    "station": (func.coalesce(AuditEvent.station, ""),),
}


def _after(keys: tuple[Any, ...], values: tuple[Any, ...], down: bool) -> Any:
    """Return the condition "(keys) come after values" in the reading order (a keyset)."""
    head, value = keys[0], values[0]
    beyond = head < value if down else head > value
    if len(keys) == 1:
        return beyond
    return or_(beyond, and_(head == value, _after(keys[1:], values[1:], down)))


def query_sorted(
    session: Session,
    *,
    sort: str,
    down: bool = False,
    edge_seq: int | None = None,
    limit: int = 100,
    **filters: Unpack[Filters],
) -> list[AuditEvent]:
    """Return matching events ordered by a sort of AUDIT_SORTS, then seq, after edge_seq.

    down: read the order descending. edge_seq: the event the previous page ended on (its values
    of the columns and its seq place the page; no OFFSET).
    """
    keys = (*AUDIT_SORTS[sort], AuditEvent.seq)
    seq_from, seq_before = seq_range(
        session, filters.pop("since", None), filters.pop("until", None)
    )
    stmt = query_statement(seq_from=seq_from, seq_before=seq_before, **filters)
    stmt = stmt.order_by(None).limit(None)
    if edge_seq is not None:
        found = session.exec(select(*keys).where(AuditEvent.seq == edge_seq)).first()
        if found is None:
            return []
        stmt = stmt.where(_after(keys, tuple(found), down))
    order = [k.desc() if down else k.asc() for k in keys]
    return list(session.exec(stmt.order_by(*order).limit(limit)).all())


def iter_events(
    session: Session, *, batch: int = 2000, after_seq: int | None = None, **filters: Unpack[Filters]
) -> Iterator[AuditEvent]:
    """Yield every matching event in seq order, a batch at a time (constant memory)."""
    after = after_seq
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
    session: Session,
    *,
    columns: tuple,
    batch: int = 5000,
    after_seq: int | None = None,
    **filters: Unpack[Filters],
) -> Iterator[list[Any]]:
    """Yield batches of rows (seq, *columns) of matching events in seq order (constant memory).

    Plain rows, no ORM objects: exports read millions of events this way.
    """
    after = after_seq
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


def _lineage_parts(
    *,
    lot_id: int,
    print_jobs: list[str],
    org_id: int | None,
    columns: tuple,
    skip_actions: tuple[str, ...] = (),
) -> list[Any]:
    """Return the SELECTs whose union is a lot's lineage, each walking one index in seq order.

    Every event of the lot, its vials and their descendants carries the lot's id (one probe of
    (lot_id, seq)); a print job that labelled tubes of several lots carries none, so the jobs
    that labelled the lineage are added by (entity_type, entity_id, seq). Two statements, not
    one OR: each reads its own index backwards and stops at the page's limit.
    """
    base = sm_select(AuditEvent) if not columns else select(*columns)
    own = base.where(AuditEvent.lot_id == lot_id)
    parts = [own]
    if print_jobs:
        parts.append(
            base.where(
                AuditEvent.entity_type == "print_job",
                AuditEvent.entity_id.in_(print_jobs),
                or_(AuditEvent.lot_id.is_(None), AuditEvent.lot_id != lot_id),
            )
        )
    out = []
    for stmt in parts:
        if org_id is not None:
            stmt = stmt.where(AuditEvent.org_id == org_id)
        if skip_actions:
            stmt = stmt.where(AuditEvent.action.not_in(skip_actions))
        out.append(stmt)
    return out


def lineage_events(
    session: Session,
    *,
    lot_id: int,
    print_jobs: list[str],
    org_id: int | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Return the events of a lot's lineage, newest first, before the cursor seq."""
    rows: list[AuditEvent] = []
    for stmt in _lineage_parts(lot_id=lot_id, print_jobs=print_jobs, org_id=org_id, columns=()):
        if before_seq is not None:
            stmt = stmt.where(AuditEvent.seq < min(before_seq, MAX_SEQ))
        rows += session.exec(stmt.order_by(AuditEvent.seq.desc()).limit(limit)).all()
    rows.sort(key=lambda e: e.seq, reverse=True)
    return rows[:limit]


def lineage_newest_seq(
    session: Session,
    *,
    lot_id: int,
    print_jobs: list[str],
    skip_actions: tuple[str, ...] = (),
) -> int | None:
    """Return the seq of the newest event of a lot's lineage (None: it has none)."""
    conn = session.connection()
    newest = None
    for stmt in _lineage_parts(
        lot_id=lot_id,
        print_jobs=print_jobs,
        org_id=None,
        columns=(AuditEvent.seq,),
        skip_actions=skip_actions,
    ):
        seq = conn.execute(stmt.order_by(AuditEvent.seq.desc()).limit(1)).scalar()
        if seq is not None and (newest is None or seq > newest):
            newest = seq
    return newest


def lineage_count_after(
    session: Session,
    *,
    lot_id: int,
    print_jobs: list[str],
    after_seq: int,
    skip_actions: tuple[str, ...] = (),
) -> int:
    """Return how many events of a lot's lineage came after seq after_seq."""
    conn = session.connection()
    total = 0
    for stmt in _lineage_parts(
        lot_id=lot_id,
        print_jobs=print_jobs,
        org_id=None,
        columns=(AuditEvent.seq,),
        skip_actions=skip_actions,
    ):
        newer = stmt.where(AuditEvent.seq > min(after_seq, MAX_SEQ)).subquery()
        total += conn.execute(select(func.count()).select_from(newer)).scalar_one()
    return total
