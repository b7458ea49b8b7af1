"""A bench station's state: its operator, mode, target and settings, and every audited change."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, select

from lims import audit, storage
from lims.accounts.users import Actor
from lims.bench.modes import DEFAULT_CONDITION, MODES
from lims.db import remember
from lims.errors import NotFound
from lims.models import Location, Organisation, Station, User, utcnow
from lims.rooms.models import RoomState


def stop_prompt(stopped: dict[str, Any]) -> str:
    """Return what a stopped station says: why it stopped and how it is released."""
    why = f"station stopped: {stopped.get('why', 'COI mismatch')} on {stopped.get('barcode')}"
    if stopped.get("acknowledged"):
        return f"{why}; CMD:ACK scanned, now a supervisor (QA) scans their badge"
    return f"{why}; scan CMD:ACK with a supervisor badge"


# What a client's staff see of a bench while another organisation's task runs there.
_HIDDEN = (
    "operator",
    "operator_name",
    "mode",
    "target",
    "position",
    "lot",
    "coi",
    "reason",
    "condition",
    "stopped",
)


def get_station(session: Session, name: str, *, lock: bool = False) -> Station:
    """Return the station called name (row-locked for the transaction when lock is set)."""
    if not lock:
        st = session.exec(select(Station).where(Station.name == name)).first()
    else:
        # A scan reads the bench's operator, their organisation and the state of the bench's
        # room (rented rooms' rules) next: in the same round trip.
        row = session.exec(
            select(Station, User, Organisation, RoomState)
            .join(User, User.id == Station.operator_id, isouter=True)
            .join(Organisation, Organisation.id == User.org_id, isouter=True)
            .join(RoomState, RoomState.room_id == Station.room_id, isouter=True)
            .where(Station.name == name)
            # PostgreSQL: scans of one bench queue behind each other (the station row only);
            # SQLite: BEGIN IMMEDIATE did it.
            .with_for_update(of=Station)
        ).first()
        st = row[0] if row is not None else None
        if row is not None:
            # The session holds what it loaded only weakly: keep them for the transaction.
            session.info.setdefault("pinned", []).extend(x for x in row[1:] if x is not None)
            if st.room_id is not None:
                remember(session, ("room_state", st.room_id), row[3])
    if st is None:
        known = session.exec(select(Station.name).order_by(Station.name))
        raise NotFound(
            f"no station {name[:64]!r}; the stations are {', '.join(known) or 'none yet'}",
            code="unknown_station",
        )
    return st


def context(st: Station) -> dict[str, Any]:
    """Return the settings of the station's task: position, lot, coi, reason, condition."""
    return json.loads(st.context) if st.context else {}


def settings(
    st: Station, ctx: dict[str, Any], target: Location | None, operator: str | None
) -> dict[str, Any]:
    """Return the station settings a mode's move takes its fields from (lims.bench.modes)."""
    return {
        "target": target.code if target is not None else None,
        "position": ctx.get("position"),
        "coi": ctx.get("coi"),
        "reason": ctx.get("reason"),
        "condition": ctx.get("condition") or DEFAULT_CONDITION,
        "operator": operator,
    }


def station_state(session: Session, st: Station) -> dict[str, Any]:
    """Return the station's state as JSON, with a prompt saying what to scan next."""
    ctx = context(st)
    operator = session.get(User, st.operator_id) if st.operator_id else None
    target = storage.location_by_id(session, st.target_location_id)
    return {
        "name": st.name,
        "operator": operator.username if operator else None,
        "operator_name": operator.full_name if operator else None,
        "mode": st.mode,
        "target": target.code if target else None,
        "position": ctx.get("position"),
        "lot": ctx.get("lot"),
        "coi": ctx.get("coi"),
        "reason": ctx.get("reason"),
        "condition": ctx.get("condition"),
        # A COI mismatch stops the station until CMD:ACK and a supervisor's badge (stop.py).
        "stopped": ctx.get("stopped"),
        "version": st.version,
        "updated_at": st.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "prompt": prompt(st, ctx, target),
    }


