"""The scan-first bench: a station's operator, mode and target, and what each scan does there.

A station is driven by scans alone, in this order (each step answers with a prompt for the next):

1. a badge signs the operator in. Every change made by a later scan is the operator's; a scan
   with no operator is refused, and so is every scan but a badge while the operator's account
   is disabled (disabling an account also signs it off every bench).

   Who may post a scan (see handle_scan): the bench's station agent, with a token bound to that
   station and belonging to the centre, posts for whoever badged in (the token only says which
   machine posted it). A person (personal token or browser session) always acts as themselves:
   the only badge they may scan is their own, and it signs them in, replacing whoever was
   signed in, exactly as a new badge at the scanner does. While someone else is the operator,
   their other scans are refused (operator_elsewhere).
2. a command sets the mode: CMD:RECEIVE, CMD:QUARANTINE, CMD:STORE, CMD:CHECKOUT, CMD:CHECKIN,
   CMD:HANDOVER, CMD:DISPOSE. A new mode starts a clean task: it clears the target and the
   settings of the previous one, so a box chosen for one task never catches tubes of the next.
   CMD:DONE ends the task; CMD:LOGOUT also signs the operator off. A different badge signs the
   next person in and also starts clean.
3. settings of the task, when it needs them:
   - a location (BOX-0002, or BOX-0002:C4 for an exact position) is the target of STORE and
     CHECKIN (needed: a tube checked in goes back to a place, never to nowhere), RECEIVE and
     QUARANTINE (optional). Tubes go to the next free position of a box;
     a scanned position takes the next tube only.
   - a lot number (or a GS1 code carrying AI 10) restricts the task to vials of that lot: a vial
     of another lot, or a tube with no lot, is refused.
   - HANDOVER needs the expected COI label first (the patient or order label the tubes must match);
     each tube then passes into the operator's custody only if it carries that COI. A mismatch is
     refused loudly and recorded; so is a tube the operator holds already (no_change).
   - DISPOSE needs a reason first: CMD:REASON:EXPIRED (presets in scanning.REASONS) or any text.
   - RECEIVE records the condition scanned with CMD:CONDITION:... (presets in scanning.CONDITIONS);
     without one it records DEFAULT_CONDITION. A lab receiving a rack checks it as a whole and
     scans an exception (CMD:CONDITION:DAMAGED) before the affected tubes, so a default keeps the
     common case to one scan per tube while the record still says what was (not) observed.
4. samples: each scanned tube gets the mode's custody move (lims.samples.apply_transition), one
   audit event each. CHECKOUT and HANDOVER give custody to the operator. With no mode, a tube scan
   is a lookup and changes nothing.

Station state changes are audited (station.operator, station.mode, station.target,
station.setting): they are part of who did what. They are filed with no organisation (centre
only): a bench is shared, and the state before a change holds the previous task's lot and COI,
which may be another client's. For the same reason station_view shows a client's staff the
settings of a bench only while one of their own organisation is the operator.
Every scan, whatever its outcome, is a ScanEvent row; a refusal changes no GMP data and is
recorded as one audit event "scan.refused".
A scan_id seen before on the station returns the first answer verbatim to the same sender with
the same data (any other sender is refused: 422 scan_id_taken; other data from the same sender:
422 scan_id_reused); the same data scanned again within
SCAN_DUPLICATE_WINDOW_S of an accepted scan is a double read: outcome "duplicate", nothing done.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from lims import audit, samples, scanning, storage
from lims.accounts.users import Actor
from lims.custody import LAB
from lims.errors import Forbidden, LimsError, NotFound, Refused
from lims.inputs import describe
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

__all__ = [
    "DEFAULT_CONDITION",
    "MODES",
    "get_station",
    "handle_scan",
    "recent_scans",
    "scan_dict",
    "sign_off_everywhere",
    "station_state",
    "station_view",
]

MODES = tuple(m for m in scanning.COMMANDS.values() if m)
DEFAULT_CONDITION = "intact; default at bench receipt, no exception scanned"
# Modes whose tubes may go to a scanned location, and those that need one.
_TARGET_MODES = frozenset({"receive", "quarantine", "store", "check_in"})
_NEEDS_TARGET = frozenset({"store", "check_in"})
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
)
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
        known = session.exec(select(Station.name).order_by(Station.name))
        raise NotFound(
            f"no station {name[:64]!r}; the stations are {', '.join(known) or 'none yet'}",
            code="unknown_station",
        )
    return st


def _context(st: Station) -> dict[str, Any]:
    return json.loads(st.context) if st.context else {}


def station_state(session: Session, st: Station) -> dict[str, Any]:
    """Return the station's state as JSON, with a prompt saying what to scan next."""
    ctx = _context(st)
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
        "version": st.version,
        "updated_at": st.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "prompt": _prompt(st, ctx, target),
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


