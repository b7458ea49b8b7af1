"""Room status as data: the transition table, the row lock that serialises a room's changes,
and the one audited move."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from pydantic import Field
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from lims import audit, storage
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text, blank
from lims.models import Deviation, DeviationLink, Location, Organisation, utcnow
from lims.roles import LAB, QA
from lims.rooms.models import Booking, RoomState

STATUSES = ("available", "booked", "in_use", "dirty", "cleaning", "cleared", "on_hold")
# Annex 1 grades; CNC (controlled not classified) rooms can be rented too but have no limits.
GRADES = ("A", "B", "C", "D", "CNC")


@dataclass(frozen=True)
class RoomTransition:
    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    description: str
    needs_booking: bool = False  # names the booking the room is booked for / started for
    needs_reason: bool = False
    # Only another rule moves the room so (a complete line clearance, an EM action result).
    internal: bool = False
    client_may: bool = False  # a technician of the booking's organisation may do it too


_STAFF = frozenset(LAB)
# Each applied row is one audit event. A held room goes back through cleaning and a fresh line
# clearance: whatever caused the hold may have left the room unfit for the next client.
TRANSITIONS: dict[str, RoomTransition] = {
    t.action: t
    for t in (
        RoomTransition(
            "book",
            frozenset({"available", "cleared"}),
            "booked",
            _STAFF,
            "reserve the cleared room for the next approved booking",
            needs_booking=True,
        ),
        RoomTransition(
            "unbook",
            frozenset({"booked"}),
            "available",
            _STAFF,
            "the booking the room waited for is off (cancelled or moved)",
        ),
        RoomTransition(
            "start",
            frozenset({"booked"}),
            "in_use",
            _STAFF,
            "the client's work begins (inside the booking)",
            client_may=True,
        ),
        RoomTransition(
            "finish",
            frozenset({"in_use"}),
            "dirty",
            _STAFF,
            "the client's work is over; the room needs cleaning",
            client_may=True,
        ),
        RoomTransition("clean", frozenset({"dirty"}), "cleaning", _STAFF, "cleaning begins"),
        RoomTransition(
            "clear",
            frozenset({"cleaning"}),
            "cleared",
            _STAFF,
            "line clearance signed by two people",
            internal=True,
        ),
        RoomTransition(
            "release",
            frozenset({"cleared"}),
            "available",
            _STAFF,
            "the cleared room waits for its next booking",
        ),
        RoomTransition(
            "hold",
            frozenset(set(STATUSES) - {"on_hold"}),
            "on_hold",
            _STAFF,
            "stop all work in the room (excursion, deviation)",
            needs_reason=True,
        ),
        RoomTransition(
            "lift_hold",
            frozenset({"on_hold"}),
            "dirty",
            frozenset(QA),
            "QA lifts the hold; the room is cleaned and cleared again",
            needs_reason=True,
        ),
    )
}


class RoomTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32)
    booking: Line | None = Field(default=None, max_length=32, description="book: its number")
    reason: Text | None = Field(default=None, max_length=2000)
    version: int | None = Field(default=None, ge=1)


def get_room(session: Session, code: str) -> Location:
    """Return the room with this code (404 if none, 422 if the place is not a room)."""
    loc = storage.find_location(session, code.strip())
    if loc is None:
        raise NotFound(f"no room {code!r}", code="unknown_room")
    if loc.kind != "room":
        raise Refused(f"{loc.code} is a {loc.kind}, not a room", code="not_a_room")
    return loc


def room_code(session: Session, room_id: int) -> str:
    """Return the code of the room with this id."""
    return storage.location_by_id(session, room_id).code


def list_rooms(session: Session) -> list[Location]:
    """Return every room, by code."""
    return list(
        session.exec(select(Location).where(Location.kind == "room").order_by(Location.code)).all()
    )


def state_of(session: Session, room_id: int) -> RoomState | None:
    """Return a room's rental state (None: the room is not rented out)."""
    return session.get(RoomState, room_id)


