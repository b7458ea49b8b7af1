"""Manufacturing pages: material lots (list, one material and where it was used), lot inputs."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from lims import lots
from lims.boundary.unit import get_db
from lims.manufacturing import batch, genealogy, materials
from lims.roles import LAB, QA
from lims.signatures import SignatureIn
from lims.web.common import actor, area, first_error, page, perform, render
from lims.web.common import cursor as page_cursor
from lims.web.lists import Column, ListView, before_cursor

bp = area("manufacturing", __name__)


MATERIAL_COLUMNS = (
    Column("code", "Material", "code"),
    Column("kind", "Kind", "kind"),
    Column("supplier_lot", "Supplier lot", "supplier_lot"),
    Column("serial", "Serial", None),
    Column("expires", "Expires", "expires"),
    Column("state", "State", "state"),
    Column("usable", "Usable", None),
    Column("received", "Received", "received"),
)


@bp.get("/materials", endpoint="materials")
@page()
def material_list():  # noqa: ANN201
    """List material lots, newest first, sortable, page by page, with why each may not be used."""
    db = get_db()
    filters = {k: (request.args.get(k) or "").strip()[:64] or None for k in ("state", "kind")}
    sort = (request.args.get("sort") or "").strip()[:16] or materials.MATERIAL_SORT_DEFAULT
    result = materials.material_page(
        db, actor(), **filters, sort=sort, after=page_cursor(), before=before_cursor(), limit=50
    )
    shown = [c.key for c in MATERIAL_COLUMNS]
    view = ListView(
        url_for("web.manufacturing.materials"),
        filters=filters,
        sort=result.sort,
        default_sort=materials.MATERIAL_SORT_DEFAULT,
        columns=MATERIAL_COLUMNS,
        shown=shown,
    )
    return render(
        "manufacturing/materials.html",
        rows=[materials.material_dict(db, m) for m in result.rows],
        result=result,
        view=view,
        columns=MATERIAL_COLUMNS,
        filters=filters,
        states=materials.MATERIAL_STATES,
        kinds=materials.list_kinds(db, actor()),
    )


@bp.get("/materials/<code>", endpoint="material")
@page()
def material_page(code: str):  # noqa: ANN201
    """Show one material lot and every lot and vial that used it (recall)."""
    db = get_db()
    mat = materials.get_material(db, code, actor())
    return render(
        "manufacturing/material.html",
        m=materials.material_dict(db, mat),
        used=genealogy.where_used(db, code=mat.code, actor=actor()),
    )


@bp.post("/lots/<lot>/inputs", endpoint="add_input")
@page(*LAB)
def add_input(lot: str):  # noqa: ANN201
    """Record a material (by its code or scanned) going into a lot, from the lot page."""
    ref = (request.form.get("material") or "").strip()[:64]
    try:
        data = genealogy.ConsumeIn(
            material=ref or None,
            quantity=float(request.form["quantity"]) if request.form.get("quantity") else None,
            unit=(request.form.get("unit") or "").strip()[:16] or None,
        )
    except (ValueError, KeyError) as exc:
        flash(f"The form could not be read: {first_error(exc)}", "error")
        return redirect(url_for("web.lots.show", lot=lot))
    _, err = perform(lambda: genealogy.consume(get_db(), lot_number=lot, data=data, actor=actor()))
    if err is not None:
        if err.code == "unknown_lot":
            raise err
        flash(err.message, "error")
    else:
        flash(f"{ref} recorded as used in lot {lot}.", "ok")
    return redirect(url_for("web.lots.show", lot=lot) + "#h-genealogy")


# --- executing a batch record ------------------------------------------------------------------


def _batch_page(lot: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    """Render a lot's batch record with the form of its next step (or its verification)."""
    db = get_db()
    who = actor()
    the_lot = lots.get_lot(db, lot, who)
    record = batch.batch_of(db, lot=the_lot, actor=who)
    nxt = None
    if record and record["next"] is not None:
        nxt = record["steps"][record["next"] - 1]
    return render(
        "manufacturing/batch.html",
        status,
        lot=the_lot,
        record=record,
        nxt=nxt,
        can_record=who.role in LAB,
        can_review=who.role in QA,
        form=extra.pop("form", {}),
        scanned=extra.pop("scanned", []),
        **extra,
    )


@bp.get("/lots/<lot>/batch", endpoint="batch")
@page()
def batch_page(lot: str):  # noqa: ANN201
    """Show a lot's batch record and the form to carry out its next step."""
    return _batch_page(lot)


