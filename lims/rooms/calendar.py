"""The week view of bookings, per room or per client organisation (what the pages render)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, select

from lims.accounts.users import Actor
from lims.models import Location, Organisation
from lims.rooms import bookings, status
from lims.rooms.models import Booking


def now() -> datetime:
    """Return the current time (UTC)."""
    return datetime.now(UTC)


def week_start(day: date | None) -> date:
    """Return the Monday of the week holding day (today's week when None)."""
    day = day or datetime.now(UTC).date()
    return day - timedelta(days=day.weekday())


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def week(
    session: Session,
    actor: Actor,
    *,
    monday: date,
    room: Location | None = None,
    organisation: Organisation | None = None,
) -> dict[str, Any]:
    """Return the week's bookings the actor may see, by room and day.

    A client sees other organisations' held time in a room only as 'taken' (no number, no
    name), so it can pick a free slot without learning who else rents the room.
    """
    start = datetime.combine(monday, time(), tzinfo=UTC)
    end = start + timedelta(days=7)
    stmt = (
        select(Booking)
        .where(
            Booking.starts_at < end,
            Booking.starts_at > start - bookings.REACH,
            # The held time runs to the end plus changeover: a booking ending last week can
            # still hold Monday morning.
            Booking.ends_at > start - timedelta(minutes=bookings.MAX_CHANGEOVER_MIN),
            col(Booking.state).in_(bookings.HOLDING),
        )
        .order_by(Booking.starts_at, Booking.id)
    )
    if room is not None:
        stmt = stmt.where(Booking.room_id == room.id)
    if organisation is not None:
        stmt = stmt.where(Booking.org_id == organisation.id)
    elif not actor.sees_all and room is None:
        stmt = stmt.where(Booking.org_id == actor.org.id)
    rows: dict[int, list[list[dict[str, Any]]]] = {}
    names = {o.id: o.name for o in session.exec(select(Organisation)).all()}
    for b in session.exec(stmt).all():
        until = bookings.blocked_until(b)
        if until <= start:
            continue
        mine = actor.can_see(b.org_id)
        cells = rows.setdefault(b.room_id, [[] for _ in range(7)])
        b_start, b_end = _aware(b.starts_at), _aware(b.ends_at)
        for i in range(7):
            d0 = start + timedelta(days=i)
            d1 = d0 + timedelta(days=1)
            if b_start < d1 and until > d0:
                cells[i].append(
                    {
                        "number": b.number if mine else None,
                        "organisation": names.get(b.org_id) if mine else None,
                        "state": b.state if mine else "taken",
                        "from": max(b_start, d0).strftime("%H:%M"),
                        "to": "24:00" if b_end >= d1 else max(b_end, d0).strftime("%H:%M"),
                        "changeover_to": None
                        if until <= b_end or until <= d0
                        else ("24:00" if until >= d1 else until.strftime("%H:%M")),
                        "in_changeover": b_end <= d0,
                    }
                )
    rooms = [room] if room is not None else status.list_rooms(session)
    return {
        "monday": monday,
        "days": [monday + timedelta(days=i) for i in range(7)],
        "previous": monday - timedelta(days=7),
        "next": monday + timedelta(days=7),
        "rows": [
            {"room": r.code, "name": r.name, "grade": r.grade, "cells": rows.get(r.id)}
            for r in rooms
            if room is not None or r.id in rows
        ],
    }
