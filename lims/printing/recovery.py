"""After a job has run: reprint what printed, resume what never did, resolve labels of unknown
outcome, void what was never sent; and what a page may offer of these for a job.

Each refuses label by label with the reason and records one audit event; a duplicate original
never prints silently (a reprint says REPRINT).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from lims import labels
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Refused
from lims.inputs import blank
from lims.models import (
    Printer,
    PrintJob,
    PrintJobLabel,
    utcnow,
)
from lims.printing.jobs import (
    create_job,
    get_job,
    label_status,
    labels_by_job,
    labels_in_use,
    labels_of,
    lock_job,
    lock_samples,
    record_event,
    require_lab,
    save,
    snapshot,
    template_for,
)


def offers(job: PrintJob) -> dict[str, bool]:
    """Tell what an operator may ask of a job: reprint, resume or void.

    The job-level summary of the guards of reprint, resume and void below (which refuse the
    rest label by label, with the reason): a page offers only what they would accept.
    """
    done = job.labels_printed + job.labels_unconfirmed
    return {
        # Reprint what printed (or may have), resume what never printed, void the unsent.
        "reprintable": job.state in ("sent", "failed") and done > 0,
        "resumable": job.state == "failed" and job.labels_total > done,
        "voidable": job.state == "queued",
        # Labels of unknown outcome wait for the operator to say what came out of the printer.
        "resolvable": job.state == "failed" and job.labels_unconfirmed > 0,
    }


def _again(
    session: Session,
    job: PrintJob,
    rows: list[PrintJobLabel],
    actor: Actor,
    *,
    reprint: bool,
    reason: str | None,
    extra: dict[str, Any] | None = None,
) -> PrintJob:
    """Queue rows of job again, one copy each on its printer and stock: a reprint or a resume.

    A reprint marks every label REPRINT; a resume keeps each label as it was stored.
    """
    printer = session.get(Printer, job.printer_id)
    items = [
        (labels.content_from_json(r.content, reprint=True if reprint else None), r.sample_id)
        for r in rows
    ]
    return create_job(
        session,
        printer=printer,
        template=template_for(printer, job.template),
        items=items,
        copies=1,
        actor=actor,
        action="print_job.reprint" if reprint else "print_job.resume",
        reason=reason,
        reprint_of=job if reprint else None,
        resume_of=None if reprint else job,
        extra=extra,
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
    require_lab(actor, "reprinting labels")
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
    every = labels_of(session, job)
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
    return _again(session, job, rows, actor, reprint=True, reason=reason)


def resume(session: Session, *, job_id: int, actor: Actor, reason: str | None = None) -> PrintJob:
    """Queue, as a new job, the labels of a failed job that certainly never printed.

    Labels that another job has taken since (queued on another printer, say) are left out.
    """
    require_lab(actor, "printing labels")
    # Lock the job before asking whether it was resumed: two resumes at once (PostgreSQL) would
    # otherwise both find none and both print the rest.
    job = lock_job(session, get_job(session, job_id, actor).id)
    if job.state != "failed":
        raise Refused(
            f"job {job.id} is {job.state}; only a failed job can be resumed", code="not_resumable"
        )
    earlier = list(
        session.exec(
            select(PrintJob)
            .where(PrintJob.resume_of_id == job.id, PrintJob.state != "voided")
            .order_by(col(PrintJob.id))
        ).all()
    )
    rows = [r for r in labels_of(session, job) if label_status(job, r) == "not_printed"]
    if earlier:
        # A label printed by an earlier resume is not printed again. Labels resolved 'not
        # printed' after it (resolve_unknown) are still to print: a later resume takes them.
        rows = _not_resumed_yet(rows, labels_by_job(session, [r.id for r in earlier]))
        if not rows:
            raise Conflict(
                f"job {job.id} was resumed already as job {earlier[-1].id}",
                code="already_resumed",
                job=earlier[-1].id,
            )
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
    lock_samples(session, sample_ids)
    # This job's own printed copies and its reprints do not make its other copies duplicates.
    mine = (
        {job.id}
        | {r.id for r in earlier}
        | set(session.exec(select(PrintJob.id).where(PrintJob.reprint_of_id == job.id)).all())
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
    return _again(
        session,
        job,
        rows,
        actor,
        reprint=False,
        reason=f"rest of job {job.id} after: {job.error}" if blank(reason) else reason,
        extra={"skipped": skipped} if skipped else None,
    )


def _not_resumed_yet(
    rows: list[PrintJobLabel], earlier: dict[int, list[PrintJobLabel]]
) -> list[PrintJobLabel]:
    """Return the rows no earlier resume job printed (matched label by label, in order)."""
    left = list(rows)
    for resumed in earlier.values():
        for label in resumed:
            for i, r in enumerate(left):
                if r.barcode == label.barcode:
                    del left[i]
                    break
    return left


def resolve_unknown(
    session: Session,
    *,
    job_id: int,
    actor: Actor,
    scanned: list[str] | None = None,
    printed: int | None = None,
    reason: str | None = None,
) -> PrintJob:
    """Record which labels of unknown outcome printed, as the operator found at the printer.

    Either the barcodes of the labels found printed, scanned back, or how many came out (the
    first N: a printer prints in order). The labels found printed count as printed originals
    (another label of them is a reprint with a reason); the others never printed and `resume`
    prints them as originals. One audit event names both lists.
    """
    require_lab(actor, "resolving labels of unknown outcome")
    if (scanned is None) == (printed is None):
        raise BadRequest(
            "say which labels printed: scan them back (scanned) or give how many came out "
            "(printed), one of the two",
            code="resolve_how",
        )
    job = lock_job(session, get_job(session, job_id, actor).id)
    rows = labels_of(session, job)
    unknown = [r for r in rows if label_status(job, r) == "unknown"]
    if not unknown:
        raise Refused(
            f"job {job.id} has no label of unknown outcome ({job.state})",
            code="nothing_to_resolve",
        )
    if printed is not None:
        if printed > len(unknown):
            raise Refused(
                f"job {job.id} has {len(unknown)} labels of unknown outcome; {printed} cannot "
                "have printed",
                code="bad_count",
                unknown=len(unknown),
            )
        found = unknown[:printed]
        how = "count"
    else:
        found = _found_by_scan(job, rows, unknown, scanned or [])
        how = "scan"
    found_ids = {r.id for r in found}
    before = snapshot(job)
    for r in found:
        r.printed = True
        session.add(r)
    missing = [r for r in unknown if r.id not in found_ids]
    job.labels_printed = sum(1 for r in rows if r.printed)
    job.labels_unconfirmed = 0
    who = actor.username
    summary = (
        f"outcome resolved by {who} ({'scanned back' if how == 'scan' else 'counted'}): "
        f"{len(found)} of {len(unknown)} printed"
        + (f"; {len(missing)} never printed: resume the job to print them" if missing else "")
    )
    # The new text no longer starts with OUTCOME_UNKNOWN: a late report from the worker that
    # lost the job cannot overwrite what the operator found.
    job.error = f"{summary}. Before: {job.error or ''}"[:2000]
    save(session, job)
    record_event(
        session,
        job,
        "print_job.resolve",
        actor,
        before=before,
        after={
            **snapshot(job),
            "method": how,
            "printed": [r.barcode for r in found],
            "not_printed": [r.barcode for r in missing],
            "labels": {str(r.idx): r.id in found_ids for r in unknown},
        },
        reason=reason,
    )
    return job


def _found_by_scan(
    job: PrintJob, rows: list[PrintJobLabel], unknown: list[PrintJobLabel], scanned: list[str]
) -> list[PrintJobLabel]:
    """Match scanned-back barcodes to the unknown labels, one label per scan, in print order."""
    left: dict[str, list[PrintJobLabel]] = {}
    for r in unknown:
        left.setdefault(r.barcode.casefold(), []).append(r)
    of_job = {r.barcode.casefold(): r.barcode for r in rows}
    found: list[PrintJobLabel] = []
    for code in scanned:
        key = code.strip().casefold()
        if key not in of_job:
            raise Refused(
                f"{code} is not a label of job {job.id}; scan only the labels of this job",
                code="not_in_job",
                barcode=code,
            )
        if key not in {r.barcode.casefold() for r in unknown}:
            raise Refused(
                f"{of_job[key]}'s label in job {job.id} is not of unknown outcome; scan only "
                "the labels whose outcome is unknown",
                code="not_unknown",
                barcode=of_job[key],
            )
        if not left.get(key):
            n = sum(1 for r in unknown if r.barcode.casefold() == key)
            raise Refused(
                f"{of_job[key]} was scanned more often than it has labels of unknown outcome "
                f"({n}) in job {job.id}",
                code="scanned_too_often",
                barcode=of_job[key],
            )
        found.append(left[key].pop(0))
    return sorted(found, key=lambda r: r.idx)


def void(session: Session, *, job_id: int, reason: str, actor: Actor) -> PrintJob:
    """Void a queued job (it will never be sent), with a reason."""
    require_lab(actor, "voiding a print job")
    reason = (reason or "").strip()
    if not reason:
        raise Refused("voiding a print job needs a reason", code="reason_required")
    job = lock_job(session, get_job(session, job_id, actor).id)
    if job.state != "queued":
        raise Refused(
            f"job {job.id} is {job.state}; only a queued job can be voided",
            code="not_voidable",
            state=job.state,
        )
    before = snapshot(job)
    job.state = "voided"
    job.finished_at = utcnow()
    job.claimed_by = None
    job.lease_until = None
    save(session, job)
    record_event(
        session, job, "print_job.void", actor, before=before, after=snapshot(job), reason=reason
    )
    return job
