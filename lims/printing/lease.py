"""Print-job leases: claim the next job, mark it sending, record the outcome the driver reported.

Shared by the in-process worker and the station agent's API; on PostgreSQL claims lock printer
rows with FOR UPDATE SKIP LOCKED so concurrent claimers never split one printer's jobs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import Field
from sqlmodel import Session, col, select

from lims import labels
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound
from lims.inputs import Input, Line
from lims.models import Printer, PrintJob, Station, utcnow
from lims.printing.jobs import (
    OUTCOME_UNKNOWN,
    get_job,
    get_printer,
    json_ts,
    labels_of,
    lock_job,
    record_event,
    require_lab,
    save,
    snapshot,
)
from lims.printing.status import note_printer
from printers import get_template, render_batch
from printers.claim import CLAIM_LEASE_S, NOT_READY_CODES, Claim, not_ready_text
from printers.transport import link_seconds

if TYPE_CHECKING:
    from lims.printing.worker import PrintWorker

log = logging.getLogger(__name__)

# Rough upper bound of bytes per stored-format recall (^XF) label, for the sending lease.
_BYTES_PER_LABEL = 200


# --- request bodies (the worker protocol) ----------------------------------------------------


class ClaimIn(Input):
    station: Line | None = Field(default=None, min_length=1, max_length=64)
    printer: Line | None = Field(default=None, min_length=1, max_length=64)
    worker: Line = Field(min_length=1, max_length=200)


class StartIn(Input):
    worker: Line = Field(min_length=1, max_length=200)


class OutcomeIn(Input):
    """What the driver reported (printers.BatchOutcome fields)."""

    worker: Line = Field(min_length=1, max_length=200)
    sent: int = Field(ge=0)
    printed: int = Field(ge=0)
    unconfirmed: int = Field(default=0, ge=0)
    cancelled: int = Field(default=0, ge=0)
    # The driver's own words, whatever the printer sent: refusing them would lose the outcome.
    error: str | None = Field(default=None, max_length=4000)
    code: str | None = Field(default=None, max_length=32)
    # What the printer said to ~HS around the job (shown on the print queue page).
    printer_ready: bool | None = None
    printer_status: str | None = Field(default=None, max_length=500)
    # False: the printer answered nothing (silent, unplugged); absent: it answered.
    printer_answered: bool | None = None


# --- claiming and outcomes ----------------------------------------------------------------


def printers_for(
    session: Session,
    *,
    station: str | None = None,
    names: list[str] | None = None,
    strict: bool = False,
) -> list[Printer]:
    """Return active printers, optionally only a station's or only the named ones.

    strict: refuse (404) when a named printer is not among them, instead of leaving it out.
    """
    stmt = select(Printer).where(Printer.active == True)  # noqa: E712
    if station:
        st = session.exec(select(Station).where(Station.name == station)).first()
        if st is None:
            raise NotFound(f"no station {station!r}", code="unknown_station")
        stmt = stmt.where(Printer.station_id == st.id)
    if names:
        stmt = stmt.where(col(Printer.name).in_(names))
    found = list(session.exec(stmt.order_by(Printer.id)).all())
    missing = sorted(set(names or ()) - {p.name for p in found}) if strict else []
    if missing:
        # A worker told to serve a misspelt printer would otherwise idle without a word.
        known = session.exec(
            select(Printer.name).where(Printer.active == True).order_by(Printer.name)  # noqa: E712
        ).all()
        where = f" at {station}" if station else ""
        raise NotFound(
            f"no active printer {', '.join(missing)}{where}; "
            f"active printers: {', '.join(known) or 'none (add one with `printer add`)'}",
            code="unknown_printer",
        )
    return found


def reap_expired(
    session: Session, printer_ids: list[int], actor: Actor, now: datetime | None = None
) -> list[PrintJob]:
    """Fail 'sending' jobs whose lease ran out: outcome unknown, never resent."""
    now = now or utcnow()
    if not printer_ids:
        return []
    stale = session.exec(
        select(PrintJob)
        .where(PrintJob.state == "sending", col(PrintJob.printer_id).in_(printer_ids))
        .with_for_update(skip_locked=True)
    ).all()
    out = []
    for job in stale:
        if job.lease_until is not None and job.lease_until >= now:
            continue
        before = snapshot(job)
        job.state = "failed"
        job.labels_unconfirmed = job.labels_total - job.labels_printed
        job.error = (
            f"{OUTCOME_UNKNOWN} (worker {job.claimed_by} stopped answering while sending; "
            f"its lease ended {json_ts(job.lease_until)})"
        )
        job.finished_at = now
        save(session, job)
        record_event(
            session,
            job,
            "print_job.fail",
            actor,
            before=before,
            after=snapshot(job),
            reason=job.error,
        )
        log.warning("job %s on printer %s: %s", job.id, job.printer_id, job.error)
        out.append(job)
    return out


def claim_next(
    session: Session,
    *,
    worker: str,
    printers: list[Printer],
    actor: Actor,
    now: datetime | None = None,
    lease_s: float = CLAIM_LEASE_S,
) -> PrintJob | None:
    """Lease the oldest queued job of the first idle printer among printers, or None.

    One batch at a time per printer: a printer with a job sending, or a queued job leased by
    another worker, is skipped. PostgreSQL: the printer row is locked (FOR UPDATE SKIP LOCKED)
    so concurrent claimers never pick two jobs of one printer; SQLite: the writer lock does.
    """
    now = now or utcnow()
    reap_expired(session, [p.id for p in printers], actor, now)
    for printer in printers:
        locked = session.exec(
            select(Printer.id).where(Printer.id == printer.id).with_for_update(skip_locked=True)
        ).first()
        if locked is None:
            continue
        busy = session.exec(
            select(PrintJob).where(
                PrintJob.printer_id == printer.id,
                col(PrintJob.state).in_(("queued", "sending")),
                col(PrintJob.claimed_by).is_not(None),
                PrintJob.claimed_by != worker,
            )
        ).all()
        if any(j.state == "sending" or (j.lease_until and j.lease_until > now) for j in busy):
            continue
        mine_sending = session.exec(
            select(PrintJob.id).where(
                PrintJob.printer_id == printer.id,
                PrintJob.state == "sending",
                PrintJob.claimed_by == worker,
            )
        ).first()
        if mine_sending is not None:
            continue
        job = session.exec(
            select(PrintJob)
            .where(PrintJob.printer_id == printer.id, PrintJob.state == "queued")
            .order_by(PrintJob.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if job is None:
            continue
        job.claimed_by = worker
        job.lease_until = now + timedelta(seconds=lease_s)
        save(session, job)
        return job
    return None


def _send_lease_s(job: PrintJob, printer: Printer) -> float:
    """Return how long a batch may take before its worker is presumed dead."""
    est = 4096 + job.labels_total * _BYTES_PER_LABEL
    # Link time with margin, the printer's own pace (well under 2 s a label), the driver's
    # stall timeout, and slack for a slow disk or network on the way back.
    return 3 * link_seconds(est, printer.baud or 9600) + 2.0 * job.labels_total + 120.0


def _require_worker(actor: Actor) -> None:
    # The printers are the centre's; a client organisation's user does not run its workers.
    if not actor.sees_all:
        raise Forbidden(
            "print jobs are claimed and reported by the centre's print workers",
            code="centre_only",
        )


def _worker_job(session: Session, job_id: int, actor: Actor) -> PrintJob:
    """Return the job locked for a worker's report: one the actor sees, of its station."""
    job = get_job(session, job_id, actor)
    _require_worker(actor)
    if actor.station:
        printer = session.get(Printer, job.printer_id)
        station = session.get(Station, printer.station_id) if printer.station_id else None
        if station is None or station.name != actor.station:
            raise Forbidden(
                f"this token belongs to station {actor.station}; job {job.id} is for printer "
                f"{printer.name}, not one of that station's",
                code="wrong_station",
            )
    return lock_job(session, job.id)


