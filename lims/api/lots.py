"""Vector lots: create, read, QC results, disposition with e-signature."""

from __future__ import annotations

from datetime import date

from apiflask import APIBlueprint
from pydantic import ConfigDict, Field

from lims import lots
from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, answers
from lims.boundary import current_actor, get_db, write
from lims.lots import LotCreate, LotTransitionIn, QcIn
from lims.quality import results
from lims.quality.results import ReviewIn

bp = APIBlueprint("lots", __name__, url_prefix="/api", tag="Lots")


class LotQuery(QueryModel):
    """Filters of the lot list (any case); an unknown parameter is refused."""

    model_config = ConfigDict(extra="forbid")
    state: str | None = Field(default=None, max_length=32)
    vector: str | None = Field(
        default=None, max_length=64, description="a vector's name, type (AAV, LV) or serotype"
    )
    project: str | None = Field(default=None, max_length=64)
    expires_before: date | None = Field(default=None, description="expiring on or before")
    expires_after: date | None = Field(default=None, description="expiring on or after")
    cursor: int | None = Field(default=None, ge=0, le=2**31 - 1)  # INTEGER ids
    before: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="a prev_cursor: the page before it"
    )
    sort: str | None = Field(
        default=None,
        max_length=16,
        description="created (default, oldest first), updated, lot, vector, type, state or "
        "expires; '-' first for descending (-created: newest first)",
    )
    limit: int = Field(default=100, ge=1, le=1000)


@bp.post("/lots")
@answers(bp, schemas.LotOut, *WRITE, 404, 413, status=201)
@bp.input(LotCreate, arg_name="data")
@write
def create_lot(data: LotCreate):
    """Plan a vector lot."""
    db = get_db()
    lot = lots.create_lot(db, data=data, actor=current_actor())
    return lots.lot_dict(db, lot), 201


@bp.get("/lots")
@answers(bp, schemas.LotPage, *READ)
@bp.input(LotQuery, location="query", arg_name="q")
def list_lots(q: LotQuery):
    """List the lots you may see; filter by state, vector, project, expiry (any case)."""
    page = lots.lot_page(
        get_db(),
        current_actor(),
        state=q.state,
        vector=q.vector,
        project=q.project,
        expires_before=q.expires_before,
        expires_after=q.expires_after,
        sort=q.sort or "created",
        after=q.cursor,
        before=q.before,
        limit=q.limit,
    )
    return {
        "lots": [lots.lot_summary(x) for x in page.rows],
        "next_cursor": page.next_cursor,
        "prev_cursor": page.prev_cursor,
        "total": page.total,
        "sort": page.sort,
    }


@bp.get("/lots/<lot>")
@answers(bp, schemas.LotOut, *READ, 404)
def get_lot(lot: str):
    """Return a lot with its QC results, signatures and vials."""
    db = get_db()
    return lots.lot_dict(db, lots.get_lot(db, lot, current_actor()))


@bp.post("/lots/<lot>/qc")
@answers(bp, schemas.LotOut, *WRITE, 404, 413, status=201)
@bp.input(QcIn, arg_name="data")
@write
def record_qc(lot: str, data: QcIn):
    """Record a QC result, judged against the specification in force when it was sampled.

    No spec and no passed: the approved specification gives the limits. A repeat corrects the
    result (with a reason); a failing result opens an OOS investigation.
    """
    db = get_db()
    lots.record_qc(db, lot_number=lot, data=data, actor=current_actor())
    return lots.lot_dict(db, lots.get_lot(db, lot, current_actor())), 201


@bp.post("/lots/<lot>/qc/<int:result_id>/review")
@answers(bp, schemas.LotOut, *WRITE, 404, 413)
@bp.input(ReviewIn, arg_name="data")
@write
def review_qc(lot: str, result_id: int, data: ReviewIn):
    """Review a QC result (QA e-signature 'review'); who recorded it may not review it."""
    db = get_db()
    x = lots.get_lot(db, lot, current_actor())
    results.review_of(db, result_id=result_id, lot=x, data=data, actor=current_actor())
    return lots.lot_dict(db, lots.get_lot(db, lot, current_actor()))


@bp.post("/lots/<lot>/transitions")
@answers(bp, schemas.LotOut, *WRITE, 404, 413)
@bp.input(LotTransitionIn, arg_name="data")
@write
def transition(lot: str, data: LotTransitionIn):
    """Move a lot along its disposition (release/reject need a QA e-signature)."""
    db = get_db()
    x = lots.transition_lot(db, lot_number=lot, data=data, actor=current_actor())
    return lots.lot_dict(db, x)