def _prompt(st: Station, ctx: dict[str, Any], target: Location | None) -> str:
    if st.operator_id is None:
        return "scan your badge"
    if st.mode is None:
        return "scan a command (CMD:RECEIVE, CMD:STORE, ...) or a tube to look it up"
    if st.mode == "store" and target is None:
        return "scan the box (or location) to store into"
    if st.mode == "check_in" and target is None:
        return "scan the box (or location) to check the tubes in to"
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
    reason: str | None = None,
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
        reason=reason,
        # Centre only: `before` holds the previous task's settings, maybe another client's.
        org_id=None,
        location_id=st.target_location_id,
        station=st.name,
        device=actor.device,
    )


def _set_operator(
    session: Session, st: Station, actor: Actor, user_id: int | None, reason: str | None = None
) -> None:
    """Sign user_id in (None: sign the operator off); a new operator starts with a clean task."""
    _change(
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
        _set_operator(session, st, actor, None, reason)
    return len(rows)


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
    """Resolve one scan at a station and do what it means there; return the answer as JSON.

    agent is who posted it. A token bound to this station is the bench's agent: it posts for the
    signed-in operator. Anyone else (personal token, browser session) is a person acting as
    themselves: see _poster_block.
    """
    if agent.role not in LAB:
        raise Forbidden("only lab staff and station agents post scans", code="role_required")
    if agent.station is not None:
        if agent.station != station:
            raise Forbidden(
                f"this token belongs to station {agent.station}, not {station}",
                code="wrong_station",
            )
        if not agent.sees_all:
            # An agent acts for whoever badges in, so only the centre may run one on its benches.
            raise Forbidden(
                "a client organisation's station token cannot drive a centre bench; "
                "scan from the bench page signed in as yourself",
                code="client_station_token",
            )
    st = get_station(session, station, lock=True)
    poster = _poster_key(agent)
    # As the scan is stored (and compared with an earlier scan of the same scan_id).
    stored, aim = storable(data), (symbology[:8] if symbology else None)
    done = session.exec(
        select(ScanEvent).where(ScanEvent.station_id == st.id, ScanEvent.scan_id == scan_id)
    ).first()
    if done is not None:
        first = json.loads(done.result or "{}")
        if first.pop("_poster", None) != poster:
            # Only the poster's own retry replays: the answer may show a sample they cannot see.
            raise Refused(
                f"scan_id {scan_id!r} was used at {st.name} by another sender; use a new one",
                code="scan_id_taken",
            )
        if done.data != stored or done.symbology != aim:
            # Replaying the first answer would silently lose this scan.
            raise Refused(
                f"scan_id {scan_id!r} was used at {st.name} for another scan; "
                "use a new scan_id for each scan (a retry sends the same data again)",
                code="scan_id_reused",
            )
        # A retry of a scan we already answered (the agent lost the reply): same answer, no redo.
        return {**first, "replayed": True}
    dev = _device(agent, device)
    operator = session.get(User, st.operator_id) if st.operator_id else None
    person = agent.station is None
    actor: Actor | None = None
    if person:
        actor = Actor(user=agent.user, org=agent.org, station=st.name, device=dev)
        block = _poster_block(session, agent, operator)
    elif operator is None:
        block = _Refusal("no_operator", "scan your badge first: nobody is signed in at this bench")
    elif not operator.active:
        block = _Refusal(
            "user_disabled",
            f"the account of the signed-in operator {operator.username} is disabled: "
            "nothing is done in their name; scan your badge",
        )
    else:
        org = session.get(Organisation, operator.org_id)
        actor = Actor(user=operator, org=org, station=st.name, device=dev)
        block = None
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
            resolved = _resolve(session, parsed, actor, block, agent if person else None, result)
            with session.begin_nested():
                _act(session, st, resolved, actor, operator, dev, result)
        except _Refusal as ref:
            result.update(outcome="refused", code=ref.code, message=ref.message)
        except LimsError as err:
            # A domain rule refused the move; the savepoint took back whatever it had begun.
            result.update(outcome="refused", code=err.code, message=err.message)
        except ValidationError as err:
            # A bench setting (reason, condition) that the move's own checks refuse: a 500 here
            # would have the agent retry the scan forever and hold up the bench behind it.
            where, said = describe(err)
            result.update(
                outcome="refused",
                code="bad_field",
                message=f"the bench's {where} cannot be used: {said}; scan it again",
            )
    session.expire(st)
    st = get_station(session, station)
    result["station_state"] = station_view(session, st, agent)
    if person:
        # The person scanned it, whoever was (or now is) signed in: the log is theirs.
        by = agent.user.id
    else:
        # Who was at the bench: the operator after the scan (a badge signs in), else before.
        by = st.operator_id or (operator.id if operator else None)
    ev = ScanEvent(
        station_id=st.id,
        scan_id=scan_id,
        data=stored,
        symbology=aim,
        resolved_kind=(result["resolved"] or {}).get("kind"),
        resolved_ref=((result["resolved"] or {}).get("ref") or "")[:200] or None,
        outcome=result["outcome"],
        message=result["message"],
        user_id=by,
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
            device=dev,
        )
    ev.result = json.dumps({**result, "_poster": poster})
    session.add(ev)
    session.flush()
    return result


def _poster_key(agent: Actor) -> str:
    """Return who sent a scan (user and bound station): only they may replay its answer."""
    return f"{agent.user.id}@{agent.station or ''}"


def _poster_block(session: Session, poster: Actor, operator: User | None) -> _Refusal | None:
    """Return why a person's scans (other than their own badge) are refused now, if they are.

    A person acts as themselves, never as whoever is signed in: until they scan their own badge
    (which signs them in in place of the operator) their other scans are refused.
    """
    if operator is None:
        return _Refusal(
            "no_operator", "scan your own badge first: nobody is signed in at this bench"
        )
    if operator.id == poster.user.id:
        return None
    who = operator.full_name if poster.can_see(operator.org_id) else "another operator"
    return _Refusal(
        "operator_elsewhere",
        f"{who} is signed in at this bench, not you: scan your own badge to take over "
        "(or wait until they sign off); nothing done",
    )


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
    parsed: scanning.Parsed,
    actor: Actor | None,
    block: _Refusal | None,
    person: Actor | None,
    result: dict[str, Any],
) -> scanning.Resolved:
    if not parsed.ok:
        raise _Refusal(parsed.code or "unreadable", parsed.message or "unreadable scan")
    if block is not None and parsed.kind != "code":
        # Only a bare code can be a badge. Say what the shape is, not whether the record exists.
        result["resolved"] = {"kind": parsed.kind, "ref": parsed.value}
        raise block
    resolved = scanning.resolve(session, parsed, actor)
    result["resolved"] = resolved.to_dict()
    if not resolved.ok:
        raise _Refusal(resolved.code or "unknown_code", resolved.message or "unknown code")
    if resolved.kind == "badge" and person is not None and resolved.obj.id != person.user.id:
        # A personal sign-in is one person: it never becomes whoever's badge it has typed.
        result["resolved"] = {"kind": "badge", "ref": resolved.ref}
        raise _Refusal(
            "not_your_badge",
            "this is not your badge: signed in as yourself you can only scan your own; "
            "nothing done",
        )
    if block is not None and resolved.kind != "badge":
        raise block
    return resolved


