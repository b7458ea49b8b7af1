"""The printers' last ~HS status as the workers report it with each job."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from lims.models import utcnow
from lims.printing.models import PrinterCheck


def note_printer(
    session: Session,
    *,
    printer_id: int,
    ready: bool,
    summary: str,
    job_id: int | None = None,
    worker: str | None = None,
) -> None:
    """Keep what a worker heard from a printer; the same state again only moves its time.

    A printer out of paper is asked every few seconds for hours: one row says it, not thousands.
    """
    # The driver says "printer not ready: paused"; the page already says "not ready".
    summary = re.sub(r"^printer not ready:\s*", "", (summary or "").strip(), flags=re.I)
    summary = (summary or ("ready" if ready else "not ready"))[:500]
    last = session.exec(
        select(PrinterCheck)
        .where(PrinterCheck.printer_id == printer_id)
        .order_by(col(PrinterCheck.id).desc())
        .limit(1)
    ).first()
    if last is not None and last.ready == ready and last.summary == summary:
        last.checked_at = utcnow()
        last.job_id = job_id or last.job_id
        last.worker = worker or last.worker
        session.add(last)
    else:
        session.add(
            PrinterCheck(
                printer_id=printer_id, ready=ready, summary=summary, job_id=job_id, worker=worker
            )
        )
    session.flush()


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


def check_dict(check: PrinterCheck | None) -> dict[str, Any] | None:
    """Serialise a printer's last check for the queue page's poll and the API."""
    if check is None:
        return None
    return {
        "ready": check.ready,
        "summary": check.summary,
        "checked_at": check.checked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "job": check.job_id,
    }
