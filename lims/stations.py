"""The scan-first bench: a station's operator, mode and target, and what each scan does there.

A station is driven by scans alone, in this order (each step answers with a prompt for the next):

1. a badge signs the operator in. Every change made by a later scan is the operator's (the agent's
   token only says which machine posted it); a scan with no operator is refused.
2. a command sets the mode: CMD:RECEIVE, CMD:QUARANTINE, CMD:STORE, CMD:CHECKOUT, CMD:CHECKIN,
   CMD:HANDOVER, CMD:DISPOSE. A new mode starts a clean task: it clears the target and the
   settings of the previous one, so a box chosen for one task never catches tubes of the next.
   CMD:DONE ends the task; CMD:LOGOUT also signs the operator off. A different badge signs the
   next person in and also starts clean.
3. settings of the task, when it needs them:
   - a location (BOX-0002, or BOX-0002:C4 for an exact position) is the target of STORE (needed),
     RECEIVE, QUARANTINE and CHECKIN (optional). Tubes go to the next free position of a box;
     a scanned position takes the next tube only.
   - a lot number (or a GS1 code carrying AI 10) restricts the task to vials of that lot: a vial
     of another lot, or a tube with no lot, is refused.
   - HANDOVER needs the expected COI label first (the patient or order label the tubes must match);
     each tube then passes into the operator's custody only if it carries that COI. A mismatch is
     refused loudly and recorded.
   - DISPOSE needs a reason first: CMD:REASON:EXPIRED (presets in scanning.REASONS) or any text.
   - RECEIVE records the condition scanned with CMD:CONDITION:... (presets in scanning.CONDITIONS);
     without one it records DEFAULT_CONDITION. A lab receiving a rack checks it as a whole and
     scans an exception (CMD:CONDITION:DAMAGED) before the affected tubes, so a default keeps the
     common case to one scan per tube while the record still says what was (not) observed.
4. samples: each scanned tube gets the mode's custody move (lims.samples.apply_transition), one
   audit event each. CHECKOUT and HANDOVER give custody to the operator. With no mode, a tube scan
   is a lookup and changes nothing.

Station state changes are audited (station.operator, station.mode, station.target,
station.setting): they are part of who did what. Every scan, whatever its outcome, is a ScanEvent
row; a refusal changes no GMP data and is recorded as one audit event "scan.refused".
A scan_id seen before on the station returns the first answer verbatim; the same data scanned
again within SCAN_DUPLICATE_WINDOW_S of an accepted scan is a double read: outcome "duplicate",
nothing done.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from lims import audit, samples, scanning, storage
from lims.custody import LAB
from lims.errors import Forbidden, LimsError, NotFound
from lims.models import (
    Location,
    Organisation,
    Sample,
    ScanEvent,
    Station,
    User,
    VectorLot,
    utcnow,
)
from lims.samples import TransitionIn
from lims.users import Actor

__all__ = [
    "DEFAULT_CONDITION",
    "MODES",
    "get_station",
    "handle_scan",
    "recent_scans",
    "scan_dict",
    "station_state",
]

MODES = tuple(m for m in scanning.COMMANDS.values() if m)
DEFAULT_CONDITION = "intact; default at bench receipt, no exception scanned"
# Modes whose tubes may go to a scanned location, and the one that needs it.
_TARGET_MODES = frozenset({"receive", "quarantine", "store", "check_in"})
_MODE_WORDS = {
    "receive": "receive",
    "quarantine": "quarantine",
    "store": "store",
    "check_out": "check out",
    "check_in": "check in",
    "hand_over": "take over (hand-over)",
    "dispose": "dispose of",
}


class _Refusal(Exception):
    """A scan the station refuses: nothing changes, the operator is told why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- state ---------------------------------------------------------------------------------


def get_station(session: Session, name: str, *, lock: bool = False) -> Station:
    """Return the station called name (row-locked for the transaction when lock is set)."""
    stmt = select(Station).where(Station.name == name)
    if lock:
        # PostgreSQL: scans of one bench queue behind each other; SQLite: BEGIN IMMEDIATE did it.
        stmt = stmt.with_for_update()
    st = session.exec(stmt).first()
    if st is None:
        raise NotFound(f"no station {name!r}; see GET /api/stations", code="unknown_station")
    return st


