"""Print jobs: queue, claim with a lease, send once, record what printed, reprint, resume, void.

A job moves queued -> sending -> sent | failed, or queued -> voided. Bytes reach a printer at
most once per job: a job is marked `sending` (committed) before its first byte leaves the port,
and nothing ever moves a job out of `sending` back to the queue once bytes may have left. A job
whose worker vanished while sending is failed as "outcome unknown" when its lease runs out; the
operator checks the printer and reprints with a reason (the label then says REPRINT).

A printer that is not ready (silent, head open, paper out, port missing) gets nothing: its
job stays queued with the reason in `error`, and is sent when a later poll finds it ready.

One original label per sample: a sample whose label is waiting in a job, printed, or may have
printed (outcome unknown) is refused by queue_labels (409 already_printed); another label of it
is a reprint, with a reason, marked REPRINT. Labels a failed job certainly never printed are
free again: resume prints them on the same printer, or queue_labels on another one (resume
then leaves out those a later job took). `copies` is the one way to get several identical
originals, in one job. Lot and box labels identify no specimen: they are not restricted.

Two kinds of worker run the same steps (claim -> status -> start -> print_batch -> outcome):
`PrintWorker` in the server process or `flask print-worker` (database access), and the station
agent over HTTP (`agent_print_once` with POST /api/print-jobs/claim, .../start, .../outcome).
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol

from pydantic import Field
from sqlalchemy import and_, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from lims import audit, custody, labels
from lims.accounts.users import Actor, system_actor
from lims.db import _read_only, new_session, set_read_only
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text, blank
from lims.models import (
    Printer,
    PrintJob,
    PrintJobLabel,
    Sample,
    Station,
    User,
    VectorLot,
    utcnow,
)
from lims.roles import LAB
from printers import (
    TEMPLATES,
    BatchOutcome,
    LabelContent,
    LabelError,
    LabelFitError,
    PrinterError,
    Template,
    ZplPrinter,
    get_template,
    render_batch,
)
from printers.transport import link_seconds
from printers.zpl import plan_label

log = logging.getLogger("lims.printing")

STATES = ("queued", "sending", "sent", "failed", "voided")
MAX_BARCODES = 500
MAX_COPIES = 10
# A claimed, still queued job: long enough to ask the printer for its status (~HS).
CLAIM_LEASE_S = 30.0
DEMO_SIM_URL = "demo-sim"
OUTCOME_UNKNOWN = "outcome unknown — check the printer and reprint"
NOT_READY_CODES = ("not_ready", "unreachable")
# Rough upper bound of bytes per stored-format recall (^XF) label, for the sending lease.
_BYTES_PER_LABEL = 200


# --- request bodies --------------------------------------------------------------------------


# One barcode of a label request: a sample, lot or location code (each at most 64 characters).
Barcode = Annotated[Line, Field(min_length=1, max_length=64)]


class PrintRequest(Input):
    barcodes: list[Barcode] = Field(min_length=1, max_length=MAX_BARCODES)
    printer: Line = Field(min_length=1, max_length=64)
    template: Line | None = Field(default=None, min_length=1, max_length=32)
    copies: int = Field(default=1, ge=1, le=MAX_COPIES)


class ReprintIn(Input):
    reason: Text = Field(min_length=1, max_length=2000)
    # Only these labels of the job (default: every label that printed or may have printed).
    barcodes: list[Barcode] | None = Field(default=None, min_length=1, max_length=MAX_BARCODES)


class ResumeIn(Input):
    reason: Text | None = Field(default=None, max_length=2000)


class VoidIn(Input):
    reason: Text = Field(min_length=1, max_length=2000)


class SheetIn(Input):
    barcodes: list[Barcode] = Field(min_length=1, max_length=MAX_BARCODES)
    template: Line | None = Field(default=None, min_length=1, max_length=32)


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


# --- small helpers ---------------------------------------------------------------------------


def _require_lab(actor: Actor, what: str) -> None:
    if actor.role not in LAB:
        raise Forbidden(f"{what} needs a technician, qa or admin role", code="role_required")


def get_printer(session: Session, name: str) -> Printer:
    """Return the printer called name (404 unknown_printer)."""
    p = session.exec(select(Printer).where(Printer.name == name)).first()
    if p is None:
        known = session.exec(select(Printer.name).where(Printer.active).order_by(Printer.name))
        raise NotFound(
            f"no printer {name[:64]!r}; the printers are {', '.join(known) or 'none yet'}",
            code="unknown_printer",
        )
    return p


def template_for(
    printer: Printer | None, name: str | None, container: str | None = None
) -> Template:
    """Return the label template: name ("cryovial" or "cryovial-300") at the printer's dpi."""
    base = name or (printer.default_template if printer else labels.default_template(container))
    try:
        if base in TEMPLATES:
            t = TEMPLATES[base]
            if printer is not None and t.dpi != printer.dpi:
                raise Refused(
                    f"template {base} is for {t.dpi} dpi; printer {printer.name} prints at "
                    f"{printer.dpi} dpi (use {base.rsplit('-', 1)[0]})",
                    code="template_dpi_mismatch",
                )
            return t
        return get_template(base, printer.dpi if printer else None)
    except LabelError as err:
        raise Refused(str(err), code="unknown_template") from err


def check_fit(contents: list[LabelContent], template: Template) -> None:
    """Refuse (422) the first label that would not fit template; nothing is clipped."""
    for c in contents:
        try:
            plan_label(c, template)
        except LabelFitError as err:
            raise Refused(
                f"label {c.barcode} does not fit {template.name}: {err}",
                code="label_does_not_fit",
                barcode=c.barcode,
                field=err.field,
                template=template.name,
            ) from err
        except LabelError as err:
            raise Refused(
                f"label {c.barcode} cannot be printed: {err}",
                code="label_invalid",
                barcode=c.barcode,
                template=template.name,
            ) from err


