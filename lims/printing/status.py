"""What each printer last said to ~HS: kept with its time, shown with its age, audited on change.

Whoever drives a printer reports: the worker with each job, and, while it is idle, every
STATUS_EVERY_S seconds (the in-process worker straight into the database, a station agent
through POST /api/printers/<name>/status). "No answer" is a state like any other.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from lims import audit
from lims.accounts.users import Actor
from lims.errors import Forbidden
from lims.inputs import Input, Line
from lims.models import Printer, Station, utcnow
from lims.printing.jobs import get_printer, require_lab
from lims.printing.models import PrinterCheck
from printers.claim import STATUS_EVERY_S

if TYPE_CHECKING:
    from lims.printing.worker import PrintWorker

# Nobody has reported for this many poll intervals: the last word is too old to trust.
STALE_POLLS = 3


class StatusIn(Input):
    """What a worker heard when it asked an idle printer ~HS (printers.claim.poll_status)."""

    worker: Line = Field(min_length=1, max_length=200)
    answered: bool = Field(description="false: nothing answered (silent, unplugged, no port)")
    ready: bool = False
    status: str = Field(default="", max_length=500, description="'ready', the fault, or why")


def state_of(ready: bool, answered: bool) -> str:
    """Return the state a check says: ready, not_ready or no_answer."""
    if not answered:
        return "no_answer"
    return "ready" if ready else "not_ready"


def note_printer(
    session: Session,
    *,
    printer_id: int,
    ready: bool,
    summary: str,
    answered: bool = True,
    job_id: int | None = None,
    worker: str | None = None,
    actor: Actor | None = None,
) -> PrinterCheck:
    """Keep what a worker heard from a printer; the same state again only moves its time.

    A printer out of paper is asked every 30 s for hours: one row says it, not thousands. A move
    between ready, not ready and no answer is one printer.status audit event (with actor).
    """
    # The driver says "printer not ready: paused"; the page already says "not ready".
    summary = re.sub(r"^printer not ready:\s*", "", (summary or "").strip(), flags=re.I)
    ready = ready and answered
    summary = (summary or ("ready" if ready else "no answer" if not answered else "not ready"))[
        :500
    ]
    last = session.exec(
        select(PrinterCheck)
        .where(PrinterCheck.printer_id == printer_id)
        .order_by(col(PrinterCheck.id).desc())
        .limit(1)
    ).first()
    now = utcnow()
    if (
        last is not None
        and last.ready == ready
        and last.answered == answered
        and last.summary == summary
    ):
        last.checked_at = now
        last.job_id = job_id or last.job_id
        last.worker = worker or last.worker
        session.add(last)
        session.flush()
        return last
    before = state_of(last.ready, last.answered) if last is not None else None
    after = state_of(ready, answered)
    row = PrinterCheck(
        printer_id=printer_id,
        ready=ready,
        answered=answered,
        summary=summary,
        job_id=job_id,
        worker=worker,
        checked_at=now,
        # New words for the same state ("cannot open the port" after "went away while
        # reading"): it is still the same outage, "no answer since" keeps its start.
        since=last.since if last is not None and before == after else now,
    )
    session.add(row)
    session.flush()
    if actor is not None and before != after:
        # Operational, not GMP data; yet when a printer went down and came back explains late
        # or missing labels in an investigation. Only the moves are kept, never the repeats.
        printer = session.get(Printer, printer_id)
        audit.record_by(
            session,
            actor,
            action="printer.status",
            entity_type="printer",
            entity_id=printer.name if printer is not None else str(printer_id),
            before=None
            if last is None
            else {"state": before, "status": last.summary, "since": _ts(last.since)},
            after={"state": after, "status": summary, "worker": worker, "job": job_id},
        )
    return row


def report_status(
    session: Session,
    *,
    name: str,
    data: StatusIn,
    actor: Actor,
    local_worker: PrintWorker | None = None,
) -> PrinterCheck:
    """Keep what a station's agent heard from one of that station's idle printers.

    local_worker, the app's own worker, leaves the printer to the agent that drives it.
    """
    require_lab(actor, "reporting a printer's status")
    printer = get_printer(session, name)
    if not actor.station:
        raise Forbidden(
            "a printer's status is reported by the station agent that drives it, with its "
            "station token",
            code="station_token_required",
        )
    station = session.get(Station, printer.station_id) if printer.station_id else None
    if station is None or station.name != actor.station:
        raise Forbidden(
            f"this token belongs to station {actor.station}; printer {printer.name} is not one "
            "of that station's",
            code="wrong_station",
        )
    if local_worker is not None:
        local_worker.leave_to_agent([printer], station.name)
    return note_printer(
        session,
        printer_id=printer.id,
        ready=data.ready,
        summary=data.status,
        answered=data.answered,
        worker=data.worker,
        actor=actor,
    )


def last_checks(session: Session, printer_ids: list[int]) -> dict[int, PrinterCheck]:
    """Return each printer's newest check (printers never heard from are left out)."""
    if not printer_ids:
        return {}
    newest = (
        select(func.max(PrinterCheck.id))
        .where(col(PrinterCheck.printer_id).in_(printer_ids))
        .group_by(PrinterCheck.printer_id)
    )
    rows = session.exec(select(PrinterCheck).where(col(PrinterCheck.id).in_(newest))).all()
    return {r.printer_id: r for r in rows}


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(seconds: float) -> str:
    """Return an age in words: '12 s', '2 min', '3 h', '2 days'."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} days"


def _clock(t: datetime, now: datetime) -> str:
    """Return HH:MM UTC for today, else the date too."""
    if t.date() == now.date():
        return t.strftime("%H:%M UTC")
    return t.strftime("%Y-%m-%d %H:%M UTC")


def check_dict(
    check: PrinterCheck | None,
    *,
    now: datetime | None = None,
    every_s: float = STATUS_EVERY_S,
    redact: bool = False,
) -> dict[str, Any] | None:
    """Serialise a printer's last check with its age, for the queue page's poll and the API.

    'state' is ready, not_ready, no_answer, or unknown when nobody reported for longer than
    STALE_POLLS poll intervals (an old "ready" is not a ready printer); 'text' says it in words.
    redact: leave out why nothing answered (it names the device path or network address).
    """
    if check is None:
        return None
    now = now or utcnow()
    summary = "no answer" if redact and not check.answered else check.summary
    checked = _aware(check.checked_at)
    since = _aware(check.since or check.checked_at)
    state = state_of(check.ready, check.answered)
    quiet = (now - checked).total_seconds()
    if quiet > STALE_POLLS * every_s:
        text = f"not asked for {_age(quiet)} (last: {summary})"
        shown = "unknown"
    elif state == "no_answer":
        text = f"no answer since {_clock(since, now)}"
        shown = state
    elif state == "not_ready":
        text = f"{summary}, {_age((now - since).total_seconds())} ago"
        shown = state
    else:
        text = "ready"
        shown = state
    return {
        "ready": shown == "ready",
        "state": shown,
        "text": text,
        "summary": summary,
        "checked_at": _ts(checked),
        "since": _ts(since),
        "job": check.job_id,
    }


def _aware(t: datetime) -> datetime:
    # SQLite hands back naive times (stored as UTC); PostgreSQL aware ones.
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


__all__ = [
    "STALE_POLLS",
    "StatusIn",
    "check_dict",
    "last_checks",
    "note_printer",
    "report_status",
    "state_of",
]
