"""A stopped station: a COI mismatch halts the bench until CMD:ACK and a supervisor's badge.

A wrong patient's tube at a hand-over is not a misread: nothing more is done at that bench
until the operator acknowledges (CMD:ACK) and a supervisor (the qa role) scans their badge.
Each step is one audited change of the station; every other scan meanwhile is refused.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from lims import scanning
from lims.accounts.users import Actor
from lims.bench import refusals
from lims.bench.apply import Refusal
from lims.bench.resolve import resolve
from lims.bench.station import change, context, stop_prompt
from lims.models import Organisation, Station, utcnow

# Refusal codes that stop the station, with the words its prompt uses for them.
STOPPING = {"coi_mismatch": "COI mismatch"}
SUPERVISOR_ROLE = "qa"


def stopped(st: Station) -> dict[str, Any] | None:
    """Return the station's stop (why, barcode, acknowledged), or None when it runs."""
    return context(st).get("stopped")


def is_ack(parsed: scanning.Parsed) -> bool:
    """Tell whether the scan is CMD:ACK."""
    return parsed.ok and parsed.kind == "command" and parsed.value == "ACK"


def stop(session: Session, *, st: Station, actor: Actor, code: str, barcode: str) -> None:
    """Stop the station after a refusal that must not be scanned past (one audit event)."""
    record = {
        "code": code,
        "why": STOPPING[code],
        "barcode": barcode,
        "by": actor.username,
        "at": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "acknowledged": False,
    }
    change(
        session,
        st,
        actor,
        "station.stopped",
        context={**context(st), "stopped": record},
        reason=stop_prompt(record),
    )


def while_stopped(
    session: Session,
    *,
    st: Station,
    parsed: scanning.Parsed,
    actor: Actor,
    person: bool,
    device: str,
    result: dict[str, Any],
) -> None:
    """Handle a scan at a stopped station: CMD:ACK, then a supervisor's badge; refuse the rest.

    actor is whom the scan acts as (the operator, or the poster when nobody is signed in).
    """
    halt = stopped(st)
    assert halt is not None
    if is_ack(parsed):
        if halt.get("acknowledged"):
            result.update(action="acknowledge", message=stop_prompt(halt))
            return
        halt = {**halt, "acknowledged": True, "acknowledged_by": actor.username}
        change(
            session,
            st,
            actor,
            "station.stop_acknowledged",
            context={**context(st), "stopped": halt},
        )
        result.update(action="acknowledge", message=stop_prompt(halt))
        return
    supervisor = _supervisor(session, st, parsed, actor, person, device) if parsed.ok else None
    if supervisor is None or not halt.get("acknowledged"):
        raise Refusal("station_stopped", _refusal(session, parsed, actor, person, halt))
    result["resolved"] = {"kind": "badge", "ref": parsed.value, "user": supervisor.username}
    ctx = {k: v for k, v in context(st).items() if k != "stopped"}
    ctx = refusals.released_context(session, st, ctx)
    change(
        session,
        st,
        supervisor,
        "station.stop_released",
        context=ctx,
        release=True,
        reason=f"{halt['why']} on {halt['barcode']} acknowledged by {halt.get('acknowledged_by')}; "
        f"released by the supervisor {supervisor.username}",
    )
    result.update(
        action="release_stop",
        message=f"station released by {supervisor.user.full_name}: carry on "
        f"(keep {halt['barcode']} set aside for QA)",
    )


def _supervisor(
    session: Session,
    st: Station,
    parsed: scanning.Parsed,
    actor: Actor,
    person: bool,
    device: str,
) -> Actor | None:
    """Return the supervisor whose badge this is (active, qa role), else None."""
    if parsed.kind != "code":
        return None
    found = resolve(session, parsed, actor, person=person)
    if found.kind != "badge" or not found.obj.active:
        return None
    org = session.get(Organisation, found.obj.org_id)
    who = Actor(user=found.obj, org=org, station=st.name, device=device)
    return who if who.role == SUPERVISOR_ROLE else None


def _refusal(
    session: Session,
    parsed: scanning.Parsed,
    actor: Actor,
    person: bool,
    halt: dict[str, Any],
) -> str:
    """Say why a scan at a stopped station is refused and what releases it."""
    if not actor.sees_all:
        # The stopped tube may be another organisation's: a client is not told its barcode.
        return (
            "station stopped after a COI mismatch: nothing is done here until the operator "
            "scans CMD:ACK and a supervisor (QA) scans their badge"
        )
    said = stop_prompt(halt)
    if parsed.ok and parsed.kind == "code" and halt.get("acknowledged"):
        found = resolve(session, parsed, actor, person=person)
        if found.kind == "badge":
            return f"{found.obj.full_name} is not a supervisor (QA role): {said}"
    return said
