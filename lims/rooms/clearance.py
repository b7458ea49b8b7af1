"""Line clearance (EU GMP Part I 5.35): before the next client's work a room's checklist is
signed by two different people, and who may work in a rented room, when."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from sqlmodel import Session, select

from lims import audit, signatures, storage
from lims.accounts.users import Actor
from lims.db import memo
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text, blank
from lims.models import Location, Station, User, utcnow
from lims.roles import LAB
from lims.rooms import bookings, status
from lims.rooms.models import (
    Booking,
    ChecklistItem,
    ClearanceCountersign,
    LineClearance,
    RoomState,
)

# Used until the centre writes a room's own checklist (flask setup room-checklist).
DEFAULT_CHECKLIST = (
    "Materials, samples and product of the previous client removed",
    "Labels, documents and batch records of the previous client removed",
    "Waste removed and bins emptied",
    "Surfaces, equipment and pass-through hatches cleaned and disinfected",
    "Equipment status labels show clean and the next use",
)
FIRST_MEANING = "responsibility"  # done by me
SECOND_MEANING = "review"  # checked by a second person


class ChecklistIn(Input):
    items: list[Line] = Field(min_length=1, max_length=40, description="the lines, in order")


class ClearanceIn(Input):
    confirmed: list[Line] = Field(
        min_length=1, max_length=40, description="every line of the room's checklist, confirmed"
    )
    note: Text | None = Field(default=None, max_length=2000)
    signature: signatures.SignatureIn | None = None


class CountersignIn(Input):
    signature: signatures.SignatureIn | None = None


def checklist(session: Session, room: Location) -> list[str]:
    """Return the room's line-clearance checklist, in order."""
    rows = session.exec(
        select(ChecklistItem.text)
        .where(ChecklistItem.room_id == room.id, ChecklistItem.active)
        .order_by(ChecklistItem.position)
    ).all()
    return list(rows) or list(DEFAULT_CHECKLIST)


def set_checklist(session: Session, *, code: str, data: ChecklistIn, actor: Actor) -> list[str]:
    """Replace a room's checklist (the centre's admin or QA); one audited event."""
    if not (actor.sees_all and (actor.role in ("admin", "qa") or actor.username == "system")):
        raise Forbidden(
            "a room's checklist is written by the centre's admin or QA", code="role_required"
        )
    room = status.get_room(session, code)
    items = [x.strip() for x in data.items if not blank(x)]
    if not items:
        raise BadRequest("a checklist needs at least one line", code="empty_checklist")
    if len(set(items)) != len(items):
        raise BadRequest("a checklist line is given twice", code="duplicate_line")
    before = checklist(session, room)
    for old in session.exec(
        select(ChecklistItem).where(ChecklistItem.room_id == room.id, ChecklistItem.active)
    ).all():
        old.active = False
        session.add(old)
    for i, text in enumerate(items):
        session.add(ChecklistItem(room_id=room.id, position=i, text=text))
    session.flush()
    audit.record_by(
        session,
        actor,
        action="room.checklist",
        entity_type="room",
        entity_id=room.code,
        before={"checklist": before},
        after={"checklist": items},
    )
    return items


def _countersigned() -> Any:
    return select(ClearanceCountersign.clearance_id).where(
        ClearanceCountersign.clearance_id == LineClearance.id
    )


def open_clearance(session: Session, room: Location) -> LineClearance | None:
    """Return the room's clearance signed once and waiting for its second signature."""
    return session.exec(
        select(LineClearance).where(LineClearance.room_id == room.id, ~_countersigned().exists())
    ).first()


def latest_clearance(session: Session, room: Location) -> LineClearance | None:
    """Return the room's newest complete clearance."""
    return session.exec(
        select(LineClearance)
        .where(LineClearance.room_id == room.id, _countersigned().exists())
        .order_by(LineClearance.id.desc())
    ).first()


def _countersign_of(session: Session, c: LineClearance) -> ClearanceCountersign | None:
    return session.exec(
        select(ClearanceCountersign).where(ClearanceCountersign.clearance_id == c.id)
    ).first()


