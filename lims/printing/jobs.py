"""Print jobs: request bodies, queueing labels, the job read model (after a job: recovery.py).

The job lifecycle and the one-original-label rule are described in docs/printing.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import and_, func, or_, true
from sqlmodel import Session, col, select

from lims import audit, custody, labels, lots, samples, storage
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text
from lims.manufacturing import materials
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
    LabelContent,
    LabelError,
    LabelFitError,
    Template,
    get_template,
)
from printers.zpl import plan_label

STATES = ("queued", "sending", "sent", "failed", "voided")
MAX_BARCODES = 500
MAX_COPIES = 10
OUTCOME_UNKNOWN = "outcome unknown — check the printer and reprint"


# --- request bodies --------------------------------------------------------------------------


# One barcode of a label request: a sample, lot or location code (each at most 64 characters).
Barcode = Annotated[Line, Field(min_length=1, max_length=64)]


class PrintRequest(Input):
    barcodes: list[Barcode] = Field(min_length=1, max_length=MAX_BARCODES)
    printer: Line = Field(min_length=1, max_length=64)
    template: Line | None = Field(default=None, min_length=1, max_length=32)
    copies: int = Field(default=1, ge=1, le=MAX_COPIES)
    # Why these labels go on a stock that does not match their container (recorded with the
    # job). Without it a mismatch is refused: a cryovial label on a bag, or the reverse, is
    # how a tube ends up unreadable at the bedside.
    stock_override: Text | None = Field(default=None, max_length=2000)


class ReprintIn(Input):
    reason: Text = Field(min_length=1, max_length=2000)
    # Only these labels of the job (default: every label that printed or may have printed).
    barcodes: list[Barcode] | None = Field(default=None, min_length=1, max_length=MAX_BARCODES)


class ResumeIn(Input):
    reason: Text | None = Field(default=None, max_length=2000)


class VoidIn(Input):
    reason: Text = Field(min_length=1, max_length=2000)


class ResolveIn(Input):
    """What the operator found at the printer for the labels of unknown outcome (one way)."""

    # The barcodes of the labels found printed, scanned back (once per label: a job with two
    # copies of a tube, both found, is scanned twice). [] says none printed.
    scanned: list[Barcode] | None = Field(default=None, max_length=MAX_BARCODES * MAX_COPIES)
    # Or how many of them came out: printers print in order, so the first N printed.
    printed: int | None = Field(default=None, ge=0, le=MAX_BARCODES * MAX_COPIES)
    reason: Text | None = Field(default=None, max_length=2000)


# --- small helpers ---------------------------------------------------------------------------


def require_lab(actor: Actor, what: str) -> None:
    """Refuse (403) an actor without a lab role."""
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


def labels_of(session: Session, job: PrintJob) -> list[PrintJobLabel]:
    """Return the labels of one job, in order."""
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


def record_event(
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
    """Append a print_job event to the audit trail, scoped to what the job labels."""
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


def snapshot(job: PrintJob) -> dict[str, Any]:
    """Return the fields of a job an audit event shows before and after a change."""
    return {
        "state": job.state,
        "labels_total": job.labels_total,
        "labels_printed": job.labels_printed,
        "labels_unconfirmed": job.labels_unconfirmed,
        "error": job.error,
    }


def save(session: Session, job: PrintJob) -> None:
    """Write a change of the job: count it in its version and flush it."""
    job.version += 1
    session.add(job)
    session.flush()


def lock_job(session: Session, job_id: int) -> PrintJob:
    """Return the job row locked for update (PostgreSQL; SQLite holds the write lock)."""
    job = session.exec(select(PrintJob).where(PrintJob.id == job_id).with_for_update()).first()
    if job is None:
        raise NotFound(f"no print job {job_id}", code="unknown_print_job")
    session.refresh(job)
    return job


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
    rows = labels_of(session, job) if rows is None else rows
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


def visible_jobs_clause(actor: Actor) -> Any:
    """Return job_visible_to as a WHERE clause on PrintJob, for lists read a page at a time."""
    if actor.sees_all:
        return true()
    org = actor.org.id
    label_org = func.coalesce(Sample.org_id, VectorLot.org_id)
    labels = (
        select(PrintJobLabel.job_id)
        .select_from(PrintJobLabel)
        .outerjoin(Sample, col(PrintJobLabel.sample_id) == col(Sample.id))
        .outerjoin(
            VectorLot,
            and_(
                col(PrintJobLabel.sample_id).is_(None),
                col(VectorLot.lot_number) == col(PrintJobLabel.barcode),
            ),
        )
    )
    return or_(
        col(PrintJob.created_by_id).in_(select(User.id).where(User.org_id == org)),
        and_(
            col(PrintJob.id).in_(labels.where(label_org == org)),
            col(PrintJob.id).not_in(labels.where(or_(label_org.is_(None), label_org != org))),
        ),
    )


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


def label_source(session: Session, barcode: str, actor: Actor) -> labels.LabelSource:
    """Resolve a scanned id to its label: a sample, a vector lot or a storage location.

    Another organisation's sample or lot is unknown (404), as is a location to a client user.
    """
    s = samples.find_sample(session, barcode, actor)
    if s is not None:
        return labels.LabelSource(
            labels.sample_label(session, s), "sample", s.id, s.org_id, s.lot_id, s.container
        )
    lot = lots.find_lot(session, barcode, actor)
    if lot is not None:
        return labels.LabelSource(labels.lot_label(lot), "lot", None, lot.org_id, lot.id)
    loc = storage.find_location(session, barcode) if actor.sees_all else None
    if loc is not None:
        return labels.LabelSource(labels.box_label(loc), "location")
    # A material received without a GS1 barcode gets a label of ours (lims.manufacturing).
    mat = materials.find_material(session, barcode, actor)
    if mat is not None:
        return labels.LabelSource(materials.material_label(session, mat), "material")
    raise NotFound(
        f"no sample, lot, box or material {barcode!r}", code="unknown_barcode", barcode=barcode
    )


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


def lock_samples(session: Session, sample_ids: list[int]) -> None:
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


def create_job(
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
    record_event(
        session,
        job,
        action,
        actor,
        after={
            **snapshot(job),
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
    require_lab(actor, "printing labels")
    printer = get_printer(session, data.printer)
    seen: set[str] = set()
    items: list[tuple[LabelContent, int | None]] = []
    kinds: set[str] = set()
    sources: list[labels.LabelSource] = []
    for barcode in data.barcodes:
        if barcode in seen:
            raise Refused(
                f"{barcode} is listed twice; a duplicate id label is a hazard (use copies "
                "when two labels are intended)",
                code="duplicate_barcode",
                barcode=barcode,
            )
        seen.add(barcode)
        src = label_source(session, barcode, actor)
        items.append((src.content, src.sample_id))
        kinds.add(src.kind)
        sources.append(src)
    template = template_for(
        printer, data.template or labels.container_stock_of(sources) or labels.default_stock(kinds)
    )
    override = labels.check_stock(sources, template.name, data.stock_override)
    sample_ids = [sid for _, sid in items if sid is not None]
    lock_samples(session, sample_ids)
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
    return create_job(
        session,
        printer=printer,
        template=template,
        items=items,
        copies=data.copies,
        actor=actor,
        action="print_job.queue",
        reason=override["stock_override"] if override else None,
        extra=override,
    )