def _labels_of(session: Session, job: PrintJob) -> list[PrintJobLabel]:
    return list(
        session.exec(
            select(PrintJobLabel).where(PrintJobLabel.job_id == job.id).order_by(PrintJobLabel.idx)
        ).all()
    )


def labels_by_job(session: Session, job_ids: list[int]) -> dict[int, list[PrintJobLabel]]:
    """Return the labels of each job, in order, read in one query (for lists of jobs)."""
    out: dict[int, list[PrintJobLabel]] = {i: [] for i in job_ids}
    if job_ids:
        rows = session.exec(
            select(PrintJobLabel)
            .where(col(PrintJobLabel.job_id).in_(job_ids))
            .order_by(col(PrintJobLabel.job_id), col(PrintJobLabel.idx))
        ).all()
        for r in rows:
            out[r.job_id].append(r)
    return out


def _label_scope_rows(session: Session, job_ids: list[int]) -> list[tuple[int, Any, Any]]:
    """Return the distinct (job_id, org_id, lot_id) of everything the jobs label, in one query.

    A tube gives its organisation and lot; a lot label its lot's; a box label (None, None):
    boxes are the centre's.
    """
    # One query, not one per label: an outcome of a 96-label job is recorded on the hot path.
    return list(
        session.exec(
            select(
                PrintJobLabel.job_id,
                func.coalesce(Sample.org_id, VectorLot.org_id),
                func.coalesce(Sample.lot_id, VectorLot.id),
            )
            .select_from(PrintJobLabel)
            .outerjoin(Sample, col(PrintJobLabel.sample_id) == col(Sample.id))
            .outerjoin(
                VectorLot,
                and_(
                    col(PrintJobLabel.sample_id).is_(None),
                    col(VectorLot.lot_number) == col(PrintJobLabel.barcode),
                ),
            )
            .where(col(PrintJobLabel.job_id).in_(job_ids))
            .distinct()
        ).all()
    )


def label_orgs_by_job(session: Session, job_ids: list[int]) -> dict[int, set[int | None]]:
    """Return, per job, the organisations of what it labels (None: a box, the centre's)."""
    out: dict[int, set[int | None]] = {j: set() for j in job_ids}
    if job_ids:
        for job_id, org, _lot in _label_scope_rows(session, job_ids):
            out[job_id].add(org)
    return out


def _scope(session: Session, job: PrintJob) -> tuple[int | None, int | None]:
    """Return (org_id, lot_id) shared by every label of a job, for the audit event.

    The event names every barcode of the job, so it belongs to one organisation only when every
    label does; otherwise (None) only centre staff see it.
    """
    scopes = _label_scope_rows(session, [job.id])
    orgs = {org for _, org, _ in scopes}
    lots = {lot for _, _, lot in scopes}
    org = orgs.pop() if len(orgs) == 1 else None
    lot = lots.pop() if len(lots) == 1 else None
    return org, lot


def _record(
    session: Session,
    job: PrintJob,
    action: str,
    actor: Actor,
    *,
    before: dict | None = None,
    after: dict | None = None,
    reason: str | None = None,
    device: str | None = None,
) -> None:
    org_id, lot_id = _scope(session, job)
    audit.record(
        session,
        actor=actor.username,
        action=action,
        entity_type="print_job",
        entity_id=str(job.id),
        before=before,
        after=after,
        reason=reason,
        org_id=org_id,
        lot_id=lot_id,
        station=actor.station,
        device=device or actor.device,
    )


def _snap(job: PrintJob) -> dict[str, Any]:
    return {
        "state": job.state,
        "labels_total": job.labels_total,
        "labels_printed": job.labels_printed,
        "labels_unconfirmed": job.labels_unconfirmed,
        "error": job.error,
    }


def _touch(job: PrintJob) -> None:
    job.version += 1


def label_status(job: PrintJob, row: PrintJobLabel) -> str:
    """Return what became of one label: pending, printed, unknown or not_printed."""
    if row.printed:
        return "printed"
    if job.state in ("queued", "sending"):
        return "pending"
    if job.labels_printed < row.idx <= job.labels_printed + job.labels_unconfirmed:
        return "unknown"
    return "not_printed"


