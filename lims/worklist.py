"""What needs the signed-in person now: the lists a role's home page starts with."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, case, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from lims import lots
from lims.accounts.users import Actor
from lims.models import (
    Deviation,
    Location,
    OosRecord,
    Printer,
    PrintJob,
    QcResult,
    Sample,
    Specification,
    VectorLot,
    utcnow,
)
from lims.quality import deviations, oos
from lims.roles import LAB, QA
from lims.rooms.models import Booking

# A home page shows the first few of each list and says how many there are in all.
SHOWN = 20
# A list's count, run with every other list's count in one statement (_count_all).
Count = Select


def _failed_jobs(session: Session) -> tuple[list[dict[str, Any]], Count]:
    """Return failed print jobs nobody has resumed, reprinted or otherwise taken up."""
    follow = aliased(PrintJob)
    taken_up = (
        select(follow.id)
        .where((follow.resume_of_id == PrintJob.id) | (follow.reprint_of_id == PrintJob.id))
        .exists()
    )
    where = (PrintJob.state == "failed", ~taken_up)
    total = select(func.count()).select_from(PrintJob).where(*where)
    rows = session.exec(
        select(PrintJob, Printer)
        .join(Printer, Printer.id == PrintJob.printer_id)
        .where(*where)
        .order_by(PrintJob.id.desc())
        .limit(SHOWN)
    ).all()
    return [
        {
            "id": job.id,
            "printer": printer.name,
            "labels": job.labels_total,
            "printed": job.labels_printed,
            "unconfirmed": job.labels_unconfirmed,
            "error": job.error,
            "at": job.finished_at or job.created_at,
        }
        for job, printer in rows
    ], total


def _in_custody(session: Session, actor: Actor) -> tuple[list[dict[str, Any]], Count]:
    """Return the tubes checked out into the actor's own custody, longest held first."""
    where = (Sample.custodian_id == actor.user.id, Sample.state == "in_use")
    total = select(func.count()).select_from(Sample).where(*where)
    rows = session.exec(
        select(Sample.barcode, Sample.coi, Sample.updated_at)
        .where(*where)
        .order_by(Sample.updated_at, Sample.id)
        .limit(SHOWN)
    ).all()
    return [{"barcode": b, "coi": c, "since": t} for b, c, t in rows], total


def _lots_by_state(session: Session, actor: Actor, states: tuple[str, ...] | None = None):  # noqa: ANN202
    stmt = select(VectorLot).order_by(VectorLot.id.desc())
    count = select(func.count()).select_from(VectorLot)
    if states:
        stmt, count = (
            stmt.where(VectorLot.state.in_(states)),
            count.where(VectorLot.state.in_(states)),
        )
    if not actor.sees_all:
        stmt = stmt.where(VectorLot.org_id == actor.org.id)
        count = count.where(VectorLot.org_id == actor.org.id)
    rows = session.exec(stmt.limit(SHOWN)).all()
    return [lots.lot_summary(lot) for lot in rows], count


def _sample_states(session: Session, actor: Actor) -> dict[str, int]:
    stmt = select(Sample.state, func.count()).group_by(Sample.state)
    if not actor.sees_all:
        stmt = stmt.where(Sample.org_id == actor.org.id)
    return dict(sorted(session.exec(stmt).all()))


def _results_to_review(session: Session, actor: Actor) -> tuple[list[dict[str, Any]], Count, Count]:
    """Return current results nobody has reviewed that actor may review; and how many are theirs.

    A corrected result is no longer current: its correction is what waits. Four eyes: a result
    the actor recorded is counted apart, as someone else must review it.
    """
    later = aliased(QcResult)
    corrected = select(later.id).where(later.supersedes_id == QcResult.id).exists()
    waiting = (QcResult.reviewed_by_id.is_(None), ~corrected)
    mine = (
        select(func.count())
        .select_from(QcResult)
        .where(*waiting, QcResult.recorded_by_id == actor.user.id)
    )
    others = (*waiting, QcResult.recorded_by_id != actor.user.id)
    total = select(func.count()).select_from(QcResult).where(*others)
    rows = session.exec(
        select(QcResult, VectorLot.lot_number, Sample.barcode)
        .join(VectorLot, VectorLot.id == QcResult.lot_id, isouter=True)
        .join(Sample, Sample.id == QcResult.sample_id, isouter=True)
        .where(*others)
        .order_by(QcResult.recorded_at, QcResult.id)
        .limit(SHOWN)
    ).all()
    return (
        [
            {
                "lot": lot_number,
                "sample": barcode,
                "test": r.test,
                "result": r.result,
                "passed": r.passed,
                "since": r.recorded_at,
            }
            for r, lot_number, barcode in rows
        ],
        total,
        mine,
    )


def _open_oos(session: Session) -> tuple[list[dict[str, Any]], Count]:
    """Return the investigations still in phase I or II, oldest first."""
    where = (OosRecord.phase.in_(sorted(oos.OPEN)),)
    total = select(func.count()).select_from(OosRecord).where(*where)
    rows = session.exec(
        select(OosRecord, VectorLot.lot_number, Sample.barcode)
        .join(VectorLot, VectorLot.id == OosRecord.lot_id, isouter=True)
        .join(Sample, Sample.id == OosRecord.sample_id, isouter=True)
        .where(*where)
        .order_by(OosRecord.opened_at, OosRecord.id)
        .limit(SHOWN)
    ).all()
    return [
        {
            "id": o.id,
            "name": oos.name(o),
            "subject": lot_number or barcode,
            "test": o.test,
            "phase": o.phase,
            "since": o.opened_at,
        }
        for o, lot_number, barcode in rows
    ], total


