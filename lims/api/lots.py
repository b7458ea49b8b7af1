"""Vector lots: create, read, QC results, disposition with e-signature."""

from __future__ import annotations

from apiflask import APIBlueprint

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
    """The lot list takes no parameters: an unknown one (a filter, a limit) is refused."""


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
@answers(bp, schemas.LotsOut, *READ)
@bp.input(LotQuery, location="query", arg_name="q")
def list_lots(q: LotQuery):
    """List the lots you may see."""
    return {"lots": [lots.lot_summary(x) for x in lots.list_lots(get_db(), current_actor())]}


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
