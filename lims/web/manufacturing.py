"""Manufacturing pages: material lots (list, one material and where it was used), lot inputs."""

from __future__ import annotations

from flask import flash, redirect, request, url_for

from lims.boundary.unit import get_db
from lims.manufacturing import genealogy, materials
from lims.roles import LAB
from lims.web.common import actor, area, first_error, page, perform, render

bp = area("manufacturing", __name__)


@bp.get("/materials", endpoint="materials")
@page()
def material_list():  # noqa: ANN201
    """List material lots, newest first, by state and kind, with why each may not be used."""
    db = get_db()
    filters = {k: (request.args.get(k) or "").strip()[:64] or None for k in ("state", "kind")}
    rows = materials.list_materials(db, actor(), **filters)
    return render(
        "manufacturing/materials.html",
        rows=[materials.material_dict(db, m) for m in rows],
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
