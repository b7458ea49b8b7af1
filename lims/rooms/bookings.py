"""Room bookings by client organisations: request, approval by the centre, no overlaps.

A booking holds its room from its start to its end plus its changeover (the time the centre
needs to clean the room and sign its line clearance before the next client). Requested and
approved bookings both hold the time: two clients never wait for the same slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from lims import audit
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text, blank
from lims.models import Counter, Location, Organisation, User, utcnow
from lims.roles import LAB
from lims.rooms import status
from lims.rooms.models import Booking

STATES = ("requested", "approved", "rejected", "cancelled")
HOLDING = ("requested", "approved")  # the states that hold the room's time
DECIDERS = ("admin", "qa")  # the centre approves and rejects
MAX_CHANGEOVER_MIN = 7 * 24 * 60
# A campaign longer than a quarter is booked as several bookings: the bound keeps the overlap
# and calendar queries to a short range of the (room, start) index however long the history.
MAX_LENGTH = timedelta(days=92)
REACH = MAX_LENGTH + timedelta(minutes=MAX_CHANGEOVER_MIN)


def _instant(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("give a time as text, like 2027-03-01T08:00:00Z")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("give a time like 2027-03-01T08:00:00Z") from None
    if t.tzinfo is None:
        # A time without its zone is ambiguous across daylight-saving changes.
        raise ValueError("give the time zone too, like 2027-03-01T08:00:00Z")
    return t.astimezone(UTC)


# A moment in time, in JSON as ISO 8601 text with its zone.
Instant = Annotated[datetime, Strict(False), BeforeValidator(_instant)]


@dataclass(frozen=True)
class BookingTransition:
    action: str
    sources: frozenset[str]
    target: str
    description: str


TRANSITIONS: dict[str, BookingTransition] = {
    t.action: t
    for t in (
        BookingTransition(
            "approve", frozenset({"requested"}), "approved", "the centre approves the slot"
        ),
        BookingTransition(
            "reject", frozenset({"requested"}), "rejected", "the centre turns the request down"
        ),
        BookingTransition(
            "cancel",
            frozenset({"requested", "approved"}),
            "cancelled",
            "the client or the centre gives the slot back",
        ),
    )
}


class BookingIn(Input):
    room: Line = Field(min_length=1, max_length=64, description="room code, e.g. RM-C1")
    starts_at: Instant
    ends_at: Instant
    changeover_minutes: int = Field(
        default=240, ge=0, le=MAX_CHANGEOVER_MIN, description="cleaning and line clearance after"
    )
    organisation: Line | None = Field(
        default=None, max_length=64, description="centre staff booking for a client; else yours"
    )
    purpose: Line | None = Field(default=None, max_length=200)


class BookingTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32, description="approve, reject or cancel")
    reason: Text | None = Field(default=None, max_length=2000)
    version: int | None = Field(default=None, ge=1)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def blocked_until(b: Booking) -> datetime:
    """Return when the room is free again after booking b (its end plus changeover)."""
    return _aware(b.ends_at) + timedelta(minutes=b.changeover_minutes)


# --- reading ----------------------------------------------------------------------------------


def find_booking(session: Session, number: str, actor: Actor) -> Booking | None:
    """Return the booking if the actor may see it (clients: their organisation's), else None."""
    b = session.exec(select(Booking).where(Booking.number == number.strip().upper())).first()
    if b is None or not actor.can_see(b.org_id):
        return None
    return b


def get_booking(session: Session, number: str, actor: Actor) -> Booking:
    """Return a booking the actor may see; another organisation's does not exist (404)."""
    b = find_booking(session, number, actor)
    if b is None:
        raise NotFound(f"no booking {number!r}", code="unknown_booking")
    return b


def list_bookings(
    session: Session,
    actor: Actor,
    *,
    room: Location | None = None,
    organisation: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    state: str | None = None,
    limit: int = 1000,
) -> list[Booking]:
    """Return the bookings the actor may see that touch [start, end), by start time."""
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}", code="bad_filter")
    stmt = select(Booking).order_by(Booking.starts_at, Booking.id).limit(limit)
    if not actor.sees_all:
        stmt = stmt.where(Booking.org_id == actor.org.id)
    if organisation:
        org = session.exec(select(Organisation).where(Organisation.name == organisation)).first()
        if org is None or not actor.can_see(org.id):
            raise NotFound(f"no organisation {organisation!r}", code="unknown_organisation")
        stmt = stmt.where(Booking.org_id == org.id)
    if room is not None:
        stmt = stmt.where(Booking.room_id == room.id)
    if start is not None:
        stmt = stmt.where(Booking.ends_at > start)
    if end is not None:
        stmt = stmt.where(Booking.starts_at < end)
    if state:
        stmt = stmt.where(Booking.state == state)
    return list(session.exec(stmt).all())