def _context(st: Station) -> dict[str, Any]:
    return json.loads(st.context) if st.context else {}


def station_state(session: Session, st: Station) -> dict[str, Any]:
    """Return the station's state as JSON, with a prompt saying what to scan next."""
    ctx = _context(st)
    operator = session.get(User, st.operator_id) if st.operator_id else None
    target = session.get(Location, st.target_location_id) if st.target_location_id else None
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
        "version": st.version,
        "updated_at": st.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "prompt": _prompt(st, ctx, target),
    }


def _prompt(st: Station, ctx: dict[str, Any], target: Location | None) -> str:
    if st.operator_id is None:
        return "scan your badge"
    if st.mode is None:
        return "scan a command (CMD:RECEIVE, CMD:STORE, ...) or a tube to look it up"
    if st.mode == "store" and target is None:
        return "scan the box (or location) to store into"
    if st.mode == "hand_over" and not ctx.get("coi"):
        return "scan the expected COI label first"
    if st.mode == "dispose" and not ctx.get("reason"):
        return "scan a reason first (CMD:REASON:...)"
    where = f" into {target.code}" if target is not None else ""
    lot = f" of lot {ctx['lot']}" if ctx.get("lot") else ""
    return f"scan tubes{lot} to {_MODE_WORDS[st.mode]}{where}; CMD:DONE when finished"


def _change(
    session: Session,
    st: Station,
    actor: Actor,
    action: str,
    *,
    operator_id: Any = ...,
    mode: Any = ...,
    target_id: Any = ...,
    context: dict[str, Any] | None = None,
) -> None:
    """Change the station's state: one audit event with the state before and after."""
    before = station_state(session, st)
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
    after = station_state(session, st)
    for state in (before, after):
        state.pop("prompt")
        state.pop("updated_at")
    audit.record(
        session,
        actor=actor.username,
        action=action,
        entity_type="station",
        entity_id=st.name,
        before=before,
        after=after,
        org_id=actor.org.id,
        location_id=st.target_location_id,
        station=st.name,
        device=actor.device,
    )


# --- scans ---------------------------------------------------------------------------------


def storable(data: str) -> str:
    """Return data as it can be stored on every engine (NUL and broken UTF-8 escaped; GS kept)."""
    data = data.encode("utf-8", "backslashreplace").decode("utf-8")
    return data.replace("\x00", "\\x00")


def _device(agent: Actor, device: str | None) -> str:
    # The operator is the actor; which agent (token) and which scanner posted it is the device.
    return f"{device or 'scanner'} via {agent.username}"[:200]