@bp.post("/lots/<lot>/batch", endpoint="batch_start")
@page(*LAB)
def batch_start(lot: str):  # noqa: ANN201
    """Open the lot's batch record on the approved version of a process template."""
    try:
        data = batch.BatchStart(template=(request.form.get("template") or "").strip()[:64])
    except ValueError as exc:
        return _batch_page(lot, 422, error=f"The form could not be read: {first_error(exc)}")
    _, err = perform(lambda: batch.start(get_db(), lot_number=lot, data=data, actor=actor()))
    if err is not None:
        if err.code == "unknown_lot":
            raise err
        return _batch_page(lot, err.status, error=err.message)
    flash(f"Batch record of lot {lot} opened on {data.template}.", "ok")
    return redirect(url_for("web.manufacturing.batch", lot=lot))


@bp.post("/lots/<lot>/batch/steps/<int:position>", endpoint="batch_step")
@page(*LAB)
def batch_step(lot: str, position: int):  # noqa: ANN201
    """Record a step as done by the signed-in person: values, equipment, room, materials."""
    form = request.form
    scanned = [m.strip()[:512] for m in form.getlist("material") if m.strip()][:50]
    values: dict[str, float] = {}
    try:
        for key in form:
            if key.startswith("value:") and len(values) < 50:
                raw = (form.get(key) or "").strip().replace(",", ".")
                if raw:
                    values[key[len("value:") :][:64]] = float(raw)
        data = batch.StepRecord(
            values=values,
            equipment=(form.get("equipment") or "").strip()[:64] or None,
            room=(form.get("room") or "").strip()[:64] or None,
            materials=scanned,
        )
    except ValueError as exc:
        why = first_error(exc) if hasattr(exc, "errors") else "a value is not a number"
        return _batch_page(
            lot, 422, error=f"The step form could not be read: {why}", form=form, scanned=scanned
        )

    def record() -> dict[str, Any]:
        db = get_db()
        batch.record_step(db, lot_number=lot, position=position, data=data, actor=actor())
        return batch.batch_dict(db, lot_number=lot, actor=actor())

    done, err = perform(record)
    if err is not None:
        if err.code in ("unknown_lot", "no_batch_record"):
            raise err
        return _batch_page(lot, err.status, error=err.message, form=form, scanned=scanned)
    step = done["steps"][position - 1]
    flagged = [p for p in step["parameters"] if p["in_range"] is False]
    flash(f"Step {position} ({step['name']}) recorded.", "ok")
    if flagged:
        names = ", ".join(f"{p['name']} {p['value']:g} {p['unit']}" for p in flagged)
        flash(f"Out of range, flagged on the record: {names}. See the lot's deviations.", "error")
    return redirect(url_for("web.manufacturing.batch", lot=lot))


@bp.post("/lots/<lot>/batch/steps/<int:position>/verify", endpoint="batch_verify")
@page(*LAB)
def batch_verify(lot: str, position: int):  # noqa: ANN201
    """Verify a step with the signed-in person's e-signature (not the step's operator)."""
    password = request.form.get("password") or ""
    if not password:
        return _batch_page(lot, 422, error="Enter your password to sign the verification.")
    data = batch.VerifyIn(signature=SignatureIn(password=password[:500], meaning="review"))
    _, err = perform(
        lambda: batch.verify_step(
            get_db(), lot_number=lot, position=position, data=data, actor=actor()
        )
    )
    if err is not None:
        if err.code in ("unknown_lot", "no_batch_record"):
            raise err
        return _batch_page(lot, err.status, error=err.message)
    flash(f"Step {position} verified.", "ok")
    return redirect(url_for("web.manufacturing.batch", lot=lot))


@bp.post("/lots/<lot>/batch/review", endpoint="batch_review")
@page(*QA)
def batch_review(lot: str):  # noqa: ANN201
    """Sign, as QA, the review of the lot's complete batch record (not someone who did a step)."""
    password = request.form.get("password") or ""
    if not password:
        return _batch_page(lot, 422, error="Enter your password to sign the review.")
    data = batch.ReviewIn(signature=SignatureIn(password=password[:500], meaning="review"))
    _, err = perform(lambda: batch.review(get_db(), lot_number=lot, data=data, actor=actor()))
    if err is not None:
        if err.code in ("unknown_lot", "no_batch_record"):
            raise err
        return _batch_page(lot, err.status, error=err.message)
    flash(f"Batch record of lot {lot} reviewed.", "ok")
    return redirect(url_for("web.manufacturing.batch", lot=lot))
