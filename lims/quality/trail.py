"""Audit-trail review of a lot (EU GMP Annex 11 §9): the lineage's events, QA's signed review.

A lot's lineage is the lot, its vials and their descendants (every one of their events carries
the lot's id) and the print jobs that labelled those tubes. QA reads its events on one page and
signs that it reviewed them up to the newest seq it saw; release, and lifting a hold, need a
review that no later change of the lineage has made stale.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlmodel import Session, col, select

from lims import audit, signatures
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, Refused
from lims.inputs import Input
from lims.models import AuditEvent, LotTrailReview, PrintJobLabel, Sample, Signature, VectorLot
from lims.roles import QA

REVIEW_ACTION = "lot.trail_review"
COA_ACTION = "lot.coa_issued"
# Events of the lineage a review need not cover: the reviews themselves, the release (or lift of
# a hold) that a current review allowed, and the certificates of analysis issued from the
# released lot (a record of what a client received). QA's signed review of the batch record
# (lims.manufacturing.batch) is a review too, not a change of what was made. Any other event
# makes a review stale.
NOT_CHANGES = (REVIEW_ACTION, "lot.release", "lot.lift_hold", COA_ACTION, "batch.review")
MEANING = "review"
# A review's signature is on the lot's trail, not on the lot: the lot's own signatures (release,
# rejection) stay those of its disposition.
RECORD_TYPE = "lot_trail"


class ReviewIn(Input):
    up_to_seq: int = Field(
        ge=1, le=2**31 - 1, description="the newest lineage seq on the page the reviewer read"
    )
    signature: signatures.SignatureIn


def print_jobs(session: Session, lot: VectorLot) -> list[str]:
    """Return the ids (as the trail names them) of the print jobs that labelled the lot's tubes."""
    tubes = select(Sample.id).where(Sample.lot_id == lot.id)
    rows = session.exec(
        select(PrintJobLabel.job_id).where(col(PrintJobLabel.sample_id).in_(tubes)).distinct()
    ).all()
    return [str(j) for j in sorted(rows)]


def latest_review(session: Session, lot: VectorLot) -> LotTrailReview | None:
    """Return QA's newest review of the lot's audit trail, or None."""
    return session.exec(
        select(LotTrailReview)
        .where(LotTrailReview.lot_id == lot.id)
        .order_by(col(LotTrailReview.id).desc())
        .limit(1)
    ).first()


def review_status(
    session: Session, lot: VectorLot, jobs: list[str] | None = None
) -> dict[str, Any]:
    """Return whether the lot's trail is reviewed, by whom, to which seq, and what came since."""
    jobs = print_jobs(session, lot) if jobs is None else jobs
    newest = audit.lineage_newest_seq(
        session, lot_id=lot.id, print_jobs=jobs, skip_actions=NOT_CHANGES
    )
    review = latest_review(session, lot)
    out: dict[str, Any] = {
        "newest_seq": newest,
        "reviewed": review is not None,
        "current": False,
        "reviewed_up_to_seq": None,
        "new_events": None,
        "signature": None,
    }
    if review is not None:
        sig = session.get(Signature, review.signature_id)
        new = audit.lineage_count_after(
            session,
            lot_id=lot.id,
            print_jobs=jobs,
            after_seq=review.reviewed_up_to_seq,
            skip_actions=NOT_CHANGES,
        )
        out |= {
            "current": new == 0,
            "reviewed_up_to_seq": review.reviewed_up_to_seq,
            "new_events": new,
            "signature": signatures.signature_dict(sig),
        }
    return out


