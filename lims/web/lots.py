"""Vector lot pages: the list, one lot (QC, disposition, vials), its moves and QC results."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from lims import lots, samples
from lims.boundary.unit import get_db
from lims.manufacturing import batch
from lims.quality import results, specs, trail
from lims.roles import AUDIT_READERS, LAB, QA
from lims.signatures import SignatureIn
from lims.web.common import actor, area, first_error, page, perform, render
from lims.web.common import cursor as page_cursor
from lims.web.lists import Column, ListView, before_cursor, chosen_columns

bp = area("lots", __name__)


LOT_COLUMNS = (
    Column("lot", "Lot", "lot"),
    Column("vector", "Vector", "vector"),
    Column("type", "Type", "type"),
    Column("state", "Disposition", "state"),
    Column("project", "Project", None),
    Column("organisation", "Organisation", None, shown=False),
    Column("vials", "Vials", None),
    Column("expires", "Expires", "expires"),
    Column("created", "Created", "created"),
    Column("updated", "Updated", "updated", shown=False),
)


@bp.get("/lots", endpoint="list")
@page()
def lots_list():  # noqa: ANN201
    """List the vector lots you may see, newest first, sortable, page by page."""
    db = get_db()
    args = {k: (request.args.get(k) or "").strip()[:64] or None for k in ("state", "project", "q")}
    sort = (request.args.get("sort") or "").strip()[:16] or lots.LOT_SORT_DEFAULT
    result = lots.lot_page(
        db,
        actor(),
        state=args["state"],
        project=args["project"],
        text=args["q"],
        sort=sort,
        after=page_cursor(),
        before=before_cursor(),
        limit=50,
    )
    shown = chosen_columns(LOT_COLUMNS)
    view = ListView(
        url_for("web.lots.list"),
        filters=args,
        sort=result.sort,
        default_sort=lots.LOT_SORT_DEFAULT,
        columns=LOT_COLUMNS,
        shown=shown,
    )
    return render(
        "lots.html",
        rows=lots.lot_rows(db, result.rows),
        result=result,
        view=view,
        columns=LOT_COLUMNS,
        shown=shown,
        filters=args,
        states=lots.LOT_STATES,
    )


def _lot_context(lot_number: str) -> dict[str, Any]:
    db = get_db()
    who = actor()
    lot = lots.get_lot(db, lot_number, who)
    project, org = lots.owner(db, lot)  # held first: lot_dict then finds them in the session
    vials = samples.vials_of_lot(db, lot)
    spec = specs.in_force(db, product=lot.vector_type, stage="release")
    limits = specs.limits_of(db, spec) if spec else []
    info = lots.lot_dict(db, lot, vials=[v["s"] for v in vials], limits=limits)
    actions = []
    for name in info["allowed_actions"]:
        t = lots.LOT_TRANSITIONS[name]
        if who.role in t.roles:
            actions.append(t)
    return {
        "lot": lot,
        "steps": _lot_steps(lot.state),
        "info": info,
        "vials": vials,
        "actions": actions,
        "required_qc": info["qc_missing"],
        "spec": spec,
        "spec_tests": [x.test for x in limits],
        # Every rule release answers to (results, OOS, deviations, expiry, trail review), asked
        # of the domain: the button is disabled with the reason the server would give.
        # Asked only where an action that needs it is offered (a released lot has none).
        "release_blocker": lots.release_blocker(db, lot, who)
        if any(t.needs_qc for t in actions)
        else None,
        "can_review": who.role in QA and lot.state in ("in_production", "quarantine"),
        "can_qc": who.role in LAB and lot.state in ("in_production", "quarantine"),
        "can_report": who.role in AUDIT_READERS,
        "trail": trail.review_status(db, lot),
        "can_review_trail": who.role in QA,
        "project": project,
        "org": org,
        "genealogy": batch.lot_page(db, lot=lot, actor=who),
    }


_LOT_PATH = ("planned", "in_production", "quarantine", "released")
# Where a state off the main path branches from it.
_LOT_BRANCH = {"rejected": 2, "on_hold": 3, "expired": 3}


def _lot_steps(state: str) -> list[tuple[str, str]]:
    """Return (state, done|now|todo) along the disposition path, for the drawn steps."""
    if state in _LOT_PATH:
        i = _LOT_PATH.index(state)
        return [
            (s, "done" if k < i else "now" if k == i else "todo") for k, s in enumerate(_LOT_PATH)
        ]
    branch = _LOT_BRANCH.get(state, 3)
    return [(s, "done") for s in _LOT_PATH[: branch + 1]] + [(state, "now")]


@bp.get("/lots/<lot>", endpoint="show")
@page()
def lot_page(lot: str):  # noqa: ANN201
    """Show a lot: QC against specs, disposition, signatures, vials and where they are."""
    return render("lot.html", **_lot_context(lot))


@bp.post("/lots/<lot>/transition", endpoint="transition")
@page(*LAB)
def lot_transition(lot: str):  # noqa: ANN201
    """Move a lot along its disposition; release and reject carry an e-signature."""
    form = request.form
    action = (form.get("action") or "")[:32]
    t = lots.LOT_TRANSITIONS.get(action)
    try:
        sig = None
        if t is not None and t.signature:
            sig = lots.SignatureIn(
                password=form.get("password") or "\0",
                meaning=(form.get("meaning") or "")[:32] or "\0",
            )
        data = lots.LotTransitionIn(
            action=action,
            version=int(form.get("version") or 0) or None,
            reason=(form.get("reason") or "").strip() or None,
            signature=sig,
        )
    except ValueError as exc:
        flash(f"The form could not be read: {first_error(exc)}", "error")
        return redirect(url_for("web.lots.show", lot=lot))
    if sig is not None and sig.password == "\0":
        ctx = _lot_context(lot)
        return render("lot.html", 422, error="Enter your password to sign.", failed=action, **ctx)
    x, err = perform(
        lambda: lots.transition_lot(get_db(), lot_number=lot, data=data, actor=actor())
    )
    if err is not None:
        if err.code == "unknown_lot":
            raise err
        ctx = _lot_context(lot)
        return render("lot.html", err.status, error=err.message, failed=action, **ctx)
    flash(f"Lot {x.lot_number}: {action.replace('_', ' ')} done; now {x.state}.", "ok")
    return redirect(url_for("web.lots.show", lot=x.lot_number))


@bp.post("/lots/<lot>/qc", endpoint="qc")
@page(*LAB)
def lot_qc(lot: str):  # noqa: ANN201
    """Record a QC result for a lot (a repeat supersedes the last one, with a reason)."""
    form = request.form
    try:
        data = lots.QcIn(
            test=(form.get("test") or "").strip(),
            result=(form.get("result") or "").strip(),
            sampled_at=(form.get("sampled_at") or "").strip() or None,
            reason=(form.get("reason") or "").strip() or None,
        )
    except ValueError as exc:
        ctx = _lot_context(lot)
        return render(
            "lot.html", 400, error=f"The QC form is incomplete: {first_error(exc)}", **ctx
        )
    _, err = perform(lambda: lots.record_qc(get_db(), lot_number=lot, data=data, actor=actor()))
    if err is not None:
        if err.code == "unknown_lot":
            raise err
        ctx = _lot_context(lot)
        return render("lot.html", err.status, error=err.message, **ctx)
    flash(f"QC result for {data.test} recorded.", "ok")
    return redirect(url_for("web.lots.show", lot=lot))


@bp.post("/lots/<lot>/qc/<int:result_id>/review", endpoint="review")
@page(*QA)
def lot_qc_review(lot: str, result_id: int):  # noqa: ANN201
    """Sign a QC result as reviewed (not by its recorder)."""
    form = request.form
    password = form.get("password") or ""
    if not password:
        return render("lot.html", 422, error="Enter your password to sign.", **_lot_context(lot))
    data = results.ReviewIn(
        signature=SignatureIn(
            password=password[:500], meaning=(form.get("meaning") or "")[:32] or "\0"
        )
    )

    def review() -> None:
        db = get_db()
        x = lots.get_lot(db, lot, actor())
        results.review_of(db, result_id=result_id, lot=x, data=data, actor=actor())

    _, err = perform(review)
    if err is not None:
        if err.code == "unknown_lot":
            raise err
        return render("lot.html", err.status, error=err.message, **_lot_context(lot))
    flash(f"QC result {result_id} reviewed.", "ok")
    return redirect(url_for("web.lots.show", lot=lot))