def handle_scan(
    session: Session,
    *,
    station: str,
    scan_id: str,
    data: str,
    agent: Actor,
    symbology: str | None = None,
    device: str | None = None,
    error: str | None = None,
    window_s: float = 3.0,
) -> dict[str, Any]:
    """Resolve one scan at a station and do what it means there; return the answer as JSON."""
    if agent.role not in LAB:
        raise Forbidden("only lab staff and station agents post scans", code="role_required")
    if agent.station is not None and agent.station != station:
        raise Forbidden(
            f"this token belongs to station {agent.station}, not {station}", code="wrong_station"
        )
    st = get_station(session, station, lock=True)
    done = session.exec(
        select(ScanEvent).where(ScanEvent.station_id == st.id, ScanEvent.scan_id == scan_id)
    ).first()
    if done is not None:
        # A retry of a scan we already answered (the agent lost the reply): same answer, no redo.
        return {**json.loads(done.result or "{}"), "replayed": True}
    stored = storable(data)
    operator = session.get(User, st.operator_id) if st.operator_id else None
    actor = None
    if operator is not None:
        org = session.get(Organisation, operator.org_id)
        actor = Actor(user=operator, org=org, station=st.name, device=_device(agent, device))
    result: dict[str, Any] = {
        "scan_id": scan_id,
        "station": st.name,
        "data": stored,
        "resolved": None,
        "outcome": "accepted",
        "code": None,
        "action": None,
        "message": "",
        "sample": None,
    }
    first = _earlier_read(session, st, stored, window_s)
    resolved: scanning.Resolved | None = None
    if first is not None:
        result.update(
            outcome="duplicate",
            code="double_read",
            resolved={"kind": first.resolved_kind, "ref": first.resolved_ref},
            message=f"double read of {scanning.printable(stored)} ignored (the same scan "
            f"within {window_s:g} s is one scan); nothing done",
        )
    else:
        parsed = scanning.classify(data, symbology)
        try:
            if error:
                raise _Refusal(
                    "scanner_error", f"the scanner sent an unreadable scan ({error}); scan again"
                )
            resolved = _resolve(session, st, parsed, actor, result)
            with session.begin_nested():
                _act(session, st, resolved, actor, result)
        except _Refusal as ref:
            result.update(outcome="refused", code=ref.code, message=ref.message)
        except LimsError as err:
            # A domain rule refused the move; the savepoint took back whatever it had begun.
            result.update(outcome="refused", code=err.code, message=err.message)
    session.expire(st)
    st = get_station(session, station)
    result["station_state"] = station_state(session, st)
    ev = ScanEvent(
        station_id=st.id,
        scan_id=scan_id,
        data=stored,
        symbology=symbology[:8] if symbology else None,
        resolved_kind=(result["resolved"] or {}).get("kind"),
        resolved_ref=((result["resolved"] or {}).get("ref") or "")[:200] or None,
        outcome=result["outcome"],
        message=result["message"],
        # Who was at the bench: the operator after the scan (a badge signs in), else the one before.
        user_id=st.operator_id or (operator.id if operator else None),
    )
    session.add(ev)
    session.flush()
    result["time"] = ev.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if result["outcome"] == "refused":
        audit.record(
            session,
            actor=(actor or agent).username,
            action="scan.refused",
            entity_type="station",
            entity_id=st.name,
            after={
                "scan_id": scan_id,
                "data": scanning.printable(stored, 200),
                "resolved": result["resolved"],
                "code": result["code"],
            },
            reason=result["message"],
            org_id=(actor or agent).org.id,
            station=st.name,
            device=_device(agent, device),
        )
    ev.result = json.dumps(result)
    session.add(ev)
    session.flush()
    return result


def _earlier_read(session: Session, st: Station, data: str, window_s: float) -> ScanEvent | None:
    """Return the station's previous scan if this one is a double read of it, else None.

    A double read is the same data right after itself: the previous scan (double reads aside)
    had the same data, was accepted and lies within the window. Only accepted scans count: a
    refused scan changed nothing, so scanning again after fixing the cause must act. Only the
    previous scan counts: STORE, DONE, STORE in quick succession is three deliberate scans.
    """
    if window_s <= 0:
        return None
    last = session.exec(
        select(ScanEvent)
        .where(ScanEvent.station_id == st.id, ScanEvent.outcome != "duplicate")
        .order_by(ScanEvent.id.desc())
        .limit(1)
    ).first()
    if last is None or last.data != data or last.outcome != "accepted":
        return None
    if last.created_at < utcnow() - timedelta(seconds=window_s):
        return None
    return last


def _resolve(
    session: Session,
    st: Station,
    parsed: scanning.Parsed,
    actor: Actor | None,
    result: dict[str, Any],
) -> scanning.Resolved:
    if not parsed.ok:
        raise _Refusal(parsed.code or "unreadable", parsed.message or "unreadable scan")
    if actor is None and parsed.kind != "code":
        # Only a bare code can be a badge. Say what the shape is, not whether the record exists.
        result["resolved"] = {"kind": parsed.kind, "ref": parsed.value}
        raise _Refusal("no_operator", "scan your badge first: nobody is signed in at this bench")
    resolved = scanning.resolve(session, parsed, actor)
    result["resolved"] = resolved.to_dict()
    if not resolved.ok:
        raise _Refusal(resolved.code or "unknown_code", resolved.message or "unknown code")
    if actor is None and resolved.kind != "badge":
        raise _Refusal("no_operator", "scan your badge first: nobody is signed in at this bench")
    return resolved