def start_sending(
    session: Session, *, job_id: int, worker: str, actor: Actor, device: str | None = None
) -> PrintJob:
    """Mark a claimed job 'sending' (committed before any byte leaves); 409 if it is gone."""
    job = _worker_job(session, job_id, actor)
    if job.state == "sending" and job.claimed_by == worker:
        return job  # a retried request: already started by this worker
    if job.state != "queued":
        raise Conflict(
            f"job {job.id} is {job.state}; do not send it", code="not_claimable", state=job.state
        )
    if job.claimed_by != worker:
        # Never name the holder: a worker id is all it takes to report for that worker.
        raise Conflict(
            f"job {job.id} is not claimed by {worker}; do not send it", code="claim_lost"
        )
    printer = session.get(Printer, job.printer_id)
    before = snapshot(job)
    now = utcnow()
    job.state = "sending"
    job.error = None
    job.sent_at = now
    job.lease_until = now + timedelta(seconds=_send_lease_s(job, printer))
    save(session, job)
    record_event(
        session,
        job,
        "print_job.send",
        actor,
        before=before,
        after={**snapshot(job), "worker": worker, "printer": printer.name, "url": printer.url},
        device=device,
    )
    return job


def release_not_ready(
    session: Session,
    *,
    job_id: int,
    worker: str,
    error: str,
    actor: Actor,
    device: str | None = None,
) -> PrintJob:
    """Give a claimed job back to the queue: the printer is not ready, nothing was sent."""
    job = lock_job(session, job_id)
    if job.state != "queued" or job.claimed_by != worker:
        return job
    job.claimed_by = None
    job.lease_until = None
    changed = job.error != error
    before = snapshot(job)
    job.error = error
    save(session, job)
    # Record the reason once per change, not once per poll (a printer may wait for hours).
    if changed:
        record_event(
            session,
            job,
            "print_job.wait",
            actor,
            before=before,
            after=snapshot(job),
            reason=error,
            device=device,
        )
    return job