def clearance_dict(session: Session, c: LineClearance) -> dict[str, Any]:
    """Return a line clearance's public JSON with both signatures."""
    from lims.models import Signature

    def sig(sig_id: int | None) -> dict[str, Any] | None:
        s = session.get(Signature, sig_id) if sig_id else None
        return signatures.signature_dict(s) if s else None

    second_row = _countersign_of(session, c)
    first = session.get(User, c.first_by_id)
    second = session.get(User, second_row.by_id) if second_row else None
    return {
        "id": c.id,
        "room": storage.location_by_id(session, c.room_id).code,
        "state": "complete" if second_row else "signed_once",
        "checklist": json.loads(c.checklist),
        "note": c.note,
        "first_by": first.username if first else None,
        "second_by": second.username if second else None,
        "first_signature": sig(c.first_signature_id),
        "second_signature": sig(second_row.signature_id) if second_row else None,
        "started_at": _text(c.started_at),
        "completed_at": _text(second_row.signed_at) if second_row else None,
    }


def _content(room: Location, c: LineClearance) -> dict[str, Any]:
    return {
        "room": room.code,
        "clearance": c.id,
        "checklist": json.loads(c.checklist),
        "note": c.note,
    }


def _require_staff(actor: Actor) -> None:
    # The centre clears its rooms: a client does not sign off its own changeover.
    if not (actor.sees_all and actor.role in LAB):
        raise Forbidden("line clearance is signed by the centre's staff", code="role_required")


def start(session: Session, *, code: str, data: ClearanceIn, actor: Actor) -> LineClearance:
    """Confirm every checklist line and sign (responsibility): the first of two signatures."""
    _require_staff(actor)
    room = status.get_room(session, code)
    state = status.lock_room(session, room)
    if state.status != "cleaning":
        raise Refused(
            f"room {room.code} is {state.status}: line clearance follows cleaning "
            "(room action clean)",
            code="not_cleaning",
        )
    if open_clearance(session, room) is not None:
        raise Conflict(
            f"room {room.code} has a line clearance waiting for its second signature",
            code="clearance_open",
        )
    lines = checklist(session, room)
    confirmed = [x.strip() for x in data.confirmed]
    missing = [x for x in lines if x not in confirmed]
    unknown = [x for x in confirmed if x not in lines]
    if missing or unknown:
        raise Refused(
            "confirm every line of the room's checklist, exactly as written"
            + (f"; not confirmed: {'; '.join(missing)}" if missing else "")
            + (f"; not on the checklist: {'; '.join(unknown)}" if unknown else ""),
            code="checklist_incomplete",
            missing=missing,
        )
    note = None if blank(data.note) else data.note.strip()
    # Signed as the room's record: the clearance row is written once its signature exists.
    content = {"room": room.code, "line_clearance": "first", "checklist": lines, "note": note}
    sig = signatures.sign_required(
        session,
        actor=actor,
        given=data.signature,
        meaning=FIRST_MEANING,
        what="line clearance",
        record_type="room",
        record_id=room.code,
        content=content,
    )
    c = LineClearance(
        room_id=room.id,
        checklist=json.dumps(lines),
        note=note,
        first_by_id=actor.user.id,
        first_signature_id=sig.id,
        started_at=sig.signed_at,
    )
    session.add(c)
    session.flush()
    audit.record_by(
        session,
        actor,
        action="room.clearance_signed",
        entity_type="room",
        entity_id=room.code,
        before=status.snapshot(session, room, state),
        after={
            **status.snapshot(session, room, state),
            "clearance": _content(room, c),
            "signature": signatures.manifestation(sig),
        },
        signature_id=sig.id,
    )
    return c


def countersign(
    session: Session, *, code: str, clearance_id: int, data: CountersignIn, actor: Actor
) -> LineClearance:
    """The second person checks and signs (review); the room is then cleared."""
    _require_staff(actor)
    room = status.get_room(session, code)
    status.lock_room(session, room)
    c = session.get(LineClearance, clearance_id) if 0 < clearance_id < 2**31 else None
    if c is None or c.room_id != room.id:
        raise NotFound(f"room {room.code} has no line clearance {clearance_id}", code="unknown")
    if _countersign_of(session, c) is not None:
        raise Refused(f"line clearance {c.id} is complete already", code="clearance_complete")
    if c.first_by_id == actor.user.id:
        raise Refused(
            "the second signature is another person's: you signed this clearance already",
            code="same_person",
        )
    sig = signatures.sign_required(
        session,
        actor=actor,
        given=data.signature,
        meaning=SECOND_MEANING,
        what="countersigning a line clearance",
        record_type="room",
        record_id=room.code,
        content=_content(room, c),
    )
    session.add(
        ClearanceCountersign(
            clearance_id=c.id, by_id=actor.user.id, signature_id=sig.id, signed_at=sig.signed_at
        )
    )
    session.flush()
    first = session.get(User, c.first_by_id)
    status.move(
        session,
        room=room,
        action="clear",
        actor=actor,
        internal=True,
        signature_id=sig.id,
        extra={
            "clearance": {**_content(room, c), "first_by": first.username},
            "signature": signatures.manifestation(sig),
        },
    )
    return c


