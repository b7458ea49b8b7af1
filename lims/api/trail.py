"""A lot's audit-trail review (EU GMP Annex 11 §9): its lineage's events and QA's signature."""

from __future__ import annotations

from apiflask import APIBlueprint
from pydantic import ConfigDict, Field

from lims import lots
from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, answers
from lims.boundary import get_db, require, write
from lims.quality import trail
from lims.quality.trail import ReviewIn
from lims.roles import AUDIT_READERS, QA

bp = APIBlueprint("trail", __name__, url_prefix="/api", tag="Quality")


class TrailQuery(QueryModel):
    model_config = ConfigDict(extra="forbid")
    cursor: int | None = Field(default=None, ge=0, le=2**31 - 1, description="older than seq")
    limit: int = Field(default=100, ge=1, le=1000)


@bp.get("/lots/<lot>/audit-trail")
@answers(bp, schemas.LotTrailOut, *READ, 403, 404)
@bp.input(TrailQuery, location="query", arg_name="q")
def audit_trail(lot: str, q: TrailQuery):
    """Return the events of a lot's lineage, newest first, and QA's review of them.

    The lineage: the lot, its vials and their descendants, and the print jobs that labelled
    them. Pass next_cursor back as cursor for the next (older) page.
    """
    actor = require(*AUDIT_READERS)
    db = get_db()
    x = lots.get_lot(db, lot, actor)
    return trail.lineage_page(db, x, actor, cursor=q.cursor, limit=q.limit)


@bp.post("/lots/<lot>/audit-trail/review")
@answers(bp, schemas.TrailReviewOut, *WRITE, 404, 429, status=201)
@bp.input(ReviewIn, arg_name="data")
@write
def review(lot: str, data: ReviewIn):
    """Sign (QA, meaning 'review') that the lot's trail was reviewed up to up_to_seq.

    up_to_seq is the newest seq the reviewer saw; newer lineage events answer 409. Release and
    lifting a hold need a review that covers every lineage event.
    """
    actor = require(*QA)
    db = get_db()
    x = lots.get_lot(db, lot, actor)
    row = trail.review(db, lot=x, data=data, actor=actor)
    return {
        "lot_number": x.lot_number,
        "reviewed_up_to_seq": row.reviewed_up_to_seq,
        "review": trail.review_status(db, x),
    }, 201
