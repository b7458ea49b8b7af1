"""What the pages and the API list about printing: printers, a tube's labels, the queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from lims.accounts.users import Actor
from lims.db import rows_by_id
from lims.listing import Page, SortKey, keyset_page, parse_sort
from lims.models import Printer, PrintJob, PrintJobLabel, Sample, Station, User
from lims.printing.jobs import (
    job_visible,
    job_visible_to,
    label_orgs_by_job,
    labels_by_job,
    visible_jobs_clause,
)
from lims.printing.recovery import offers
from lims.printing.status import check_dict, last_checks
from lims.roles import LAB
from printers.claim import STATUS_EVERY_S


def list_printers(
    session: Session, actor: Actor, *, every_s: float = STATUS_EVERY_S
) -> list[dict[str, Any]]:
    """Return every label printer with its status; where it is plugged in only for lab staff.

    every_s: how often idle printers are asked (a status older than 3 of these is unknown).
    """
    # A printer's URL is a device path or a network address inside the centre: not for clients.
    wiring = actor.sees_all and actor.role in LAB
    rows = session.exec(
        select(Printer, Station)
        .join(Station, Station.id == Printer.station_id, isouter=True)
        .order_by(Printer.id)
    ).all()
    checks = last_checks(session, [p.id for p, _ in rows])
    out = []
    for p, st in rows:
        row = {
            "name": p.name,
            "language": p.language,
            "dpi": p.dpi,
            "station": st.name if st is not None else None,
            "active": p.active,
            # What the printer last said to ~HS (None: no worker has asked it yet).
            "status": check_dict(checks.get(p.id), every_s=every_s, redact=not wiring),
        }
        if wiring:
            row.update(url=p.url, baud=p.baud, flow=p.flow)
        out.append(row)
    return out


def active_printers(session: Session, *, every_s: float = STATUS_EVERY_S) -> list[dict[str, Any]]:
    """Return the printers a print form offers: name, bench and status, by name."""
    rows = session.exec(
        select(Printer, Station)
        .join(Station, Station.id == Printer.station_id, isouter=True)
        .where(Printer.active)
        .order_by(Printer.name)
    ).all()
    checks = last_checks(session, [p.id for p, _ in rows])
    return [
        {
            "name": p.name,
            "station": st.name if st is not None else None,
            # The form shows the words beside the name, to anyone who may print: no device path.
            "status": check_dict(checks.get(p.id), every_s=every_s, redact=True),
        }
        for p, st in rows
    ]


def sample_labels(
    session: Session, sample: Sample, actor: Actor
) -> list[tuple[PrintJobLabel, PrintJob, Printer, bool]]:
    """Return a tube's labels, newest job first: label, job, printer, may actor open the job.

    A client user's tube may sit in a job they cannot open (it holds others' tubes too).
    """
    rows = session.exec(
        select(PrintJobLabel, PrintJob, Printer)
        .join(PrintJob, PrintJob.id == PrintJobLabel.job_id)
        .join(Printer, Printer.id == PrintJob.printer_id)
        .where(PrintJobLabel.sample_id == sample.id)
        .order_by(PrintJob.id.desc())
    ).all()
    return [
        (label, job, printer, actor.role in LAB and job_visible(session, job, actor))
        for label, job, printer in rows
    ]


def queue_overview(
    session: Session, actor: Actor, *, per_printer: int = 30, every_s: float = STATUS_EVERY_S
) -> list[dict]:
    """Return each printer with its bench, its status and its latest jobs that actor may see."""
    printers = session.exec(select(Printer).order_by(Printer.name)).all()
    jobs_of = {
        p.id: session.exec(
            select(PrintJob)
            .where(PrintJob.printer_id == p.id)
            .order_by(PrintJob.id.desc())
            .limit(per_printer)
        ).all()
        for p in printers
    }
    # The labels, their samples' organisations and the job authors in one query each, not
    # one query per job and per label.
    job_ids = [j.id for js in jobs_of.values() for j in js]
    labels_of = labels_by_job(session, job_ids)
    label_orgs = label_orgs_by_job(session, job_ids) if not actor.sees_all else {}
    authors = rows_by_id(session, User, (j.created_by_id for js in jobs_of.values() for j in js))
    benches = rows_by_id(session, Station, (p.station_id for p in printers))
    checks = last_checks(session, [p.id for p in printers])
    out = []
    for p in printers:
        rows = []
        for j in jobs_of[p.id]:
            author = authors.get(j.created_by_id)
            if not actor.sees_all and not job_visible_to(
                actor,
                creator_org=author.org_id if author is not None else None,
                label_orgs=label_orgs[j.id],
            ):
                continue
            rows.append({"job": j, "labels": labels_of[j.id], "by": author, **offers(j)})
        out.append(
            {
                "printer": p,
                "station": benches.get(p.station_id),
                "jobs": rows,
                "check": checks.get(p.id),
                # A client organisation's lab user is not told where the printer is plugged in.
                "status": check_dict(checks.get(p.id), every_s=every_s, redact=not actor.sees_all),
            }
        )
    return out


def queue_feed(
    session: Session,
    actor: Actor,
    *,
    overview: list[dict] | None = None,
    every_s: float = STATUS_EVERY_S,
) -> dict[str, Any]:
    """Return what the print queue page polls: each printer's last ~HS and its jobs' states.

    'version' changes whenever a job is added or moves, so the page reloads its list only then.
    """
    printers = []
    marks = []
    if overview is None:
        overview = queue_overview(session, actor, every_s=every_s)
    for p in overview:
        jobs = [
            {
                "id": r["job"].id,
                "state": r["job"].state,
                "printed": r["job"].labels_printed,
                "total": r["job"].labels_total,
            }
            for r in p["jobs"]
        ]
        marks += [f"{j['id']}:{j['state']}:{j['printed']}" for j in jobs]
        printers.append({"name": p["printer"].name, "status": p["status"], "jobs": jobs})
    return {"printers": printers, "version": "|".join(marks)}


JOB_SORTS: dict[str, SortKey] = {
    "created": SortKey(PrintJob.created_at),
    "state": SortKey(PrintJob.state),
    "template": SortKey(PrintJob.template),
    "labels": SortKey(PrintJob.labels_total),
    "printer": SortKey(
        Printer.name, join=lambda stmt: stmt.join(Printer, Printer.id == PrintJob.printer_id)
    ),
}
JOB_SORT_DEFAULT = "-created"  # newest first


def job_page(
    session: Session,
    actor: Actor,
    *,
    printer: str | None = None,
    state: str | None = None,
    sort: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page:
    """Return one page of print jobs, filtered (any case), sorted, with a total.

    A client organisation's lab user sees the jobs its own people queued and those that label
    only its own material (job_visible_to).
    """
    name, descending = parse_sort(sort, JOB_SORTS, JOB_SORT_DEFAULT)
    stmt = select(PrintJob).where(visible_jobs_clause(actor))
    if state:
        stmt = stmt.where(PrintJob.state == state.strip().lower())
    if printer:
        ids = select(Printer.id).where(func.lower(Printer.name) == printer.strip().lower())
        stmt = stmt.where(col(PrintJob.printer_id).in_(ids))
    return keyset_page(
        session,
        stmt,
        model=PrintJob,
        key=JOB_SORTS[name],
        sort=name,
        descending=descending,
        after=after,
        before=before,
        limit=limit,
    )


def job_rows(session: Session, rows: list[PrintJob]) -> list[dict[str, Any]]:
    """Return what the print-jobs list shows of each job, reading each other table once."""
    printers = rows_by_id(session, Printer, (j.printer_id for j in rows))
    authors = rows_by_id(session, User, (j.created_by_id for j in rows))
    labels = labels_by_job(session, [j.id for j in rows])
    return [
        {
            "job": j,
            "printer": printers.get(j.printer_id),
            "by": authors.get(j.created_by_id),
            "labels": labels[j.id],
        }
        for j in rows
    ]