def organisation(session: Session, name: str, actor: Actor) -> Organisation:
    """Return the organisation named name if the actor may see it (404 otherwise)."""
    org = session.exec(select(Organisation).where(Organisation.name == name)).first()
    if org is None or not actor.can_see(org.id):
        raise NotFound(f"no organisation {name!r}", code="unknown_organisation")
    return org


def visible_organisations(session: Session, actor: Actor) -> list[str]:
    """Return the names of the organisations the actor may see, by name."""
    rows = session.exec(select(Organisation).order_by(Organisation.name)).all()
    return [o.name for o in rows if actor.can_see(o.id)]


def booking_dict(session: Session, b: Booking) -> dict[str, Any]:
    """Return a booking's public JSON."""
    room = session.get(Location, b.room_id)
    return {
        "number": b.number,
        "room": room.code,
        "organisation": status.org_name(session, b.org_id),
        "starts_at": _text(b.starts_at),
        "ends_at": _text(b.ends_at),
        "changeover_minutes": b.changeover_minutes,
        "free_from": _text(blocked_until(b)),
        "state": b.state,
        "purpose": b.purpose,
        "requested_by": _username(session, b.requested_by_id),
        "requested_at": _text(b.requested_at),
        "decided_by": _username(session, b.decided_by_id),
        "decided_at": _text(b.decided_at),
        "version": b.version,
        "allowed_actions": [a for a, t in TRANSITIONS.items() if b.state in t.sources],
    }


def _text(t: datetime | None) -> str | None:
    return _aware(t).strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else None


def _username(session: Session, user_id: int | None) -> str | None:
    user = session.get(User, user_id) if user_id else None
    return user.username if user else None


def _snapshot(session: Session, b: Booking) -> dict[str, Any]:
    d = booking_dict(session, b)
    return {
        k: d[k]
        for k in (
            "number",
            "room",
            "organisation",
            "starts_at",
            "ends_at",
            "changeover_minutes",
            "state",
            "purpose",
            "version",
        )
    }


def overlapping(
    session: Session,
    room_id: int,
    starts_at: datetime,
    ends_at: datetime,
    changeover: int,
    *,
    exclude: int | None = None,
) -> list[Booking]:
    """Return the bookings of the room whose held time (changeover included) meets this one's.

    Each side's changeover follows its own end: the new booking may not start before an
    earlier one's changeover is over, nor end so late that its own changeover runs into a
    later booking.
    """
    new_until = ends_at + timedelta(minutes=changeover)
    # The earlier booking's end plus its changeover is compared in Python: candidates are
    # only the bookings starting before our held end and ending within the longest changeover.
    stmt = select(Booking).where(
        Booking.room_id == room_id,
        col(Booking.state).in_(HOLDING),
        Booking.starts_at < new_until,
        Booking.starts_at > starts_at - REACH,
        Booking.ends_at > starts_at - timedelta(minutes=MAX_CHANGEOVER_MIN),
    )
    if exclude is not None:
        stmt = stmt.where(Booking.id != exclude)
    return [b for b in session.exec(stmt).all() if blocked_until(b) > starts_at]


# --- changing ---------------------------------------------------------------------------------