# --- who may work in a rented room ------------------------------------------------------------


def use_refusal(
    session: Session, room_id: int | None, org_id: int, at: datetime | None = None
) -> str | None:
    """Return why organisation org_id may not work in the room now, or None when it may.

    A room on hold takes no work. Rooms without bookings are not rented out and carry no other
    rule. In a rented room, work needs
    the organisation's approved booking running now, a line clearance since the last client,
    and the room started for that booking (status in_use).
    """
    if room_id is None:
        return None
    # Asked at every scan: a bench's read of its station brings it along (or its absence).
    state: RoomState | None = memo(
        session, ("room_state", room_id), lambda: session.get(RoomState, room_id)
    )
    if state is None:
        return None
    at = at or utcnow()
    room = storage.location_by_id(session, room_id)
    org = status.org_name(session, org_id)
    if state.status == "on_hold":
        # A hold stops all work in the room, rented out or not.
        return f"room {room.code} is on hold ({state.hold_reason or 'no reason given'})"
    if not status.bookings_exist(session, room_id):
        return None
    running = bookings.running_booking(session, room_id, org_id, at)
    if running is None:
        nxt = bookings.next_booking(session, room_id, org_id, at)
        later = f"; its next booking starts {_text(nxt.starts_at)}" if nxt else ""
        return f"room {room.code} is not booked for {org} now{later}"
    if state.status != "in_use" or state.booking_id != running.id:
        current = session.get(Booking, state.booking_id) if state.booking_id else None
        if state.status == "in_use" and current is not None:
            return f"room {room.code} is in use under booking {current.number}"
        return (
            f"room {room.code} is {state.status.replace('_', ' ')}: not cleared and started "
            f"for booking {running.number} (line clearance, then book and start the room)"
        )
    return None


def room_of(session: Session, location_id: int | None) -> int | None:
    """Return the id of the room a location is in (the location itself if a room), or None."""
    loc = storage.location_by_id(session, location_id)
    if loc is None:
        return None
    room = next((a for a in storage.ancestors(session, loc) if a.kind == "room"), None)
    return room.id if room else None


def custody_refusal(
    session: Session, org_id: int, room_ids: list[int | None]
) -> tuple[Location, str] | None:
    """Return the first of these rooms where org_id's material may not be handled now, and why.

    A custody move is made at the rooms it names: the bench's own room, the room the tube is
    kept in, and the room it goes into. Each answers use_refusal, as a bench in it does.
    """
    for room_id in dict.fromkeys(r for r in room_ids if r is not None):
        why = use_refusal(session, room_id, org_id)
        if why:
            return storage.location_by_id(session, room_id), why
    return None


def _text(t: datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def room_notice(session: Session, room_id: int | None, org_id: int) -> str | None:
    """Return what a bench in a rented room tells organisation org_id (None: not rented)."""
    state = session.get(RoomState, room_id) if room_id is not None else None
    if state is None:
        return None
    why = use_refusal(session, room_id, org_id)
    if not why and not status.bookings_exist(session, room_id):
        return None
    if why:
        return f"Work with {status.org_name(session, org_id)}'s material is refused here: {why}"
    running = bookings.running_booking(session, room_id, org_id, utcnow())
    return (
        f"Room {storage.location_by_id(session, room_id).code} is cleared and in use under "
        f"booking {running.number} until {_text(running.ends_at)}"
    )


def station_notice(session: Session, st: Station, viewer: Actor) -> str | None:
    """Return the rented-room notice a bench page shows: for its operator's organisation when
    the viewer may see it, else for the viewer's own."""
    operator = session.get(User, st.operator_id) if st.operator_id else None
    org_id = operator.org_id if operator and viewer.can_see(operator.org_id) else viewer.org.id
    return room_notice(session, st.room_id, org_id)