def _act(
    session: Session,
    st: Station,
    r: scanning.Resolved,
    actor: Actor | None,
    result: dict[str, Any],
) -> None:
    if r.kind == "badge":
        _badge(session, st, r.obj, actor, result)
        return
    assert actor is not None  # _resolve refused every other kind without an operator
    if r.kind == "command":
        _command(session, st, r, actor, result)
    elif r.kind == "location":
        _location(session, st, r, actor, result)
    elif r.kind == "lot":
        _lot(session, st, r, actor, result)
    elif r.kind == "coi":
        _coi(session, st, r, actor, result)
    elif r.kind == "sample":
        _sample(session, st, r.obj, actor, result)
    else:  # gs1 with nothing of ours in it
        raise _Refusal(
            "not_ours",
            f"GS1 code {r.parsed.gs1['hri'] if r.parsed and r.parsed.gs1 else r.ref} is not a "
            "LIMS record (no lot of ours); nothing done",
        )


def _badge(
    session: Session, st: Station, user: User, actor: Actor | None, result: dict[str, Any]
) -> None:
    if not user.active:
        raise _Refusal("user_disabled", f"badge of {user.username}: the account is disabled")
    if user.role not in LAB:
        raise _Refusal(
            "role_required", f"{user.username} ({user.role}) may not work at a bench station"
        )
    result["action"] = "sign_in"
    if st.operator_id == user.id:
        result["message"] = f"{user.full_name} is signed in already"
        return
    org = session.get(Organisation, user.org_id)
    who = Actor(user=user, org=org, station=st.name, device=actor.device if actor else None)
    _change(
        session,
        st,
        who,
        "station.operator",
        operator_id=user.id,
        mode=None,
        target_id=None,
        context={},
    )
    previous = f" (after {actor.username})" if actor else ""
    result["message"] = f"signed in: {user.full_name}{previous}; scan a command"