def lock_room(session: Session, room: Location) -> RoomState:
    """Return the room's state row, created if need be, locked for this transaction.

    Every change to a room's bookings or status takes this lock first, so two requests for the
    same room take turns (a row lock on PostgreSQL; SQLite's writer holds the database lock).
    """
    dialect = session.connection().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(RoomState)
    session.connection().execute(
        ins.values(
            room_id=room.id, status="available", version=1, updated_at=utcnow()
        ).on_conflict_do_nothing(index_elements=["room_id"])
    )
    state = session.exec(
        select(RoomState).where(RoomState.room_id == room.id).with_for_update()
    ).one()
    session.refresh(state)
    return state


def open_deviations(session: Session, room: Location) -> list[Deviation]:
    """Return the deviations not yet closed that concern the room."""
    linked = select(DeviationLink.deviation_id).where(
        DeviationLink.location_id == room.id, col(DeviationLink.removed_at).is_(None)
    )
    return list(
        session.exec(
            select(Deviation)
            .where(col(Deviation.id).in_(linked), Deviation.state != "closed")
            .order_by(Deviation.id)
        ).all()
    )


def snapshot(session: Session, room: Location, state: RoomState | None) -> dict[str, Any]:
    """Return the room's status content that audit events record."""
    booking = session.get(Booking, state.booking_id) if state and state.booking_id else None
    return {
        "room": room.code,
        "grade": room.grade,
        "status": state.status if state else "available",
        "booking": booking.number if booking else None,
        "hold_reason": state.hold_reason if state else None,
        "version": state.version if state else 0,
    }


def bookings_exist(session: Session, room_id: int) -> bool:
    """Tell whether the room has ever been booked (is rented out)."""
    return (
        session.exec(select(Booking.id).where(Booking.room_id == room_id).limit(1)).first()
        is not None
    )


def allowed_actions(status: str) -> list[str]:
    """Return the actions a person may ask for from a status (internal moves left out)."""
    return [a for a, t in TRANSITIONS.items() if status in t.sources and not t.internal]


def room_dict(session: Session, room: Location) -> dict[str, Any]:
    """Return a room's public JSON: grade, status, booking it serves, open deviations."""
    state = state_of(session, room.id)
    snap = snapshot(session, room, state)
    status = snap["status"]
    return {
        "code": room.code,
        "name": room.name,
        **snap,
        "rented": state is not None and bookings_exist(session, room.id),
        "allowed_actions": allowed_actions(status),
        "open_deviations": [d.number for d in open_deviations(session, room)],
    }


def _check_role(t: RoomTransition, actor: Actor, booking: Booking | None) -> None:
    if actor.sees_all and actor.role in t.roles:
        return
    if (
        t.client_may
        and booking is not None
        and actor.role in LAB
        and actor.org.id == booking.org_id
    ):
        return
    raise Forbidden(
        f"{t.action} a room is for {', '.join(sorted(t.roles))} of the centre", code="role_required"
    )


