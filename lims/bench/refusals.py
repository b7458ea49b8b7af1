"""A bench's refusals waiting to be acknowledged, kept with the station (they survive a reload).

A refusal on screen is the operator's cue that a tube was not handled; closing the page must
not make it go away. The station remembers how far its refusals are acknowledged: CMD:ACK or
"acknowledge all" moves a mark to the newest scan, "OK, seen" adds one scan. Refusals that
stopped the station (a COI mismatch, and every scan refused while it stood) go only when a
supervisor releases the stop. Each acknowledgement is one audited change of the station.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from lims.accounts.users import Actor
from lims.bench.station import change, context
from lims.errors import NotFound, Refused
from lims.models import ScanEvent, Station

# Refusal codes that belong to a stop (lims.bench.stop): a supervisor's release clears them.
STOP_CODES = frozenset({"coi_mismatch", "station_stopped"})
SHOWN = 50  # a bench shows at most this many; older ones wait behind them
_SEEN_KEPT = 200  # single acknowledgements remembered above the mark


def latest_scan_id(session: Session, st: Station) -> int:
    """Return the id of the station's newest scan (0 when it has none)."""
    found = session.exec(select(func.max(ScanEvent.id)).where(ScanEvent.station_id == st.id)).one()
    return int(found or 0)


def _marks(st: Station) -> tuple[int, int, set[int]]:
    ctx = context(st)
    return (
        int(ctx.get("refusals_seen_up_to") or 0),
        int(ctx.get("stop_refusals_seen_up_to") or 0),
        set(ctx.get("refusals_seen") or ()),
    )


def _code(ev: ScanEvent) -> str | None:
    return json.loads(ev.result).get("code") if ev.result else None


def waiting(session: Session, st: Station, actor: Actor, *, limit: int = SHOWN) -> list[dict]:
    """Return the station's refusals not yet acknowledged, newest first.

    Client staff see only their own scans, as in the scan log. Each: id, data, message, code,
    time, stop (True: only a supervisor's release clears it).
    """
    from lims.bench.scan import scan_dict  # noqa: PLC0415 - scan.py imports this module

    upto, stops_upto, seen = _marks(st)
    # A stop's refusals show while it stands; once released they are answered.
    stopped_now = bool(context(st).get("stopped"))
    stmt = select(ScanEvent).where(
        ScanEvent.station_id == st.id,
        ScanEvent.outcome == "refused",
        ScanEvent.id > (min(upto, stops_upto) if stopped_now else upto),
    )
    if not actor.sees_all:
        stmt = stmt.where(ScanEvent.user_id == actor.user.id)
    out: list[dict] = []
    for ev in session.exec(stmt.order_by(col(ScanEvent.id).desc()).limit(limit + len(seen))):
        code = _code(ev)
        stop = code in STOP_CODES
        if stop:
            if not stopped_now or ev.id <= stops_upto:
                continue
        elif ev.id <= upto or ev.id in seen:
            continue
        out.append({**scan_dict(session, ev), "stop": stop})
        if len(out) >= limit:
            break
    return out


def acknowledge(session: Session, st: Station, actor: Actor, *, scan_id: int | None = None) -> int:
    """Acknowledge one refusal (scan_id) or all of them; return how many went off the screen.

    A refusal of a stop is refused here (422): CMD:ACK and a supervisor's badge release it.
    """
    upto, _, seen = _marks(st)
    ctx = context(st)
    if scan_id is None:
        gone = [r for r in waiting(session, st, actor, limit=10_000) if not r["stop"]]
        if not gone:
            return 0
        mark = latest_scan_id(session, st)
        new = {**ctx, "refusals_seen_up_to": mark, "refusals_seen": []}
        change(
            session,
            st,
            actor,
            "station.refusals_acknowledged",
            context=new,
            reason=f"{len(gone)} refusal(s) acknowledged at the bench",
        )
        return len(gone)
    ev = session.get(ScanEvent, scan_id)
    if ev is None or ev.station_id != st.id or ev.outcome != "refused":
        raise NotFound(f"no refused scan {scan_id} at {st.name}", code="unknown_refusal")
    if not actor.sees_all and ev.user_id != actor.user.id:
        raise NotFound(f"no refused scan {scan_id} at {st.name}", code="unknown_refusal")
    if _code(ev) in STOP_CODES:
        raise Refused(
            "this refusal stopped the station: scan CMD:ACK, then a supervisor (QA) scans "
            "their badge",
            code="stop_needs_supervisor",
        )
    if ev.id <= upto or ev.id in seen:
        return 0  # acknowledged already (a second click, another screen)
    kept = sorted(i for i in seen | {ev.id} if i > upto)[-_SEEN_KEPT:]
    change(
        session,
        st,
        actor,
        "station.refusal_acknowledged",
        context={**ctx, "refusals_seen": kept},
        reason=f"refusal of {ev.data[:64]} acknowledged: {ev.message[:200]}",
    )
    return 1


def released_context(session: Session, st: Station, ctx: dict[str, Any]) -> dict[str, Any]:
    """Return a released station's context: the stop's refusals are answered by the release."""
    return {**ctx, "stop_refusals_seen_up_to": latest_scan_id(session, st)}