def _open_deviations(session: Session) -> tuple[list[dict[str, Any]], Count]:
    """Return deviations not yet closed, critical first, then oldest first."""
    where = (Deviation.state.in_(deviations.ACTIVE),)
    total = select(func.count()).select_from(Deviation).where(*where)
    # Ranked in the query: a centre's open deviations are not all read to show the first few.
    rank = case(
        {s: i for i, s in enumerate(reversed(deviations.SEVERITIES))},
        value=Deviation.severity,
        else_=9,
    )
    rows = session.exec(
        select(Deviation)
        .where(*where)
        .order_by(rank, Deviation.raised_at, Deviation.id)
        .limit(SHOWN)
    ).all()
    return [
        {
            "number": d.number,
            "title": d.title,
            "severity": d.severity,
            "state": d.state,
            "since": d.raised_at,
        }
        for d in rows
    ], total


def _specs_to_approve(session: Session, actor: Actor) -> tuple[list[dict[str, Any]], Count]:
    """Return draft specifications someone other than their author must approve."""
    where = (Specification.state == "draft",)
    total = select(func.count()).select_from(Specification).where(*where)
    rows = session.exec(
        select(Specification).where(*where).order_by(Specification.created_at).limit(SHOWN)
    ).all()
    return [
        {
            "code": sp.code,
            "version": sp.version,
            "title": sp.title,
            "product": sp.product,
            "yours": sp.created_by_id == actor.user.id,
            "since": sp.created_at,
        }
        for sp in rows
    ], total


def _bookings_ahead(session: Session, actor: Actor) -> tuple[list[dict[str, Any]], Count]:
    """Return the organisation's room bookings running now or ahead, soonest first."""
    where = (
        Booking.org_id == actor.org.id,
        Booking.ends_at > utcnow(),
        col(Booking.state).in_(("requested", "approved")),
    )
    total = select(func.count()).select_from(Booking).where(*where)
    rows = session.exec(
        select(Booking, Location.code)
        .join(Location, Location.id == Booking.room_id)
        .where(*where)
        .order_by(Booking.starts_at, Booking.id)
        .limit(SHOWN)
    ).all()
    return [
        {
            "number": b.number,
            "room": room,
            "starts_at": b.starts_at,
            "ends_at": b.ends_at,
            "state": b.state,
        }
        for b, room in rows
    ], total


def worklist(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Return the sections of what needs the actor now, by role: title, rows, total."""
    sections: list[dict[str, Any]] = []
    if actor.role in LAB and actor.sees_all:
        rows, total = _in_custody(session, actor)
        sections.append(
            {
                "key": "custody",
                "title": "Tubes in your custody",
                "rows": rows,
                "total": total,
                "empty": "No tube is checked out to you.",
            }
        )
        rows, total = _failed_jobs(session)
        sections.append(
            {
                "key": "print_failed",
                "title": "Print jobs that failed",
                "rows": rows,
                "total": total,
                "empty": "No failed print job is waiting.",
            }
        )
    if actor.role in QA:
        rows, total, mine = _results_to_review(session, actor)
        sections.append(
            {
                "key": "results_to_review",
                "title": "Results to review",
                "rows": rows,
                "total": total,
                "empty": "No result waits for your review.",
                "mine": mine,
            }
        )
        rows, total = _open_oos(session)
        sections.append(
            {
                "key": "oos_open",
                "title": "Open OOS investigations",
                "rows": rows,
                "total": total,
                "empty": "No OOS investigation is open.",
            }
        )
        rows, total = _open_deviations(session)
        sections.append(
            {
                "key": "deviations_open",
                "title": "Open deviations",
                "rows": rows,
                "total": total,
                "empty": "No deviation is open.",
            }
        )
        rows, total = _specs_to_approve(session, actor)
        sections.append(
            {
                "key": "specs_draft",
                "title": "Specifications to approve",
                "rows": rows,
                "total": total,
                "empty": "No draft specification waits.",
            }
        )
        rows, total = _lots_by_state(session, actor, ("quarantine",))
        sections.append(
            {
                "key": "lots_waiting",
                "title": "Lots waiting for release",
                "rows": rows,
                "total": total,
                "empty": "No lot is in quarantine.",
            }
        )
    if not actor.sees_all:
        rows, total = _lots_by_state(session, actor)
        sections.append(
            {
                "key": "my_lots",
                "title": "Your lots",
                "rows": rows,
                "total": total,
                "empty": "Your organisation has no lot yet.",
            }
        )
        rows, total = _bookings_ahead(session, actor)
        sections.append(
            {
                "key": "my_bookings",
                "title": "Your room bookings",
                "rows": rows,
                "total": total,
                "empty": "Your organisation has no booking running or ahead.",
            }
        )
        states = _sample_states(session, actor)
        sections.append(
            {
                "key": "my_samples",
                "title": "Your samples by state",
                "rows": [{"state": s, "count": n} for s, n in states.items()],
                "total": sum(states.values()),
                "empty": "Your organisation has no sample yet.",
            }
        )
    _count_all(session, sections)
    for section in sections:
        if section.get("mine"):
            section["empty"] += f" {section['mine']} you recorded wait for another QA person."
    return sections


def _count_all(session: Session, sections: list[dict[str, Any]]) -> None:
    """Replace every section's count statement by its number, all in one round trip."""
    wanted = [
        (section, key)
        for section in sections
        for key in ("total", "mine")
        if isinstance(section.get(key), Select)
    ]
    if not wanted:
        return
    numbers = session.exec(select(*(s[k].scalar_subquery() for s, k in wanted))).one()
    for (section, key), n in zip(wanted, numbers, strict=True):
        section[key] = n