def station_view(session: Session, st: Station, viewer: Actor) -> dict[str, Any]:
    """Return the station's state as viewer may see it (a client sees only its own tasks).

    A bench is shared: while another organisation's person is signed in, its task (lot, COI,
    target box, operator) is theirs, so a client's staff see only that the bench is in use.
    """
    state = station_state(session, st)
    state["redacted"] = False
    if viewer.sees_all:
        return state
    operator = session.get(User, st.operator_id) if st.operator_id else None
    if operator is not None and operator.org_id == viewer.org.id:
        return state
    for key in _HIDDEN:
        state[key] = None
    if operator is not None:
        state["redacted"] = True
        state["prompt"] = "in use by another operator: scan your own badge to take over"
    return state


def prompt(st: Station, ctx: dict[str, Any], target: Location | None) -> str:
    """Return what the station asks for next."""
    if ctx.get("stopped"):
        return stop_prompt(ctx["stopped"])
    if st.operator_id is None:
        return "scan your badge"
    if st.mode is None:
        return "scan a command (CMD:RECEIVE, CMD:STORE, ...) or a tube to look it up"
    mode = MODES[st.mode]
    ask = mode.unset(settings(st, ctx, target, None))
    if ask is not None:
        return ask.prompt
    where = f" into {target.code}" if target is not None else ""
    lot = f" of lot {ctx['lot']}" if ctx.get("lot") else ""
    return f"scan {mode.things}{lot} to {mode.words}{where}; CMD:DONE when finished"


def change(
    session: Session,
    st: Station,
    actor: Actor,
    action: str,
    *,
    operator_id: Any = ...,
    mode: Any = ...,
    target_id: Any = ...,
    context: dict[str, Any] | None = None,
    reason: str | None = None,
    release: bool = False,
) -> None:
    """Change the station's state: one audit event with the state before and after.

    A stop (stop.py) outlives every other change of the task, a new operator included; only a
    release (release=True) ends it.
    """
    before = _recorded(session, st)
    stopped = before.get("stopped")
    if context is not None and stopped and not release:
        context = {**context, "stopped": context.get("stopped", stopped)}
    if operator_id is not ...:
        st.operator_id = operator_id
    if mode is not ...:
        st.mode = mode
    if target_id is not ...:
        st.target_location_id = target_id
    if context is not None:
        st.context = json.dumps(context, sort_keys=True) if context else None
    st.version += 1
    st.updated_at = utcnow()
    session.add(st)
    session.flush()
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="station",
        entity_id=st.name,
        before=before,
        after=_recorded(session, st),
        reason=reason,
        # Centre only: `before` holds the previous task's settings, maybe another client's.
        org_id=None,
        location_id=st.target_location_id,
        station=st.name,
    )


def _recorded(session: Session, st: Station) -> dict[str, Any]:
    """Return the station's state as its audit events hold it (no prompt, no time)."""
    state = station_state(session, st)
    del state["prompt"], state["updated_at"]
    return state


def set_operator(
    session: Session, st: Station, actor: Actor, user_id: int | None, reason: str | None = None
) -> None:
    """Sign user_id in (None: sign the operator off); a new operator starts with a clean task."""
    change(
        session,
        st,
        actor,
        "station.operator",
        operator_id=user_id,
        mode=None,
        target_id=None,
        context={},
        reason=reason,
    )


def sign_off_everywhere(session: Session, user: User, *, actor: Actor, reason: str) -> int:
    """Sign user off every bench they are signed in at (one audit event each); return how many.

    Called when an account is disabled, in the same transaction: nothing may go on being done
    in the name of someone who may no longer work here.
    """
    rows = session.exec(
        select(Station).where(Station.operator_id == user.id).order_by(Station.id).with_for_update()
    ).all()
    for st in rows:
        set_operator(session, st, actor, None, reason)
    return len(rows)


def list_stations(session: Session, viewer: Actor) -> list[dict[str, Any]]:
    """Return every bench by name: the station, its room and its state as viewer may see it."""
    rows = session.exec(
        select(Station, Location)
        .join(Location, Location.id == Station.room_id, isouter=True)
        .order_by(Station.name)
    ).all()
    # A client's staff see another organisation's task only as "in use" (station_view).
    return [
        {"station": st, "room": room, "view": station_view(session, st, viewer)}
        for st, room in rows
    ]