def _next_number(session: Session, year: int) -> str:
    dialect = session.connection().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(Counter)
    stmt = (
        ins.values(name=f"booking-{year}", value=1)
        .on_conflict_do_update(index_elements=[Counter.name], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    serial = session.connection().execute(stmt).scalar_one()
    return f"BK-{year % 100:02d}-{serial:04d}"


def _record(
    session: Session,
    actor: Actor,
    action: str,
    b: Booking,
    before: dict | None,
    reason: str | None = None,
) -> None:
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="booking",
        entity_id=b.number,
        before=before,
        after=_snapshot(session, b),
        reason=None if blank(reason) else reason.strip(),
        org_id=b.org_id,
    )


def request_booking(session: Session, *, data: BookingIn, actor: Actor) -> Booking:
    """Ask for a slot in a room (a client for itself; centre staff for any organisation).

    Refused with 409 when the slot, with either side's changeover, meets another booking.
    """
    if actor.role not in LAB:
        raise Forbidden(
            f"booking a room needs the role technician, qa or admin; you are {actor.role}",
            code="role_required",
        )
    room = status.get_room(session, data.room)
    if data.organisation is None or (not actor.sees_all and data.organisation == actor.org.name):
        org = actor.org
    else:
        org = session.exec(
            select(Organisation).where(Organisation.name == data.organisation)
        ).first()
        if org is None or not actor.can_see(org.id):
            raise NotFound(f"no organisation {data.organisation!r}", code="unknown_organisation")
    starts, ends = data.starts_at.astimezone(UTC), data.ends_at.astimezone(UTC)
    if ends <= starts:
        raise BadRequest("a booking ends after it starts", code="bad_slot")
    if ends - starts > MAX_LENGTH:
        raise BadRequest(
            "a booking lasts at most 92 days; book a longer campaign in parts", code="bad_slot"
        )
    if ends <= utcnow():
        raise Refused("that slot is over already", code="slot_in_past")
    # The room's row lock: requests for the same room take turns, so the overlap check below
    # sees every booking committed before this one and none can slip in after it.
    status.lock_room(session, room)
    clash = overlapping(session, room.id, starts, ends, data.changeover_minutes)
    if clash:
        # A client learns the slot is taken, never by whom.
        def who(b: Booking) -> str:
            return b.number if actor.can_see(b.org_id) else "another booking"

        first = clash[0]
        raise Conflict(
            f"{room.code} is taken from {_text(first.starts_at)} until "
            f"{_text(blocked_until(first))} (changeover included) by {who(first)}; "
            "choose another slot",
            code="slot_taken",
            taken=[{"from": _text(b.starts_at), "until": _text(blocked_until(b))} for b in clash],
        )
    b = Booking(
        number=_next_number(session, utcnow().year),
        room_id=room.id,
        org_id=org.id,
        starts_at=starts,
        ends_at=ends,
        changeover_minutes=data.changeover_minutes,
        purpose=None if blank(data.purpose) else data.purpose.strip(),
        requested_by_id=actor.user.id,
    )
    session.add(b)
    session.flush()
    _record(session, actor, "booking.request", b, None)
    return b


def transition(
    session: Session, *, number: str, data: BookingTransitionIn, actor: Actor
) -> Booking:
    """Approve or reject (the centre's admin or QA), or cancel (the client or the centre)."""
    t = TRANSITIONS.get(data.action)
    # The role first: someone who may never do this learns nothing about the booking.
    if t is not None and t.action in ("approve", "reject"):
        if not (actor.sees_all and actor.role in DECIDERS):
            raise Forbidden(
                f"{t.action} a booking is for the centre's admin or QA", code="role_required"
            )
    elif actor.role not in LAB:
        raise Forbidden(
            "cancelling a booking needs a technician, qa or admin", code="role_required"
        )
    b = get_booking(session, number, actor)
    if t is None:
        raise Refused(
            f"unknown action {data.action!r}; one of {', '.join(TRANSITIONS)}",
            code="unknown_action",
        )
    room = session.get(Location, b.room_id)
    state = status.lock_room(session, room)
    session.refresh(b)
    if data.version is not None and data.version != b.version:
        raise Conflict(
            f"booking {b.number} is at version {b.version}, not {data.version}",
            code="version_conflict",
            current_version=b.version,
        )
    if b.state not in t.sources:
        allowed = [a for a, x in TRANSITIONS.items() if b.state in x.sources]
        raise Refused(
            f"booking {b.number} is {b.state}: cannot {t.action}; allowed: "
            f"{', '.join(allowed) or 'none'}",
            code="illegal_transition",
            allowed=allowed,
        )
    if t.action in ("reject", "cancel") and blank(data.reason):
        raise Refused(f"{t.action} needs a reason", code="missing_fields", missing=["reason"])
    if t.action == "cancel" and state.booking_id == b.id and state.status == "in_use":
        raise Refused(
            f"{room.code} is in use under {b.number}: finish the work first",
            code="booking_in_use",
        )
    before = _snapshot(session, b)
    b.state = t.target
    b.version += 1
    if t.action in ("approve", "reject"):
        b.decided_by_id, b.decided_at = actor.user.id, utcnow()
    session.add(b)
    session.flush()
    _record(session, actor, f"booking.{t.action}", b, before, data.reason)
    return b


def running_booking(session: Session, room_id: int, org_id: int, at: datetime) -> Booking | None:
    """Return the organisation's approved booking of the room running at time at, if any."""
    return session.exec(
        select(Booking).where(
            Booking.room_id == room_id,
            Booking.org_id == org_id,
            Booking.state == "approved",
            Booking.starts_at <= at,
            Booking.ends_at > at,
        )
    ).first()


def next_booking(session: Session, room_id: int, org_id: int, at: datetime) -> Booking | None:
    """Return the organisation's next approved booking of the room after time at."""
    return session.exec(
        select(Booking)
        .where(
            Booking.room_id == room_id,
            Booking.org_id == org_id,
            Booking.state == "approved",
            Booking.starts_at > at,
        )
        .order_by(Booking.starts_at)
    ).first()