def record_outcome(
    session: Session, *, job_id: int, data: OutcomeIn, actor: Actor, device: str | None = None
) -> PrintJob:
    """Record what the driver reported for a job: sent, failed at a known point, or unknown."""
    job = _worker_job(session, job_id, actor)
    if job.claimed_by != data.worker:
        raise Conflict(f"job {job.id} is not claimed by {data.worker}", code="claim_lost")
    if data.printer_ready is not None:
        note_printer(
            session,
            printer_id=job.printer_id,
            ready=data.printer_ready,
            summary=data.printer_status or "",
            answered=data.printer_answered is not False,
            job_id=job.id,
            worker=data.worker,
            actor=actor,
        )
    total = job.labels_total
    if not (data.printed <= data.sent <= total and data.printed + data.unconfirmed <= data.sent):
        raise BadRequest(
            f"impossible outcome for {total} labels: sent {data.sent}, printed {data.printed}, "
            f"unconfirmed {data.unconfirmed}",
            code="bad_outcome",
        )
    nothing_sent = data.sent == 0 and data.code in NOT_READY_CODES
    if job.state == "queued":
        if not nothing_sent:
            raise Conflict(f"job {job.id} was not started; call start first", code="not_started")
        return release_not_ready(
            session,
            job_id=job.id,
            worker=data.worker,
            actor=actor,
            device=device,
            error=not_ready_text(data.error),
        )
    late = job.state == "failed" and (job.error or "").startswith(OUTCOME_UNKNOWN)
    if job.state in ("sent", "failed") and not late:
        if job.labels_printed == (total if data.error is None else data.printed):
            return job  # the same outcome posted again (a retried request)
        raise Conflict(
            f"job {job.id} already has its outcome ({job.state})", code="outcome_recorded"
        )
    if job.state not in ("sending", "failed"):
        raise Conflict(f"job {job.id} is {job.state}", code="not_sending")
    before = snapshot(job)
    rows = labels_of(session, job)
    # Every label confirmed printed is a job done, even when the printer faults right after
    # (paper out on the last label): 'failed' would send the operator to reprint good labels.
    ok = data.printed == total
    now = utcnow()
    if ok:
        job.state = "sent"
        job.labels_printed = total
        job.labels_unconfirmed = 0
        job.error = (
            None
            if data.error is None
            else f"all {total} printed; then the printer reported: {data.error}"[:2000]
        )
        for r in rows:
            r.printed = True
            session.add(r)
        action = "print_job.print"
    else:
        job.state = "failed"
        job.labels_printed = data.printed
        job.labels_unconfirmed = data.unconfirmed
        for r in rows:
            r.printed = r.idx <= data.printed
            session.add(r)
        job.error = _failure_text(job, data)
        action = "print_job.fail"
    job.finished_at = now
    job.lease_until = None
    save(session, job)
    after = {**snapshot(job), "sent": data.sent, "cancelled": data.cancelled, "code": data.code}
    record_event(
        session,
        job,
        action,
        actor,
        before=before,
        after=after,
        reason=job.error,
        device=device,
    )
    return job


def _failure_text(job: PrintJob, data: OutcomeIn) -> str:
    parts = [data.error or f"printer reported {data.code or 'a failure'}"]
    p, u, total = data.printed, data.unconfirmed, job.labels_total
    if u:
        parts.append(f"labels {p + 1}-{p + u}: {OUTCOME_UNKNOWN}")
    if p + u < total:
        parts.append(f"labels {p + u + 1}-{total} never printed: resume the job to print them")
    return "; ".join(parts)


# --- what a worker sends -------------------------------------------------------------------


def render_claim(session: Session, job: PrintJob) -> Claim:
    """Render the bytes of a claimed job from the label content stored when it was queued."""
    printer = session.get(Printer, job.printer_id)
    template = get_template(job.template)
    contents = [labels.content_from_json(r.content) for r in labels_of(session, job)]
    batch = render_batch(contents, template)
    return Claim(
        job.id,
        printer.name,
        printer.url,
        printer.baud,
        printer.flow,
        batch.format_bytes,
        batch.labels,
    )


def claim_for_api(
    session: Session, *, data: ClaimIn, actor: Actor, local_worker: PrintWorker | None = None
) -> Claim | None:
    """Claim the next job for a station's (or one named) printer, for a remote worker.

    local_worker, the app's own worker (python app.py), leaves these printers to the remote one.
    """
    require_lab(actor, "claiming print jobs")
    _require_worker(actor)
    station = data.station or actor.station
    if actor.station and station != actor.station:
        raise Forbidden(
            f"this token belongs to station {actor.station}; it cannot claim for {station}",
            code="wrong_station",
        )
    if not station and not data.printer:
        raise BadRequest("say which station or printer to claim for", code="station_required")
    if data.printer:
        get_printer(session, data.printer)
    printers = printers_for(
        session, station=station, names=[data.printer] if data.printer else None
    )
    if local_worker is not None:
        local_worker.leave_to_agent(printers, station)
    job = claim_next(session, worker=data.worker, printers=printers, actor=actor)
    return render_claim(session, job) if job is not None else None
