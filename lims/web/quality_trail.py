"""A lot's audit-trail review page: its lineage's events, newest first, and QA's sign form."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import flash, redirect, request, url_for

from lims import lots
from lims.boundary.unit import get_db
from lims.errors import LimsError
from lims.quality import trail
from lims.roles import AUDIT_READERS, QA
from lims.signatures import SignatureIn
from lims.web.common import actor, area, first_error, page, perform, render
from lims.web.common import cursor as page_cursor

bp = area("quality_trail", __name__)
_LIMIT = 100


def _trail_page(lot_number: str, status: int = 200, **extra: object) -> tuple[str, int]:
    db = get_db()
    who = actor()
    lot = lots.get_lot(db, lot_number, who)
    cursor = page_cursor()
    data = trail.lineage_page(db, lot, who, cursor=cursor, limit=_LIMIT)
    next_url = None
    if data["next_cursor"] is not None:
        next_url = (
            url_for("web.quality_trail.show", lot=lot.lot_number)
            + "?"
            + urlencode({"cursor": data["next_cursor"]})
        )
    return render(
        "lot_trail.html",
        status,
        lot=lot,
        data=data,
        review=data["review"],
        paged=cursor is not None,
        next_url=next_url,
        can_sign=who.role in QA,
        **extra,
    )


@bp.get("/lots/<lot>/audit-trail", endpoint="show")
@page(*AUDIT_READERS)
def lot_trail(lot: str):  # noqa: ANN201
    """List the events of a lot's lineage, newest first, with the review status and sign form."""
    return _trail_page(lot)


@bp.post("/lots/<lot>/audit-trail/review", endpoint="review")
@page(*QA)
def lot_trail_review(lot: str):  # noqa: ANN201
    """Sign, as QA, that the lot's audit trail was reviewed up to the seq the page showed."""
    form = request.form
    raw_seq = (form.get("up_to_seq") or "").strip()
    try:
        data = trail.ReviewIn(
            up_to_seq=int(raw_seq) if raw_seq.isdigit() and len(raw_seq) < 12 else 0,
            signature=SignatureIn(
                password=form.get("password") or "\0",
                meaning=(form.get("meaning") or "")[:32] or "\0",
            ),
        )
    except ValueError as exc:
        return _trail_page(lot, 400, error=f"The form could not be read: {first_error(exc)}")
    if data.signature.password == "\0":
        return _trail_page(lot, 422, error="Enter your password to sign.")

    def sign() -> trail.LotTrailReview:
        db = get_db()
        return trail.review(db, lot=lots.get_lot(db, lot, actor()), data=data, actor=actor())

    row, err = perform(sign)
    if err is not None:
        if err.code == "unknown_lot":
            raise err
        return _trail_page(lot, err.status, error=_message(err))
    flash(f"Audit trail of lot {lot} reviewed up to seq {row.reviewed_up_to_seq}.", "ok")
    return redirect(url_for("web.quality_trail.show", lot=lot))


def _message(err: LimsError) -> str:
    if err.code == "trail_changed":
        return f"{err.message} The list below now shows them."
    return err.message
