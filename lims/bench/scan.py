"""One scan at a bench station: who posted it, what it is, what it does, and its record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from lims import audit, custody, scanning
from lims.accounts.users import Actor
from lims.bench import refusals, stop
from lims.bench.apply import Refusal, apply
from lims.bench.resolve import Resolved, resolve
from lims.bench.station import get_station, station_view
from lims.errors import Forbidden, LimsError, Refused
from lims.inputs import describe
from lims.models import Organisation, ScanEvent, Station, User, utcnow


@dataclass
class _Scan:
    """One scan as it is handled: the station, who posted it and for whom it acts."""

    st: Station
    scan_id: str
    data: str  # as stored (NUL and broken UTF-8 escaped)
    aim: str | None  # the symbology as stored
    agent: Actor  # who posted it
    device: str
    operator: User | None  # signed in before the scan
    actor: Actor | None  # whom the scan acts as (None: nobody it may act as)
    block: Refusal | None  # why only a badge may be scanned now

    @property
    def person(self) -> bool:
        """Tell whether a person posted it (acting as themselves), not the bench's agent."""
        return self.agent.station is None


def storable(data: str) -> str:
    """Return data as it can be stored on every engine (NUL and broken UTF-8 escaped; GS kept)."""
    data = data.encode("utf-8", "backslashreplace").decode("utf-8")
    return data.replace("\x00", "\\x00")


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
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Resolve one scan at a station and do what it means there; return the answer as JSON.

    agent is who posted it. A token bound to this station is the bench's agent: it posts for the
    signed-in operator. Anyone else (personal token, browser session) is a person acting as
    themselves: see _poster_block. config: the application's settings, for what a domain
    refusal writes after its move is taken back (a COI mismatch's deviation).
    """
    _check_poster(agent, station)
    st = get_station(session, station, lock=True)
    stored, aim = storable(data), (symbology[:8] if symbology else None)
    done, last = _same_id_and_last(session, st, scan_id)
    if done is not None:
        return _replay(done, st, scan_id, stored, aim, _poster_key(agent))
    scan = _who(session, st, scan_id, stored, aim, agent, _device(agent, device))
    result = _blank(scan)
    first = _earlier_read(last, stored, window_s)
    if first is not None:
        _duplicate(result, first, stored, window_s)
    else:
        _run(session, scan, data, symbology, error, result, config or {})
    return _record(session, scan, result)


def _check_poster(agent: Actor, station: str) -> None:
    """Refuse (403) a poster who may not post scans at this station at all."""
    custody.require_role(
        agent.role, custody.HANDLERS, "only lab staff and station agents post scans"
    )
    if agent.station is None:
        return
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


def _same_id_and_last(
    session: Session, st: Station, scan_id: str
) -> tuple[ScanEvent | None, ScanEvent | None]:
    """Return the station's scan already sent with scan_id, and its last scan not a duplicate.

    One round trip for both: a retry is answered from the first, a double read is judged
    against the second (_earlier_read).
    """
    last_id = (
        select(ScanEvent.id)
        .where(ScanEvent.station_id == st.id, ScanEvent.outcome != "duplicate")
        .order_by(ScanEvent.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.exec(
        select(ScanEvent).where(
            ScanEvent.station_id == st.id,
            (ScanEvent.scan_id == scan_id) | (ScanEvent.id == last_id),
        )
    ).all()
    done = next((ev for ev in rows if ev.scan_id == scan_id), None)
    last = next((ev for ev in rows if ev.scan_id != scan_id), None)
    return done, last


def _replay(
    done: ScanEvent, st: Station, scan_id: str, stored: str, aim: str | None, poster: str
) -> dict[str, Any]:
    """Return the first answer to a retried scan_id (refused if it is not a true retry)."""
    first = json.loads(done.result or "{}")
    # Kept with the row, not in its answer: the answer is written with the row (one INSERT).
    first.setdefault("id", done.id)
    first.setdefault("time", done.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
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


def _who(
    session: Session,
    st: Station,
    scan_id: str,
    stored: str,
    aim: str | None,
    agent: Actor,
    device: str,
) -> _Scan:
    """Return the scan with whom it acts as, or why only a badge may be scanned now."""
    operator = session.get(User, st.operator_id) if st.operator_id else None
    actor: Actor | None = None
    block: Refusal | None = None
    if agent.station is None:
        actor = Actor(user=agent.user, org=agent.org, station=st.name, device=device)
        block = _poster_block(agent, operator)
    elif operator is None:
        block = Refusal("no_operator", "scan your badge first: nobody is signed in at this bench")
    elif not operator.active:
        block = Refusal(
            "user_disabled",
            f"the account of the signed-in operator {operator.username} is disabled: "
            "nothing is done in their name; scan your badge",
        )
    else:
        org = session.get(Organisation, operator.org_id)
        actor = Actor(user=operator, org=org, station=st.name, device=device)
    return _Scan(st, scan_id, stored, aim, agent, device, operator, actor, block)


def _blank(scan: _Scan) -> dict[str, Any]:
    return {
        "scan_id": scan.scan_id,
        "station": scan.st.name,
        "data": scan.data,
        "resolved": None,
        "outcome": "accepted",
        "code": None,
        "action": None,
        "message": "",
        "sample": None,
    }


def _duplicate(result: dict[str, Any], first: ScanEvent, stored: str, window_s: float) -> None:
    result.update(
        outcome="duplicate",
        code="double_read",
        resolved={"kind": first.resolved_kind, "ref": first.resolved_ref},
        message=f"double read of {scanning.printable(stored)} ignored (the same scan "
        f"within {window_s:g} s is one scan); nothing done",
    )


def _run(
    session: Session,
    scan: _Scan,
    data: str,
    symbology: str | None,
    error: str | None,
    result: dict[str, Any],
    config: Mapping[str, Any],
) -> None:
    """Classify, resolve and apply the scan; a refusal of any step becomes the outcome."""
    try:
        if error:
            raise Refusal(
                "scanner_error", f"the scanner sent an unreadable scan ({error}); scan again"
            )
        parsed = scanning.classify(data, symbology)
        if stop.stopped(scan.st) is not None:
            _while_stopped(session, scan, parsed, result)
            return
        if stop.is_ack(parsed):
            # The refusals on the bench's screen are seen; the station keeps that (a reload
            # shows only those still waiting).
            refusals.acknowledge(session, scan.st, scan.actor or scan.agent)
            result.update(
                resolved={"kind": "command", "ref": "ACK"},
                action="acknowledge",
                message="refusals acknowledged; carry on",
            )
            return
        resolved = _resolve(session, parsed, scan, result)
        with session.begin_nested():
            apply(session, scan.st, resolved, scan.actor, scan.operator, scan.device, result)
    except (Refusal, LimsError) as err:
        # A LimsError is a domain rule's refusal; the savepoint took back whatever it had begun.
        cause = err.cause if isinstance(err, Refusal) else err
        if cause is not None and cause.after_rollback is not None:
            # What the rule writes once its move is taken back (a COI mismatch's deviation and
            # the episode's hold) goes in with the scan's own record, as the API's does.
            with session.begin_nested():
                cause.after_rollback(session, config)
            if isinstance(err, Refusal) and err.code == cause.code:
                err.message = cause.message  # now naming the deviation it opened
        result.update(outcome="refused", code=err.code, message=err.message)
        if err.code in stop.STOPPING and scan.actor is not None:
            # Not a misread to scan past: the bench stops until a supervisor releases it.
            barcode = (result["resolved"] or {}).get("ref") or scanning.printable(scan.data, 64)
            stop.stop(session, st=scan.st, actor=scan.actor, code=err.code, barcode=barcode)
            result["station_stopped"] = True
    except ValidationError as err:
        # A bench setting (reason, condition) that the move's own checks refuse: a 500 here
        # would have the agent retry the scan forever and hold up the bench behind it.
        where, said = describe(err)
        result.update(
            outcome="refused",
            code="bad_field",
            message=f"the bench's {where} cannot be used: {said}; scan it again",
        )


def _while_stopped(
    session: Session, scan: _Scan, parsed: scanning.Parsed, result: dict[str, Any]
) -> None:
    """Let a stopped station take only CMD:ACK and then a supervisor's badge."""
    if stop.is_ack(parsed):
        result["resolved"] = {"kind": "command", "ref": "ACK"}
        if scan.block is not None and scan.block.code == "operator_elsewhere":
            # Someone else works here: the acknowledgement is theirs to give.
            raise scan.block
    with session.begin_nested():
        stop.while_stopped(
            session,
            st=scan.st,
            parsed=parsed,
            actor=scan.actor or scan.agent,
            person=scan.person,
            device=scan.device,
            result=result,
        )


def _resolve(
    session: Session, parsed: scanning.Parsed, scan: _Scan, result: dict[str, Any]
) -> Resolved:
    """Look the classified scan up; refuse what is not, or may not be scanned now."""
    if not parsed.ok:
        raise Refusal(parsed.code or "unreadable", parsed.message or "unreadable scan")
    if scan.block is not None and parsed.kind != "code":
        # Only a bare code can be a badge. Say what the shape is, not whether the record exists.
        result["resolved"] = {"kind": parsed.kind, "ref": parsed.value}
        raise scan.block
    resolved = resolve(session, parsed, scan.actor, person=scan.person)
    result["resolved"] = resolved.to_dict()
    if not resolved.ok:
        raise Refusal(resolved.code or "unknown_code", resolved.message or "unknown code")
    if resolved.kind == "badge" and scan.person and resolved.obj.id != scan.agent.user.id:
        # A personal sign-in is one person: it never becomes whoever's badge it has typed.
        result["resolved"] = {"kind": "badge", "ref": resolved.ref}
        raise Refusal(
            "not_your_badge",
            "this is not your badge: signed in as yourself you can only scan your own; "
            "nothing done",
        )
    if scan.block is not None and resolved.kind != "badge":
        raise scan.block
    return resolved


def _record(session: Session, scan: _Scan, result: dict[str, Any]) -> dict[str, Any]:
    """Record the scan (ScanEvent; a refusal also as an audit event); return its answer."""
    # Every change of the station went through this session's object (station.change), and a
    # savepoint rolled back expired it: it is current without reading it again.
    st = scan.st
    result["station_state"] = station_view(session, st, scan.agent)
    if scan.person:
        # The person scanned it, whoever was (or now is) signed in: the log is theirs.
        by = scan.agent.user.id
    else:
        # Who was at the bench: the operator after the scan (a badge signs in), else before.
        by = st.operator_id or (scan.operator.id if scan.operator else None)
    resolved = result["resolved"] or {}
    ev = ScanEvent(
        station_id=st.id,
        scan_id=scan.scan_id,
        data=scan.data,
        symbology=scan.aim,
        resolved_kind=resolved.get("kind"),
        resolved_ref=(resolved.get("ref") or "")[:200] or None,
        outcome=result["outcome"],
        message=result["message"],
        user_id=by,
    )
    poster = _poster_key(scan.agent)
    if result["outcome"] != "refused":
        # The answer goes in with the row (one INSERT); a retry adds the row's id and time.
        ev.result = json.dumps({**result, "_poster": poster})
    session.add(ev)
    session.flush()
    result["time"] = ev.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    result["id"] = ev.id  # the scan's id: a bench acknowledges its refusal by it
    if result["outcome"] == "refused":
        # The refusal's audit event names the scan's id: known only once the row is in.
        _record_refusal(session, scan, result)
        ev.result = json.dumps({**result, "_poster": poster})
        session.add(ev)
        session.flush()
    return result


def _record_refusal(session: Session, scan: _Scan, result: dict[str, Any]) -> None:
    who = scan.actor or scan.agent
    audit.record(
        session,
        actor=who.username,
        action="scan.refused",
        entity_type="station",
        entity_id=scan.st.name,
        after={
            "scan_id": scan.scan_id,
            "data": scanning.printable(scan.data, 200),
            "resolved": result["resolved"],
            "code": result["code"],
        },
        reason=result["message"],
        org_id=who.org.id,
        station=scan.st.name,
        device=scan.device,
    )


def _device(agent: Actor, device: str | None) -> str:
    # The operator is the actor; which agent (token) and which scanner posted it is the device.
    return f"{device or 'scanner'} via {agent.username}"[:200]


def _poster_key(agent: Actor) -> str:
    """Return who sent a scan (user and bound station): only they may replay its answer."""
    return f"{agent.user.id}@{agent.station or ''}"


def _poster_block(poster: Actor, operator: User | None) -> Refusal | None:
    """Return why a person's scans (other than their own badge) are refused now, if they are.

    A person acts as themselves, never as whoever is signed in: until they scan their own badge
    (which signs them in in place of the operator) their other scans are refused.
    """
    if operator is None:
        return Refusal(
            "no_operator", "scan your own badge first: nobody is signed in at this bench"
        )
    if operator.id == poster.user.id:
        return None
    who = operator.full_name if poster.can_see(operator.org_id) else "another operator"
    return Refusal(
        "operator_elsewhere",
        f"{who} is signed in at this bench, not you: scan your own badge to take over "
        "(or wait until they sign off); nothing done",
    )


def _earlier_read(last: ScanEvent | None, data: str, window_s: float) -> ScanEvent | None:
    """Return the station's previous scan if this one is a double read of it, else None.

    A double read is the same data right after itself: the previous scan (double reads aside)
    had the same data, was accepted and lies within the window. Only accepted scans count: a
    refused scan changed nothing, so scanning again after fixing the cause must act. Only the
    previous scan counts: STORE, DONE, STORE in quick succession is three deliberate scans.
    """
    if window_s <= 0:
        return None
    if last is None or last.data != data or last.outcome != "accepted":
        return None
    if last.created_at < utcnow() - timedelta(seconds=window_s):
        return None
    return last


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
        # Why it was refused (the code a page tells a stop from a refusal by).
        "code": json.loads(ev.result).get("code") if ev.result else None,
        "message": ev.message,
        "operator": operator,
        "time": ev.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def recent_scans(
    session: Session, *, station: str, actor: Actor, limit: int = 50
) -> list[dict[str, Any]]:
    """Return a station's recent scans, newest first (client staff see only their own)."""
    custody.require_role(actor.role, custody.HANDLERS, "scan logs are for lab staff")
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