def _command(
    session: Session, st: Station, r: scanning.Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    name = r.ref
    arg = r.parsed.argument if r.parsed else None
    ctx = _context(st)
    if name == "REASON":
        if st.mode != "dispose":
            raise _Refusal("wrong_mode", "a reason is scanned in dispose mode: CMD:DISPOSE first")
        result["action"] = "set_reason"
        _change(session, st, actor, "station.setting", context={**ctx, "reason": arg})
        result["message"] = f"reason: {arg}; scan the tubes to dispose of"
        return
    if name == "CONDITION":
        if st.mode != "receive":
            raise _Refusal("wrong_mode", "a condition is scanned in receive mode: CMD:RECEIVE")
        result["action"] = "set_condition"
        _change(session, st, actor, "station.setting", context={**ctx, "condition": arg})
        result["message"] = f"condition: {arg}; scan the tubes that arrived so"
        return
    if name == "LOGOUT":
        result["action"] = "sign_out"
        _change(
            session,
            st,
            actor,
            "station.operator",
            operator_id=None,
            mode=None,
            target_id=None,
            context={},
        )
        result["message"] = f"signed off: {actor.user.full_name}"
        return
    if name == "DONE":
        result["action"] = "done"
        if st.mode is None and st.target_location_id is None and not ctx:
            result["message"] = "no task to end"
            return
        ended = st.mode.replace("_", " ") if st.mode else "task"
        _change(session, st, actor, "station.mode", mode=None, target_id=None, context={})
        result["message"] = f"{ended} ended; scan a command or CMD:LOGOUT"
        return
    mode = scanning.COMMANDS[name]
    result["action"] = "set_mode"
    _change(session, st, actor, "station.mode", mode=mode, target_id=None, context={})
    result["message"] = f"mode {name}: " + _prompt(st, {}, None)


def _location(
    session: Session, st: Station, r: scanning.Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    loc: Location = r.obj
    position = r.parsed.position if r.parsed else None
    if st.mode is None:
        result["action"] = "lookup"
        used = ""
        if loc.kind == "box" and loc.rows and loc.cols:
            taken = len(storage.occupied(session, loc.id))
            used = f" ({taken} of {loc.rows * loc.cols} positions used)"
        result["message"] = f"{loc.code}: {storage.path_text(session, loc)}{used}; scan a command"
        return
    if st.mode not in _TARGET_MODES:
        raise _Refusal("wrong_mode", f"a location is not used when you {_MODE_WORDS[st.mode]}")
    if loc.kind in ("site",):
        raise _Refusal("bad_location", f"{loc.code} is a site; scan a room, freezer or box")
    if position is not None:
        if loc.kind != "box":
            raise _Refusal("bad_position", f"{loc.code} is a {loc.kind}; positions exist in boxes")
        position = storage.parse_position(loc, position)
        holder = storage.occupied(session, loc.id).get(position)
        if holder:
            raise _Refusal("position_occupied", f"{loc.code} {position} already holds {holder}")
    ctx = _context(st)
    ctx.pop("position", None)
    if position:
        ctx["position"] = position
    result["action"] = "set_target"
    _change(session, st, actor, "station.target", target_id=loc.id, context=ctx)
    where = (
        f"{loc.code} {position} (next tube), then the next free positions"
        if position
        else (
            f"{loc.code}, next free position {storage.next_free_position(session, loc)}"
            if loc.kind == "box"
            else loc.code
        )
    )
    result["message"] = f"target: {where}"


def _lot(
    session: Session, st: Station, r: scanning.Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    lot = r.obj
    expiry = (r.parsed.gs1 or {}).get("expiry") if r.parsed else None
    if st.mode is None:
        result["action"] = "lookup"
        result["message"] = f"lot {lot.lot_number}: {lot.vector}, {lot.state}" + (
            f", expires {lot.expires_on.isoformat()}" if lot.expires_on else ""
        )
        return
    if expiry and lot.expires_on and expiry != lot.expires_on.isoformat():
        raise _Refusal(
            "lot_label_mismatch",
            f"the label says lot {lot.lot_number} expires {expiry}; the LIMS says "
            f"{lot.expires_on.isoformat()}: check the label",
        )
    result["action"] = "set_lot"
    _change(session, st, actor, "station.setting", context={**_context(st), "lot": lot.lot_number})
    result["message"] = f"lot {lot.lot_number} ({lot.state}): only its vials from now on"


def _coi(
    session: Session, st: Station, r: scanning.Resolved, actor: Actor, result: dict[str, Any]
) -> None:
    if st.mode != "hand_over":
        raise _Refusal("wrong_mode", "a COI label is scanned in hand-over mode: CMD:HANDOVER")
    result["action"] = "set_coi"
    _change(session, st, actor, "station.setting", context={**_context(st), "coi": r.ref})
    result["message"] = f"expected COI {r.ref}: scan the tubes to take over"


def _sample(session: Session, st: Station, s: Sample, actor: Actor, result: dict[str, Any]) -> None:
    ctx = _context(st)
    target = session.get(Location, st.target_location_id) if st.target_location_id else None
    if st.mode is None:
        result["action"] = "lookup"
        result["sample"] = samples.sample_dict(session, s)
        result["message"] = f"{s.barcode}: {s.state}{_where(session, s)}; scan a command to act"
        return
    lot_number = ctx.get("lot")
    if lot_number:
        lot = session.get(VectorLot, s.lot_id) if s.lot_id else None
        if lot is None or lot.lot_number != lot_number:
            raise _Refusal(
                "wrong_lot",
                f"WRONG LOT: {s.barcode} is "
                + (f"of lot {lot.lot_number}" if lot else "not a vial of any lot")
                + f", not {lot_number}; put it aside",
            )
    fields: dict[str, Any] = {"action": st.mode}
    position = ctx.get("position")
    mode = st.mode
    if mode == "receive":
        fields["condition"] = ctx.get("condition") or DEFAULT_CONDITION
    if mode in _TARGET_MODES and target is not None:
        if mode == "store" and s.location_id == target.id and not position:
            raise _Refusal(
                "already_there", f"{s.barcode} is in {target.code} at {s.position} already"
            )
        fields["location"] = target.code
        fields["position"] = position
    if mode == "store" and target is None:
        raise _Refusal("no_target", "scan the box to store into first")
    if mode in ("check_out", "hand_over"):
        fields["custodian"] = actor.username
    if mode == "hand_over":
        expected = ctx.get("coi")
        if not expected:
            raise _Refusal("no_coi", "scan the expected COI label first, then the tubes")
        if s.coi != expected:
            raise _Refusal(
                "coi_mismatch",
                f"COI MISMATCH - STOP: {s.barcode} carries {s.coi}, not the expected {expected}; "
                "hand-over refused, set the tube aside and call QA",
            )
        fields["coi"] = expected
    if mode == "dispose":
        if not ctx.get("reason"):
            raise _Refusal("no_reason", "scan a reason first (CMD:REASON:...), then the tubes")
        fields["reason"] = ctx["reason"]
    s = samples.apply_transition(session, sample=s, data=TransitionIn(**fields), actor=actor)
    if position:
        ctx.pop("position", None)
        st.context = json.dumps(ctx, sort_keys=True) if ctx else None
        session.add(st)
    result["action"] = mode
    result["sample"] = samples.sample_dict(session, s)
    result["message"] = _done_message(session, s, mode, fields)


def _where(session: Session, s: Sample) -> str:
    if s.location_id is None:
        holder = session.get(User, s.custodian_id) if s.custodian_id else None
        return f" with {holder.username}" if holder else ""
    loc = session.get(Location, s.location_id)
    return f" in {loc.code}" + (f" at {s.position}" if s.position else "")


def _done_message(session: Session, s: Sample, mode: str, fields: dict[str, Any]) -> str:
    where = _where(session, s)
    if mode == "receive":
        return f"{s.barcode} received ({fields['condition']}){where}"
    if mode == "store":
        return f"{s.barcode} stored{where}"
    if mode == "check_out":
        return f"{s.barcode} checked out to {fields['custodian']}"
    if mode == "hand_over":
        return f"{s.barcode} handed over to {fields['custodian']} (COI {fields['coi']} matches)"
    if mode == "dispose":
        return f"{s.barcode} disposed of ({fields['reason']})"
    return f"{s.barcode}: {mode.replace('_', ' ')} done, now {s.state}{where}"


# --- reading -------------------------------------------------------------------------------


def scan_dict(session: Session, ev: ScanEvent, users_by_id: dict[int, str] | None = None) -> dict:
    """Return the public JSON of a recorded scan."""
    operator = None
    if ev.user_id is not None:
        if users_by_id is not None and ev.user_id in users_by_id:
            operator = users_by_id[ev.user_id]
        else:
            u = session.get(User, ev.user_id)
            operator = u.username if u else None
    return {
        "id": ev.id,
        "scan_id": ev.scan_id,
        "data": ev.data,
        "symbology": ev.symbology,
        "resolved": {"kind": ev.resolved_kind, "ref": ev.resolved_ref}
        if ev.resolved_kind
        else None,
        "outcome": ev.outcome,
        "message": ev.message,
        "operator": operator,
        "time": ev.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def recent_scans(
    session: Session, *, station: str, actor: Actor, limit: int = 50
) -> list[dict[str, Any]]:
    """Return a station's recent scans, newest first (client staff see only their own)."""
    if actor.role not in LAB:
        raise Forbidden("scan logs are for lab staff", code="role_required")
    st = get_station(session, station)
    stmt = select(ScanEvent).where(ScanEvent.station_id == st.id)
    if not actor.sees_all:
        # Another organisation's barcodes pass through a shared bench: show only your own scans.
        stmt = stmt.where(ScanEvent.user_id == actor.user.id)
    rows = session.exec(stmt.order_by(ScanEvent.id.desc()).limit(limit)).all()
    return [scan_dict(session, ev) for ev in rows]