def lineage_page(
    session: Session,
    lot: VectorLot,
    actor: Actor,
    *,
    cursor: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Return a page of the lot's lineage events, newest first, with the review status."""
    jobs = print_jobs(session, lot)
    events = audit.lineage_events(
        session,
        lot_id=lot.id,
        print_jobs=jobs,
        org_id=None if actor.sees_all else actor.org.id,
        before_seq=cursor,
        limit=limit,
    )
    return {
        "lot_number": lot.lot_number,
        "state": lot.state,
        "review": review_status(session, lot, jobs),
        "events": [audit.event_dict(e) for e in events],
        "next_cursor": events[-1].seq if len(events) == limit else None,
    }


def review(session: Session, *, lot: VectorLot, data: ReviewIn, actor: Actor) -> LotTrailReview:
    """Sign, as QA, that the lot's audit trail was reviewed up to data.up_to_seq."""
    if actor.role not in QA:
        raise Forbidden("reviewing an audit trail needs the role qa", code="role_required")
    if data.signature.meaning != MEANING:
        raise BadRequest(
            f"an audit-trail review is signed with the meaning {MEANING!r}",
            code="signature_meaning",
        )
    jobs = print_jobs(session, lot)
    newest = audit.lineage_newest_seq(
        session, lot_id=lot.id, print_jobs=jobs, skip_actions=NOT_CHANGES
    )
    if newest is None or data.up_to_seq > newest:
        raise Refused(
            f"seq {data.up_to_seq} is not in the audit trail of lot {lot.lot_number}; "
            f"its newest event is seq {newest}",
            code="unknown_seq",
            newest_seq=newest,
        )
    if data.up_to_seq < newest:
        new = audit.lineage_count_after(
            session,
            lot_id=lot.id,
            print_jobs=jobs,
            after_seq=data.up_to_seq,
            skip_actions=NOT_CHANGES,
        )
        raise Conflict(
            f"new events since you loaded the page: {new} event(s) after seq {data.up_to_seq} "
            f"(newest {newest}); reload the audit trail and review them",
            code="trail_changed",
            newest_seq=newest,
            new_events=new,
        )
    last = latest_review(session, lot)
    if last is not None and last.reviewed_up_to_seq == newest:
        raise Conflict(
            f"the audit trail of lot {lot.lot_number} is already reviewed up to seq {newest}",
            code="already_reviewed",
        )
    reviewed = session.exec(select(AuditEvent.hash).where(AuditEvent.seq == newest)).one()
    # The signature binds the lot, the seq and that event's hash: the trail as QA read it.
    content = {
        "lot_number": lot.lot_number,
        "review": "audit trail",
        "reviewed_up_to_seq": newest,
        "event_hash": reviewed,
    }
    sig = signatures.sign(
        session,
        actor=actor,
        password=data.signature.password,
        meaning=data.signature.meaning,
        username=data.signature.username,
        record_type=RECORD_TYPE,
        record_id=lot.lot_number,
        content=content,
    )
    row = LotTrailReview(
        lot_id=lot.id,
        reviewed_up_to_seq=newest,
        signature_id=sig.id,
        reviewer_id=actor.user.id,
        reviewed_at=sig.signed_at,
    )
    session.add(row)
    session.flush()
    audit.record_by(
        session,
        actor,
        action=REVIEW_ACTION,
        entity_type="lot",
        entity_id=lot.lot_number,
        after={**content, "signature": signatures.manifestation(sig)},
        org_id=lot.org_id,
        lot_id=lot.id,
        signature_id=sig.id,
    )
    return row


def release_refusal(session: Session, lot: VectorLot) -> None:
    """Refuse (422) releasing a lot whose audit trail QA has not reviewed since it last changed."""
    last = latest_review(session, lot)
    if last is None:
        raise Refused(
            f"the audit trail of lot {lot.lot_number} has not been reviewed; QA signs its "
            "review (EU GMP Annex 11 §9) before release",
            code="audit_trail_not_reviewed",
        )
    new = audit.lineage_count_after(
        session,
        lot_id=lot.id,
        print_jobs=print_jobs(session, lot),
        after_seq=last.reviewed_up_to_seq,
        skip_actions=NOT_CHANGES,
    )
    if new:
        raise Refused(
            f"{new} event(s) were added to the audit trail of lot {lot.lot_number} since QA "
            f"reviewed it up to seq {last.reviewed_up_to_seq}; review it again before release",
            code="audit_trail_changed",
            new_events=new,
            reviewed_up_to_seq=last.reviewed_up_to_seq,
        )