def move(
    session: Session,
    *,
    room: Location,
    action: str,
    actor: Actor,
    reason: str | None = None,
    booking: Booking | None = None,
    version: int | None = None,
    internal: bool = False,
    signature_id: int | None = None,
    extra: dict[str, Any] | None = None,
) -> RoomState:
    """Move a room along its table as one audited event; refuse what the table does not allow."""
    t = TRANSITIONS.get(action)
    if t is None:
        raise Refused(
            f"unknown room action {action!r}; one of {', '.join(TRANSITIONS)}",
            code="unknown_action",
        )
    state = lock_room(session, room)
    current = session.get(Booking, state.booking_id) if state.booking_id else None
    if not internal:
        if t.internal:
            raise Refused(
                f"a room is {t.target} only by {t.description}", code="illegal_transition"
            )
        _check_role(t, actor, booking or current)
    if version is not None and version != state.version:
        raise Conflict(
            f"room {room.code} is at version {state.version}, not {version}; reload it",
            code="version_conflict",
            current_version=state.version,
        )
    if state.status not in t.sources:
        raise Refused(
            f"room {room.code} is {state.status}: cannot {action}; allowed: "
            f"{', '.join(allowed_actions(state.status)) or 'none'}",
            code="illegal_transition",
            room_status=state.status,
            allowed=allowed_actions(state.status),
        )
    if t.needs_reason and blank(reason):
        raise Refused(f"{action} needs a reason", code="missing_fields", missing=["reason"])
    before = snapshot(session, room, state)
    now = utcnow()
    if action == "book":
        if booking is None:
            raise Refused(
                "book needs the booking number", code="missing_fields", missing=["booking"]
            )
        if booking.room_id != room.id or booking.state != "approved":
            raise Refused(
                f"booking {booking.number} is not an approved booking of {room.code}",
                code="booking_not_approved",
            )
        if _aware(booking.ends_at) <= now:
            raise Refused(f"booking {booking.number} is over", code="booking_over")
        state.booking_id = booking.id
    elif action == "start":
        if current is None or current.state != "approved":
            raise Refused(f"room {room.code} has no approved booking to start", code="no_booking")
        if not (_aware(current.starts_at) <= now < _aware(current.ends_at)):
            raise Refused(
                f"booking {current.number} runs {_slot(current)}; it is not running now",
                code="outside_booking",
            )
    elif action in ("finish", "release", "lift_hold", "unbook"):
        state.booking_id = None
    if action == "lift_hold":
        still = open_deviations(session, room)
        if still:
            raise Refused(
                f"room {room.code} stays on hold while deviation "
                f"{', '.join(d.number for d in still)} is open",
                code="deviation_open",
                deviations=[d.number for d in still],
            )
        state.hold_reason = None
    if action == "hold":
        state.hold_reason = reason.strip()
    state.status = t.target
    state.version += 1
    state.updated_at = now
    session.add(state)
    session.flush()
    after = {**snapshot(session, room, state), **(extra or {})}
    audit.record_by(
        session,
        actor,
        action=f"room.{action}",
        entity_type="room",
        entity_id=room.code,
        before=before,
        after=after,
        reason=None if blank(reason) else reason.strip(),
        org_id=(booking or current).org_id if (booking or current) else None,
        location_id=room.id,
        signature_id=signature_id,
    )
    return state


def transition(session: Session, *, code: str, data: RoomTransitionIn, actor: Actor) -> RoomState:
    """Apply a room action asked for through the API or a page."""
    from lims.rooms import bookings  # the bookings module builds on this one

    if actor.role not in LAB:
        # The role first: a viewer learns nothing about the room from a refusal.
        raise Forbidden(
            f"moving a room needs a lab role; you are {actor.role}", code="role_required"
        )
    room = get_room(session, code)
    booking = None
    if data.booking is not None:
        booking = bookings.get_booking(session, data.booking, actor)
    elif data.action == "book":
        raise BadRequest("book needs the booking number", code="missing_fields")
    return move(
        session,
        room=room,
        action=data.action,
        actor=actor,
        reason=data.reason,
        booking=booking,
        version=data.version,
    )


def history(session: Session, room: Location, limit: int = 200) -> list[dict[str, Any]]:
    """Return the room's audit events, newest first."""
    events = audit.query(
        session, entity_type="room", entity_ids=[room.code], newest_first=True, limit=limit
    )
    return [
        {"ts": audit.ts_text(e.ts), "actor": e.actor, "action": e.action, "reason": e.reason}
        for e in events
    ]


def org_name(session: Session, org_id: int) -> str:
    org = session.get(Organisation, org_id)
    return org.name if org else "?"


def _aware(t: Any) -> Any:
    return t if t is None or t.tzinfo else t.replace(tzinfo=UTC)


def _slot(b: Booking) -> str:
    return f"{_aware(b.starts_at):%Y-%m-%d %H:%M}–{_aware(b.ends_at):%Y-%m-%d %H:%M} UTC"