def _act(
    session: Session,
    st: Station,
    r: scanning.Resolved,
    actor: Actor | None,
    operator: User | None,
    device: str,
    result: dict[str, Any],
) -> None:
    if r.kind == "badge":
        _badge(session, st, r.obj, operator, device, result)
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
    session: Session,
    st: Station,
    user: User,
    previous: User | None,
    device: str,
    result: dict[str, Any],
) -> None:
    if not user.active:
        raise _Refusal("user_disabled", f"badge of {user.username}: the account is disabled")
    org = session.get(Organisation, user.org_id)
    who = Actor(user=user, org=org, station=st.name, device=device)
    if who.role not in LAB:
        raise _Refusal(
            "role_required", f"{user.username} ({who.role}) may not work at a bench station"
        )
    result["action"] = "sign_in"
    if st.operator_id == user.id:
        result["message"] = f"{user.full_name} is signed in already"
        return
    _set_operator(session, st, who, user.id)
    after = ""
    if previous is not None and who.can_see(previous.org_id):
        after = f" (after {previous.username})"
    result["message"] = f"signed in: {user.full_name}{after}; scan a command"


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
        _set_operator(session, st, actor, None)
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
        holder = session.exec(
            select(Sample.barcode, Sample.org_id).where(
                Sample.location_id == loc.id, Sample.position == position
            )
        ).first()
        if holder:
            # Boxes are shared: another organisation's tube is "occupied", never named.
            what = f"already holds {holder[0]}" if actor.can_see(holder[1]) else "is occupied"
            raise _Refusal("position_occupied", f"{loc.code} {position} {what}")
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
    target = storage.location_by_id(session, st.target_location_id)
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
    if mode in _NEEDS_TARGET and target is None:
        # A tube checked in goes back to a place: never "available" nowhere, with nobody.
        into = "store into" if mode == "store" else "check the tubes in to"
        raise _Refusal("no_target", f"scan the box to {into} first")
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
        if s.custodian_id == actor.user.id:
            # Taking over what one holds already would record a hand-over that never happened.
            raise _Refusal(
                "no_change", f"{s.barcode} is in your custody already: nothing to hand over"
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
    loc = storage.location_by_id(session, s.location_id)
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
    # One query for the operators' names, not one per scan.
    user_ids = {ev.user_id for ev in rows if ev.user_id is not None}
    users_by_id = (
        dict(session.exec(select(User.id, User.username).where(User.id.in_(user_ids))).all())
        if user_ids
        else {}
    )
    return [scan_dict(session, ev, users_by_id) for ev in rows]