def json_ts(value: datetime | None) -> str | None:
    """Return value as the API's UTC timestamp (2026-01-31T12:00:00Z), or None."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def job_dict(
    session: Session,
    job: PrintJob,
    with_labels: bool = True,
    rows: list[PrintJobLabel] | None = None,
) -> dict[str, Any]:
    """Return the public JSON of a print job (rows: its labels, if already read)."""
    printer = session.get(Printer, job.printer_id)
    by = session.get(User, job.created_by_id)
    rows = _labels_of(session, job) if rows is None else rows
    now = utcnow()
    out: dict[str, Any] = {
        "id": job.id,
        "printer": printer.name,
        "state": job.state,
        "template": job.template,
        "copies": job.copies,
        "labels_total": job.labels_total,
        "labels_printed": job.labels_printed,
        "labels_unconfirmed": job.labels_unconfirmed,
        "labels_remaining": sum(1 for r in rows if label_status(job, r) == "not_printed"),
        "reprint_of": job.reprint_of_id,
        "resume_of": job.resume_of_id,
        "reason": job.reason,
        "error": job.error,
        "created_by": by.username if by else None,
        "created_at": json_ts(job.created_at),
        "claimed_by": job.claimed_by,
        "lease_until": json_ts(job.lease_until),
        # A job still 'sending' after its lease: its worker stopped answering mid-batch.
        "stale": job.state == "sending" and job.lease_until is not None and job.lease_until < now,
        "sent_at": json_ts(job.sent_at),
        "finished_at": json_ts(job.finished_at),
        "version": job.version,
    }
    if with_labels:
        out["labels"] = [
            {
                "idx": r.idx,
                "barcode": r.barcode,
                "printed": r.printed,
                "status": label_status(job, r),
                "reprint": bool(labels.content_from_json(r.content).reprint),
            }
            for r in rows
        ]
    return out


def job_visible_to(actor: Actor, *, creator_org: int | None, label_orgs: set[int | None]) -> bool:
    """Tell whether the actor may see a job: made in their organisation, or only their labels.

    label_orgs: the organisations of every label (label_orgs_by_job): a job that also labels
    another organisation's tube or lot, or a centre box, names them. The one rule for the API
    and the print-queue page (which loads the inputs in bulk).
    """
    return actor.sees_all or creator_org == actor.org.id or label_orgs == {actor.org.id}


def job_visible(session: Session, job: PrintJob, actor: Actor) -> bool:
    """Tell whether the actor may see the job (see job_visible_to)."""
    if actor.sees_all:
        return True
    creator = session.get(User, job.created_by_id)
    return job_visible_to(
        actor,
        creator_org=creator.org_id if creator is not None else None,
        label_orgs=label_orgs_by_job(session, [job.id])[job.id],
    )


def get_job(session: Session, job_id: int, actor: Actor) -> PrintJob:
    """Return a print job the actor may see (another organisation's job is a 404)."""
    job = session.get(PrintJob, job_id)
    if job is None or not job_visible(session, job, actor):
        raise NotFound(f"no print job {job_id}", code="unknown_print_job")
    return job


def list_jobs(
    session: Session,
    actor: Actor,
    *,
    printer: str | None = None,
    state: str | None = None,
    station: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[PrintJob]:
    """Return visible print jobs, newest first, filtered by printer, state and station."""
    stmt = select(PrintJob)
    if printer:
        stmt = stmt.where(PrintJob.printer_id == get_printer(session, printer).id)
    if state:
        if state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}", code="bad_state")
        stmt = stmt.where(PrintJob.state == state)
    if station:
        st = session.exec(select(Station).where(Station.name == station)).first()
        if st is None:
            raise NotFound(f"no station {station!r}", code="unknown_station")
        ids = session.exec(select(Printer.id).where(Printer.station_id == st.id)).all()
        stmt = stmt.where(col(PrintJob.printer_id).in_(list(ids) or [-1]))
    if before_id:
        stmt = stmt.where(PrintJob.id < before_id)
    out: list[PrintJob] = []
    # Client users see only their own jobs; filter in pages so `limit` still means something.
    for job in session.exec(stmt.order_by(col(PrintJob.id).desc())):
        if job_visible(session, job, actor):
            out.append(job)
            if len(out) >= limit:
                break
    return out


# --- creating jobs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelInUse:
    """A sample's label that is waiting, printed or of unknown fate in a job."""

    barcode: str
    job_id: int
    job_state: str
    status: str  # pending | printed | unknown


def labels_in_use(
    session: Session, sample_ids: list[int], *, exclude_jobs: set[int] | None = None
) -> dict[int, LabelInUse]:
    """Return, per sample, the newest job whose label of it is pending, printed or unknown."""
    if not sample_ids:
        return {}
    rows = session.exec(
        select(PrintJobLabel, PrintJob)
        .join(PrintJob, col(PrintJob.id) == col(PrintJobLabel.job_id))
        .where(col(PrintJobLabel.sample_id).in_(sample_ids), PrintJob.state != "voided")
        .order_by(col(PrintJob.id), col(PrintJobLabel.idx))
    ).all()
    out: dict[int, LabelInUse] = {}
    for row, job in rows:
        if exclude_jobs and job.id in exclude_jobs:
            continue
        status = label_status(job, row)
        if status != "not_printed":
            out[row.sample_id] = LabelInUse(row.barcode, job.id, job.state, status)
    return out


def _lock_samples(session: Session, sample_ids: list[int]) -> None:
    """Lock the samples' rows (PostgreSQL; SQLite holds the write lock)."""
    # Without it two requests at once both find a sample's label free and both queue it.
    if sample_ids:
        session.exec(
            select(Sample.id)
            .where(col(Sample.id).in_(sorted(set(sample_ids))))
            .order_by(col(Sample.id))
            .with_for_update()
        ).all()


def _already_printed(found: list[LabelInUse]) -> Conflict:
    first = found[0]
    what = {
        "pending": f"is waiting to print in print job {first.job_id} ({first.job_state})",
        "printed": f"was printed in print job {first.job_id}",
        "unknown": f"may have printed in print job {first.job_id} (outcome unknown)",
    }[first.status]
    then = (
        f"once it has printed, reprint job {first.job_id} with a reason (the label says "
        f"REPRINT), or void job {first.job_id} if it is not wanted"
        if first.status == "pending"
        else f"reprint job {first.job_id} with a reason (the label says REPRINT)"
    )
    more = f" ({len(found) - 1} more listed in conflicts)" if len(found) > 1 else ""
    return Conflict(
        f"{first.barcode} {what}: a second original would be a duplicate id label. For another "
        f"label, {then}{more}",
        code="already_printed",
        barcode=first.barcode,
        job=first.job_id,
        conflicts=[
            {"barcode": f.barcode, "job": f.job_id, "state": f.job_state, "status": f.status}
            for f in found
        ],
    )


def _create(
    session: Session,
    *,
    printer: Printer,
    template: Template,
    items: list[tuple[LabelContent, int | None]],
    copies: int,
    actor: Actor,
    action: str,
    reason: str | None = None,
    reprint_of: PrintJob | None = None,
    resume_of: PrintJob | None = None,
    extra: dict[str, Any] | None = None,
) -> PrintJob:
    if not printer.active:
        raise Refused(f"printer {printer.name} is inactive", code="printer_inactive")
    check_fit([c for c, _ in items], template)
    job = PrintJob(
        printer_id=printer.id,
        template=template.name,
        copies=copies,
        labels_total=len(items) * copies,
        reprint_of_id=reprint_of.id if reprint_of else None,
        resume_of_id=resume_of.id if resume_of else None,
        reason=reason,
        created_by_id=actor.user.id,
    )
    session.add(job)
    session.flush()
    idx = 0
    for content, sample_id in items:
        for _ in range(copies):
            idx += 1
            session.add(
                PrintJobLabel(
                    job_id=job.id,
                    idx=idx,
                    sample_id=sample_id,
                    barcode=content.barcode,
                    content=labels.content_to_json(content),
                )
            )
    session.flush()
    _record(
        session,
        job,
        action,
        actor,
        after={
            **_snap(job),
            "printer": printer.name,
            "template": template.name,
            "copies": copies,
            "barcodes": [c.barcode for c, _ in items],
            "reprint_of": job.reprint_of_id,
            "resume_of": job.resume_of_id,
            **(extra or {}),
        },
        reason=reason,
    )
    return job


def queue_labels(session: Session, *, data: PrintRequest, actor: Actor) -> PrintJob:
    """Queue labels for samples, lots or boxes on a printer (one job, all or nothing).

    A sample whose label is queued, printed or of unknown fate in another job is refused (409
    already_printed): another label of it is a reprint. Lot and box labels are not restricted.
    """
    _require_lab(actor, "printing labels")
    printer = get_printer(session, data.printer)
    seen: set[str] = set()
    items: list[tuple[LabelContent, int | None]] = []
    kinds: set[str] = set()
    for barcode in data.barcodes:
        if barcode in seen:
            raise Refused(
                f"{barcode} is listed twice; a duplicate id label is a hazard (use copies "
                "when two labels are intended)",
                code="duplicate_barcode",
                barcode=barcode,
            )
        seen.add(barcode)
        src = labels.resolve(session, barcode, actor)
        items.append((src.content, src.sample_id))
        kinds.add(src.kind)
    template = template_for(printer, data.template or labels.default_stock(kinds))
    sample_ids = [sid for _, sid in items if sid is not None]
    _lock_samples(session, sample_ids)
    closed = session.exec(
        select(Sample.barcode, Sample.state).where(
            col(Sample.id).in_(sample_ids), col(Sample.state).in_(sorted(custody.TERMINAL))
        )
    ).first()
    if closed is not None:
        # Material that is gone gets no new identity label.
        raise Refused(
            f"{closed[0]} is {closed[1]}: no new label is printed for it",
            code="sample_closed",
            barcode=closed[0],
        )
    in_use = labels_in_use(session, sample_ids)
    if in_use:
        raise _already_printed([in_use[sid] for sid in sample_ids if sid in in_use])
    return _create(
        session,
        printer=printer,
        template=template,
        items=items,
        copies=data.copies,
        actor=actor,
        action="print_job.queue",
    )


def reprint(
    session: Session,
    *,
    job_id: int,
    reason: str,
    actor: Actor,
    barcodes: list[str] | None = None,
) -> PrintJob:
    """Queue a reprint of the labels of a job that printed (or may have): REPRINT on each."""
    _require_lab(actor, "reprinting labels")
    reason = (reason or "").strip()
    if not reason:
        raise Refused("a reprint needs a reason", code="reason_required")
    job = get_job(session, job_id, actor)
    if job.state not in ("sent", "failed"):
        due = f"{job.lease_until:%H:%M} UTC" if job.lease_until else "the end of its lease"
        hint = {
            "queued": "it has not printed yet; void it if it is not wanted",
            # A worker that died mid-job leaves it 'sending' until its lease runs out.
            "sending": f"it is printing (worker {job.claimed_by}); wait for its outcome. If that "
            f"worker stopped, the job is failed as 'outcome unknown' at {due} and can be "
            "reprinted then",
            "voided": "it was voided before printing; queue new labels instead",
        }[job.state]
        raise Refused(f"job {job.id} is {job.state}: {hint}", code="not_reprintable")
    every = _labels_of(session, job)
    rows = [r for r in every if label_status(job, r) in ("printed", "unknown")]
    if barcodes is not None:
        wanted = set(barcodes)
        unknown = wanted - {r.barcode for r in every}
        if unknown:
            raise Refused(
                f"not labels of job {job.id}: {', '.join(sorted(unknown))}", code="not_in_job"
            )
        never = wanted - {r.barcode for r in rows}
        if never:
            raise Refused(
                f"never printed in job {job.id}: {', '.join(sorted(never))}; resume the job "
                "to print them (without REPRINT)",
                code="never_printed",
            )
        rows = [r for r in rows if r.barcode in wanted]
    if not rows:
        raise Refused(
            f"no label of job {job.id} printed; resume it to print the labels",
            code="never_printed",
        )
    printer = session.get(Printer, job.printer_id)
    template = template_for(printer, job.template)
    items = [(labels.content_from_json(r.content, reprint=True), r.sample_id) for r in rows]
    return _create(
        session,
        printer=printer,
        template=template,
        items=items,
        copies=1,
        actor=actor,
        action="print_job.reprint",
        reason=reason,
        reprint_of=job,
    )


def resume(session: Session, *, job_id: int, actor: Actor, reason: str | None = None) -> PrintJob:
    """Queue, as a new job, the labels of a failed job that certainly never printed.

    Labels that another job has taken since (queued on another printer, say) are left out.
    """
    _require_lab(actor, "printing labels")
    # Lock the job before asking whether it was resumed: two resumes at once (PostgreSQL) would
    # otherwise both find none and both print the rest.
    job = _lock(session, get_job(session, job_id, actor).id)
    if job.state != "failed":
        raise Refused(
            f"job {job.id} is {job.state}; only a failed job can be resumed", code="not_resumable"
        )
    done = session.exec(
        select(PrintJob).where(PrintJob.resume_of_id == job.id, PrintJob.state != "voided")
    ).first()
    if done is not None:
        raise Conflict(
            f"job {job.id} was resumed already as job {done.id}",
            code="already_resumed",
            job=done.id,
        )
    rows = [r for r in _labels_of(session, job) if label_status(job, r) == "not_printed"]
    if not rows:
        unknown = job.labels_unconfirmed
        why = (
            f"{unknown} labels have an unknown outcome: check the printer and reprint them "
            "with a reason"
            if unknown
            else "every label printed"
        )
        raise Refused(f"job {job.id} has nothing left to print: {why}", code="nothing_to_resume")
    sample_ids = [r.sample_id for r in rows if r.sample_id is not None]
    _lock_samples(session, sample_ids)
    # This job's own printed copies and its reprints do not make its other copies duplicates.
    mine = {job.id} | set(
        session.exec(select(PrintJob.id).where(PrintJob.reprint_of_id == job.id)).all()
    )
    taken = labels_in_use(session, sample_ids, exclude_jobs=mine)
    skipped = [
        {"barcode": r.barcode, "job": taken[r.sample_id].job_id}
        for r in rows
        if r.sample_id in taken
    ]
    rows = [r for r in rows if r.sample_id not in taken]
    if not rows:
        jobs = ", ".join(sorted({str(s["job"]) for s in skipped}))
        raise Refused(
            f"job {job.id} has nothing left to print: its unprinted labels were queued again "
            f"in job {jobs}",
            code="nothing_to_resume",
            skipped=skipped,
        )
    printer = session.get(Printer, job.printer_id)
    template = template_for(printer, job.template)
    items = [(labels.content_from_json(r.content), r.sample_id) for r in rows]
    return _create(
        session,
        printer=printer,
        template=template,
        items=items,
        copies=1,
        actor=actor,
        action="print_job.resume",
        reason=f"rest of job {job.id} after: {job.error}" if blank(reason) else reason,
        resume_of=job,
        extra={"skipped": skipped} if skipped else None,
    )


def void(session: Session, *, job_id: int, reason: str, actor: Actor) -> PrintJob:
    """Void a queued job (it will never be sent), with a reason."""
    _require_lab(actor, "voiding a print job")
    reason = (reason or "").strip()
    if not reason:
        raise Refused("voiding a print job needs a reason", code="reason_required")
    job = _lock(session, get_job(session, job_id, actor).id)
    if job.state != "queued":
        raise Refused(
            f"job {job.id} is {job.state}; only a queued job can be voided",
            code="not_voidable",
            state=job.state,
        )
    before = _snap(job)
    job.state = "voided"
    job.finished_at = utcnow()
    job.claimed_by = None
    job.lease_until = None
    _touch(job)
    session.add(job)
    session.flush()
    _record(session, job, "print_job.void", actor, before=before, after=_snap(job), reason=reason)
    return job


# --- claiming and outcomes (shared by the local worker and the station agent's API) ---------


def _lock(session: Session, job_id: int) -> PrintJob:
    """Return the job row locked for update (PostgreSQL; SQLite holds the write lock)."""
    job = session.exec(select(PrintJob).where(PrintJob.id == job_id).with_for_update()).first()
    if job is None:
        raise NotFound(f"no print job {job_id}", code="unknown_print_job")
    session.refresh(job)
    return job


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
        before = _snap(job)
        job.state = "failed"
        job.labels_unconfirmed = job.labels_total - job.labels_printed
        job.error = (
            f"{OUTCOME_UNKNOWN} (worker {job.claimed_by} stopped answering while sending; "
            f"its lease ended {json_ts(job.lease_until)})"
        )
        job.finished_at = now
        _touch(job)
        session.add(job)
        session.flush()
        _record(
            session, job, "print_job.fail", actor, before=before, after=_snap(job), reason=job.error
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
        _touch(job)
        session.add(job)
        session.flush()
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
    return _lock(session, job.id)


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
    before = _snap(job)
    now = utcnow()
    job.state = "sending"
    job.error = None
    job.sent_at = now
    job.lease_until = now + timedelta(seconds=_send_lease_s(job, printer))
    _touch(job)
    session.add(job)
    session.flush()
    _record(
        session,
        job,
        "print_job.send",
        actor,
        before=before,
        after={**_snap(job), "worker": worker, "printer": printer.name, "url": printer.url},
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
    job = _lock(session, job_id)
    if job.state != "queued" or job.claimed_by != worker:
        return job
    job.claimed_by = None
    job.lease_until = None
    changed = job.error != error
    before = _snap(job)
    job.error = error
    _touch(job)
    session.add(job)
    session.flush()
    # Record the reason once per change, not once per poll (a printer may wait for hours).
    if changed:
        _record(
            session,
            job,
            "print_job.wait",
            actor,
            before=before,
            after=_snap(job),
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
            error=_not_ready_text(data.error),
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
    before = _snap(job)
    rows = _labels_of(session, job)
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
    _touch(job)
    session.add(job)
    session.flush()
    after = {**_snap(job), "sent": data.sent, "cancelled": data.cancelled, "code": data.code}
    _record(
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


def _not_ready_text(error: str | None) -> str:
    text = error or "no status from the printer"
    return text if text.startswith("printer not ready") else f"printer not ready: {text}"


def _failure_text(job: PrintJob, data: OutcomeIn) -> str:
    parts = [data.error or f"printer reported {data.code or 'a failure'}"]
    p, u, total = data.printed, data.unconfirmed, job.labels_total
    if u:
        parts.append(f"labels {p + 1}-{p + u}: {OUTCOME_UNKNOWN}")
    if p + u < total:
        parts.append(f"labels {p + u + 1}-{total} never printed: resume the job to print them")
    return "; ".join(parts)


# --- what a worker sends -------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A claimed job with everything a worker needs to print it, and nothing from the DB."""

    job_id: int
    printer: str
    url: str
    baud: int
    flow: str
    format_bytes: bytes | None
    labels: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form sent to a station agent (bytes in base64)."""
        return {
            "id": self.job_id,
            "printer": {
                "name": self.printer,
                "url": self.url,
                "baud": self.baud,
                "flow": self.flow,
            },
            "format_b64": base64.b64encode(self.format_bytes).decode()
            if self.format_bytes
            else None,
            "labels_b64": [base64.b64encode(b).decode() for b in self.labels],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Claim:
        """Rebuild a claim from its JSON form."""
        fmt = data.get("format_b64")
        return cls(
            job_id=int(data["id"]),
            printer=data["printer"]["name"],
            url=data["printer"]["url"],
            baud=int(data["printer"]["baud"]),
            flow=data["printer"]["flow"],
            format_bytes=base64.b64decode(fmt) if fmt else None,
            labels=tuple(base64.b64decode(b) for b in data["labels_b64"]),
        )


def render_claim(session: Session, job: PrintJob) -> Claim:
    """Render the bytes of a claimed job from the label content stored when it was queued."""
    printer = session.get(Printer, job.printer_id)
    template = get_template(job.template)
    contents = [labels.content_from_json(r.content) for r in _labels_of(session, job)]
    batch = render_batch(contents, template, stored=True)
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
    _require_lab(actor, "claiming print jobs")
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


# --- the device side: one claimed job through the driver -----------------------------------


class Backend(Protocol):
    """Where a worker reports: the database (local worker) or the server's API (agent)."""

    def start(self, job_id: int) -> bool:
        """Mark the job sending; tell whether it may be sent."""
        ...

    def outcome(self, job_id: int, body: dict[str, Any]) -> None:
        """Report the outcome (body: OutcomeIn fields without worker)."""
        ...


def _outcome_body(o: BatchOutcome) -> dict[str, Any]:
    return {
        "sent": o.sent,
        "printed": o.printed,
        "unconfirmed": o.unconfirmed,
        "cancelled": o.cancelled,
        "error": o.error,
        "code": o.code,
    }


def print_claim(
    claim: Claim,
    backend: Backend,
    *,
    url: str | None = None,
    timeout: float = 2.0,
    stall_timeout: float = 15.0,
) -> dict[str, Any]:
    """Check the printer, mark the job sending, send it once, report what printed.

    Return the outcome body that was reported. Nothing here retries a send.
    """
    target = url or claim.url
    dev = ZplPrinter(
        target,
        baud=claim.baud,
        flow=claim.flow,
        timeout=timeout,  # type: ignore[arg-type]
        stall_timeout=stall_timeout,
    )
    try:
        try:
            dev.require_ready()
        except PrinterError as err:
            body = {
                "sent": 0,
                "printed": 0,
                "unconfirmed": 0,
                "cancelled": 0,
                "error": _not_ready_text(str(err)),
                "code": "not_ready",
            }
            log.info(
                "job %s: %s at %s: %s; left queued",
                claim.job_id,
                claim.printer,
                target,
                body["error"],
            )
            backend.outcome(claim.job_id, body)
            return body
        if not backend.start(claim.job_id):
            log.info("job %s: no longer claimable (voided or taken); not sent", claim.job_id)
            return {"sent": 0, "printed": 0, "error": "not started", "code": "not_started"}
        log.info(
            "job %s: sending %d labels to %s at %s",
            claim.job_id,
            len(claim.labels),
            claim.printer,
            target,
        )
        try:
            result = dev.print_batch(claim.format_bytes, claim.labels)
            body = _outcome_body(result)
        except Exception as exc:  # noqa: BLE001 - whatever broke, bytes may have left: no retry
            log.exception("job %s: driver error while sending", claim.job_id)
            body = {
                "sent": len(claim.labels),
                "printed": 0,
                "unconfirmed": len(claim.labels),
                "cancelled": 0,
                "error": f"worker error while sending: {exc}",
                "code": "worker_error",
            }
        backend.outcome(claim.job_id, body)
        if body["error"]:
            log.warning("job %s on %s: %s", claim.job_id, claim.printer, body["error"])
        else:
            log.info(
                "job %s on %s: %d labels printed", claim.job_id, claim.printer, body["printed"]
            )
        return body
    finally:
        dev.close()


# --- the local worker (database access) ----------------------------------------------------


def new_worker_id(kind: str = "worker") -> str:
    """Return a name for a worker that is unique across hosts and restarts."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@contextmanager
def _tx(engine: Engine) -> Iterator[Session]:
    """One write transaction: commit on success, roll back on any error."""
    token = set_read_only(False)
    db = new_session(engine)
    try:
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()
        _read_only.reset(token)


def _worker_actor(db: Session, worker: str, printer: Printer | None = None) -> Actor:
    base = system_actor(db)
    station = None
    if printer is not None and printer.station_id:
        station = db.get(Station, printer.station_id).name
    return Actor(user=base.user, org=base.org, station=station, device=f"print-worker {worker}")


class _DbBackend:
    def __init__(self, engine: Engine, worker: str) -> None:
        self.engine = engine
        self.worker = worker

    def _actor(self, db: Session, job_id: int) -> Actor:
        job = db.get(PrintJob, job_id)
        return _worker_actor(db, self.worker, db.get(Printer, job.printer_id) if job else None)

    def start(self, job_id: int) -> bool:
        try:
            with _tx(self.engine) as db:
                start_sending(db, job_id=job_id, worker=self.worker, actor=self._actor(db, job_id))
            return True
        except Conflict as err:
            log.info("job %s: %s", job_id, err.message)
            return False

    def outcome(self, job_id: int, body: dict[str, Any]) -> None:
        with _tx(self.engine) as db:
            record_outcome(
                db,
                job_id=job_id,
                data=OutcomeIn(worker=self.worker, **body),
                actor=self._actor(db, job_id),
            )


@dataclass
class JobReport:
    """What one worker step did with one job."""

    job_id: int
    printer: str
    outcome: dict[str, Any]


@dataclass
class PrintWorker:
    """Print queued jobs on local printers: one thread per printer, leases in the database."""

    engine: Engine
    printers: list[str] | None = None
    station: str | None = None
    url_map: dict[str, str] = field(default_factory=dict)
    worker_id: str = field(default_factory=new_worker_id)
    timeout: float = 2.0
    stall_timeout: float = 15.0
    poll_s: float = 1.0
    not_ready_backoff_s: float = 5.0
    simulate_demo: bool = True
    simulators: dict[str, Any] = field(default_factory=dict)
    # Printers a station agent has claimed jobs for: that agent prints them, this worker not.
    left_to_agents: set[int] = field(default_factory=set)

    def leave_to_agent(self, printers: list[Printer], station: str | None) -> None:
        """Stop printing these printers here: a station agent serves them from now on."""
        new = [p for p in printers if p.id not in self.left_to_agents]
        self.left_to_agents.update(p.id for p in new)
        for p in new:
            # Two workers on one printer would split its jobs between two devices.
            log.warning(
                "printer %s is printed by the agent of %s from now on, not by %s "
                "(restart to print it here again)",
                p.name,
                station or "a remote worker",
                self.worker_id,
            )

    def _printers(self) -> list[Printer]:
        with new_session(self.engine) as db:
            return printers_for(db, station=self.station, names=self.printers)

    def _url(self, printer: Printer) -> str:
        if printer.name in self.url_map:
            return self.url_map[printer.name]
        if printer.url == DEMO_SIM_URL and self.simulate_demo:
            sim = start_demo_simulator(printer)
            self.simulators[printer.name] = sim
            self.url_map[printer.name] = sim.port
            return sim.port
        return printer.url

    def step(self, printer: Printer) -> JobReport | None:
        """Claim and print at most one job of printer; return what happened, or None."""
        if printer.id in self.left_to_agents:
            return None
        with _tx(self.engine) as db:
            actor = _worker_actor(db, self.worker_id, printer)
            job = claim_next(db, worker=self.worker_id, printers=[printer], actor=actor)
            claim = render_claim(db, job) if job is not None else None
        if claim is None:
            return None
        body = print_claim(
            claim,
            _DbBackend(self.engine, self.worker_id),
            url=self._url(printer),
            timeout=self.timeout,
            stall_timeout=self.stall_timeout,
        )
        return JobReport(claim.job_id, printer.name, body)

    def run_once(self) -> list[JobReport]:
        """Print every queued job that can print now (a not-ready printer is left for later)."""
        reports = []
        for printer in self._printers():
            while True:
                rep = self.step(printer)
                if rep is None:
                    break
                reports.append(rep)
                if rep.outcome.get("code") in NOT_READY_CODES:
                    break
        return reports

    def _printer_loop(self, printer_id: int, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with new_session(self.engine) as db:
                    printer = db.get(Printer, printer_id)
                if printer is None or not printer.active:
                    return
                rep = self.step(printer)
            except Exception:  # noqa: BLE001 - keep the worker alive; the job state is true
                log.exception("print worker step failed on printer %s", printer_id)
                rep = None
                stop.wait(self.not_ready_backoff_s)
                continue
            if rep is None:
                stop.wait(self.poll_s)
            elif rep.outcome.get("code") in NOT_READY_CODES:
                stop.wait(self.not_ready_backoff_s)

    def run(self, stop: threading.Event) -> None:
        """Run until stop is set: one thread per printer, new printers picked up as added."""
        threads: dict[int, threading.Thread] = {}
        log.info(
            "print worker %s started (station=%s printers=%s)",
            self.worker_id,
            self.station or "any",
            ",".join(self.printers or []) or "all",
        )
        while not stop.is_set():
            try:
                for p in self._printers():
                    t = threads.get(p.id)
                    if t is None or not t.is_alive():
                        t = threading.Thread(
                            target=self._printer_loop,
                            args=(p.id, stop),
                            name=f"print-worker:{p.name}",
                            daemon=True,
                        )
                        threads[p.id] = t
                        t.start()
            except Exception:  # noqa: BLE001
                log.exception("print worker could not list printers")
            stop.wait(max(self.poll_s, 5.0))
        for t in threads.values():
            t.join(timeout=self.stall_timeout + 5)
        log.info("print worker %s stopped", self.worker_id)

    def close(self) -> None:
        """Stop the simulators this worker started."""
        for sim in self.simulators.values():
            sim.stop()
        self.simulators.clear()


def start_demo_simulator(printer: Printer, print_time: float = 0.05) -> Any:
    """Start a simulated ZPL printer on a pty for a printer whose URL is 'demo-sim'."""
    from printers.mock import PrinterSimulator

    sim = PrinterSimulator(baud=printer.baud or 9600, print_time=print_time).start()
    log.info(
        "printer %s is the demo simulator on %s (%s baud)", printer.name, sim.port, printer.baud
    )
    return sim


def start_device_worker(app: Any) -> PrintWorker | None:
    """Start the in-process print worker (python app.py) with simulators for 'demo-sim'.

    Runs only when the app's RUN_DEVICE_WORKER is set; the printers' URLs in the database are
    left as they are, the simulators' pty paths are mapped at runtime.
    """
    if not app.config.get("RUN_DEVICE_WORKER"):
        return None
    engine = app.extensions["lims"]["engine"]
    worker = PrintWorker(engine, worker_id=new_worker_id("server"))
    with new_session(engine) as db:
        demo = list(db.exec(select(Printer).where(Printer.url == DEMO_SIM_URL)).all())
    for p in demo:
        worker._url(p)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="print-worker", daemon=True)
    thread.start()
    app.extensions["lims"]["print_worker"] = {"worker": worker, "stop": stop, "thread": thread}
    return worker


# --- the station agent side (HTTP, no database) ---------------------------------------------

# call(method, path, body) -> (HTTP status, JSON body or None); raises OSError when unreachable.
Call = Callable[[str, str, dict | None], tuple[int, dict | None]]


class HttpBackend:
    """Report to the server's print-job API; start and outcome are retried until answered."""

    def __init__(
        self,
        call: Call,
        worker: str,
        retry_s: float = 1.0,
        give_up_s: float = 600.0,
        stop: threading.Event | None = None,
        start_give_up_s: float = 4 * CLAIM_LEASE_S,
    ) -> None:
        self.call = call
        self.worker = worker
        self.retry_s = retry_s
        self.give_up_s = give_up_s
        self.start_give_up_s = start_give_up_s
        self.stop = stop or threading.Event()

    def _post(self, path: str, payload: dict, give_up_s: float) -> tuple[int | None, dict | None]:
        """POST until the server answers (not a 5xx, not busy); (None, last reply) on giving up."""
        waited = 0.0
        while True:
            try:
                status, body = self.call("POST", path, payload)
            except OSError as exc:
                status, body = None, {"message": str(exc)}
            busy = status == 409 and (body or {}).get("error") == "conflict"
            if status is not None and status < 500 and not busy:
                return status, body
            if waited >= give_up_s or self.stop.wait(self.retry_s):
                return None, body
            waited += self.retry_s

    def start(self, job_id: int) -> bool:
        """Mark the job sending; tell whether it may be sent (only after a 200)."""
        # A lost reply or a server that is down is asked again: the server may have marked the
        # job sending already, and giving up would leave it to fail as 'outcome unknown'
        # although nothing printed. Asking again is safe (start is idempotent for one worker).
        status, body = self._post(
            f"/api/print-jobs/{job_id}/start", {"worker": self.worker}, self.start_give_up_s
        )
        if status is None:
            log.warning("job %s: could not start (%s); not sent", job_id, body)
        elif status != 200:
            log.info("job %s: server refused start (%s): %s", job_id, status, body)
        return status == 200

    def outcome(self, job_id: int, body: dict[str, Any]) -> None:
        """Report what happened to the job; retried for give_up_s (it is the only record)."""
        status, answer = self._post(
            f"/api/print-jobs/{job_id}/outcome", {"worker": self.worker, **body}, self.give_up_s
        )
        if status is None:
            log.error(
                "job %s: outcome NOT recorded (%s); it will show 'outcome unknown'", job_id, answer
            )
        elif status != 200:
            log.error("job %s: outcome refused (%s): %s", job_id, status, answer)


def agent_print_once(
    call: Call,
    *,
    station: str,
    worker: str,
    url_map: dict[str, str] | None = None,
    timeout: float = 2.0,
    stop: threading.Event | None = None,
) -> dict[str, Any] | None:
    """Claim one job of the station's printers over HTTP and print it; None when idle."""
    status, body = call("POST", "/api/print-jobs/claim", {"station": station, "worker": worker})
    if status != 200 or not body or body.get("job") is None:
        if status != 200:
            log.warning("claim for %s refused (%s): %s", station, status, body)
        return None
    claim = Claim.from_json(body["job"])
    url = (url_map or {}).get(claim.printer)
    backend = HttpBackend(call, worker, stop=stop)
    return {"job": claim.job_id, **print_claim(claim, backend, url=url, timeout=timeout)}


def agent_print_loop(
    call: Call,
    stop: threading.Event,
    *,
    station: str,
    worker: str | None = None,
    url_map: dict[str, str] | None = None,
    poll_s: float = 2.0,
) -> None:
    """Print the station's jobs until stop is set (the station agent's print_worker hook)."""
    worker = worker or new_worker_id(f"agent:{station}")
    while not stop.is_set():
        try:
            done = agent_print_once(
                call, station=station, worker=worker, url_map=url_map, stop=stop
            )
        except OSError as exc:
            log.warning("print claim for %s failed: %s", station, exc)
            done = None
        except Exception:  # noqa: BLE001 - the agent must keep scanning and printing
            log.exception("print step for %s failed", station)
            done = None
        if done is None or done.get("code") in NOT_READY_CODES:
            stop.wait(poll_s)


__all__ = [
    "Claim",
    "ClaimIn",
    "OutcomeIn",
    "PrintRequest",
    "PrintWorker",
    "ReprintIn",
    "ResumeIn",
    "SheetIn",
    "VoidIn",
    "agent_print_loop",
    "agent_print_once",
    "claim_for_api",
    "claim_next",
    "get_job",
    "job_dict",
    "job_visible",
    "job_visible_to",
    "json_ts",
    "labels_by_job",
    "list_jobs",
    "print_claim",
    "queue_labels",
    "reap_expired",
    "record_outcome",
    "release_not_ready",
    "render_claim",
    "reprint",
    "resume",
    "start_device_worker",
    "start_sending",
    "void",
]
