"""Shipment pages: the list, and one shipment with its manifest, logger readings (table and a
small chart against the limits), the excursion banner and the receipt form a site scans into."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, flash, redirect, request, url_for

from lims.boundary.unit import get_db
from lims.errors import LimsError
from lims.roles import LAB, QA
from lims.therapy import logger, products, shipments
from lims.web.common import actor, area, first_error, page, perform, render

bp = area("shipments", __name__)

# The chart's drawing area (SVG user units) and how many readings the table shows at most.
WIDTH, HEIGHT, PAD = 640, 200, 36
TABLE_ROWS = 300


def _text(name: str, limit: int) -> str | None:
    return (request.form.get(name) or "").strip()[:limit] or None


def _version() -> int | None:
    raw = request.form.get("version") or ""
    return int(raw) if raw.isdigit() and 0 < int(raw) < 2**31 else None


@bp.get("/shipments", endpoint="list")
@page()
def shipment_list(status: int = 200, **extra: Any):  # noqa: ANN201
    """List the shipments you may see (a clinical site: those sent to it), newest first."""
    db = get_db()
    who = actor()
    state = (request.args.get("state") or "").strip()[:32] or None
    rows = shipments.list_shipments(db, who, state=state)
    can_pack = who.sees_all and who.role in LAB
    return render(
        "therapy/shipments.html",
        status,
        rows=[shipments.shipment_dict(db, s) for s in rows],
        states=shipments.STATES,
        state=state,
        can_pack=can_pack,
        sites=shipments.list_sites(db) if can_pack else [],
        product_codes=products.list_product_codes(db) if can_pack else [],
        form=request.form if request.method == "POST" else {},
        **extra,
    )


@bp.post("/shipments", endpoint="pack")
@page(*LAB)
def shipment_pack():  # noqa: ANN201
    """Pack a shipment from the form: site, product, shipper, logger and the first bag."""
    try:
        data = shipments.ShipmentCreate(
            site=_text("site", 64) or "",
            product_code=_text("product_code", 8) or "",
            shipper=_text("shipper", 200) or "",
            logger_id=_text("logger_id", 64) or "",
            containers=[
                shipments.ContainerIn(bag=_text("bag", 64) or "", coi=_text("coi", 64) or "")
            ],
        )
    except ValueError as exc:
        return shipment_list(error=f"The form is incomplete: {first_error(exc)}", status=400)
    s, err = perform(lambda: shipments.create(get_db(), data=data, actor=actor()))
    if err is not None:
        return shipment_list(error=err.message, status=err.status)
    flash(f"{s.number} packed; add more bags or dispatch it.", "ok")
    return redirect(url_for("web.shipments.show", number=s.number))


def chart(points: list[tuple[datetime, float]], low: float, high: float) -> dict[str, Any] | None:
    """Return the chart's polyline and limit lines in SVG units (None: nothing to draw)."""
    if not points:
        return None
    temps = [t for _ts, t in points]
    top, bottom = max(*temps, high) + 2, min(*temps, low) - 2
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (t1 - t0) or 1.0

    def x(ts: datetime) -> float:
        return round(PAD + (ts.timestamp() - t0) / span * (WIDTH - 2 * PAD), 1)

    def y(temp: float) -> float:
        return round(PAD / 2 + (top - temp) / (top - bottom) * (HEIGHT - PAD), 1)

    # A long logger file is thinned to its extremes per column: an excursion is never dropped.
    columns: dict[int, list[tuple[datetime, float]]] = {}
    for ts, temp in points:
        columns.setdefault(int(x(ts)), []).append((ts, temp))
    kept: list[tuple[datetime, float]] = []
    for col in columns.values():
        lo = min(col, key=lambda p: p[1])
        hi = max(col, key=lambda p: p[1])
        kept.extend(sorted({lo, hi}))
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "polyline": " ".join(f"{x(ts)},{y(t)}" for ts, t in kept),
        "high_y": y(high),
        "low_y": y(low),
        "x0": PAD,
        "x1": WIDTH - PAD,
        "bad": [(x(ts), y(t)) for ts, t in kept if t < low or t > high],
        "top": round(top, 1),
        "bottom": round(bottom, 1),
    }


def _context(number: str, **extra: Any) -> dict[str, Any]:
    db = get_db()
    who = actor()
    s = shipments.get_shipment(db, number, who)
    info = shipments.shipment_dict(db, s, with_timeline=True)
    points = shipments.readings(db, s)
    step = max(1, len(points) // TABLE_ROWS)
    shown = [
        p
        for i, p in enumerate(points)
        if i % step == 0 or p[1] < s.min_temp_c or p[1] > s.max_temp_c
    ]
    staff = who.sees_all and who.role in LAB
    return {
        "s": info,
        "chart": chart(points, s.min_temp_c, s.max_temp_c),
        "table": shown,
        "table_thinned": len(shown) < len(points),
        "is_staff": staff,
        "can_pack": staff and s.state == "packed",
        "can_receive": s.state == "dispatched" and (staff or who.role == "site"),
        "can_import": s.state in shipments.READABLE and (staff or who.role == "site"),
        "can_reject": s.state == "dispatched" and who.role in ("qa", "site"),
        "can_acknowledge": bool(s.held_by) and who.role in QA,
        **extra,
    }


def _show(number: str, status: int = 200, **extra: Any):  # noqa: ANN202
    return render("therapy/shipment.html", status, **_context(number, **extra))


@bp.get("/shipments/<number>", endpoint="show")
@page()
def shipment_page(number: str):  # noqa: ANN201
    """Show a shipment: manifest, limits, readings, excursion, receipt, each episode's chain."""
    return _show(number)


def _done(number: str, err: LimsError | None, what: str, failed: str):  # noqa: ANN202
    if err is not None:
        if err.code == "unknown_shipment":
            raise err
        return _show(number, err.status, error=err.message, failed=failed)
    flash(f"{number}: {what}.", "ok")
    return redirect(url_for("web.shipments.show", number=number))


@bp.post("/shipments/<number>/receive", endpoint="receive")
@page()
def shipment_receive(number: str):  # noqa: ANN201
    """Take delivery from the scan field: each bag's barcode, then the COI on its label."""
    lines = [ln.strip() for ln in (request.form.get("scans") or "").splitlines() if ln.strip()]
    if not lines or len(lines) % 2:
        return _show(
            number,
            400,
            error="Scan each bag, then the COI on its label: the scans come in pairs "
            f"({len(lines)} scanned).",
            failed="receive",
        )
    try:
        data = shipments.ReceiptIn(
            scans=[
                shipments.ScanIn(bag=lines[i][:64], coi=lines[i + 1][:64])
                for i in range(0, len(lines), 2)
            ],
            version=_version(),
        )
    except ValueError as exc:
        return _show(number, 400, error=first_error(exc), failed="receive")
    _, err = perform(lambda: shipments.receive(get_db(), number=number, data=data, actor=actor()))
    return _done(number, err, "received at the site", "receive")


@bp.post("/shipments/<number>/dispatch", endpoint="dispatch")
@page(*LAB)
def shipment_dispatch(number: str):  # noqa: ANN201
    """Dispatch the box: every episode on it is shipped."""
    _, err = perform(
        lambda: shipments.dispatch(get_db(), number=number, actor=actor(), version=_version())
    )
    return _done(number, err, "dispatched", "dispatch")


@bp.post("/shipments/<number>/containers", endpoint="add")
@page(*LAB)
def shipment_add(number: str):  # noqa: ANN201
    """Put one more bag, scanned with its COI, on a packed shipment."""
    try:
        data = shipments.ContainersIn(
            containers=[
                shipments.ContainerIn(bag=_text("bag", 64) or "", coi=_text("coi", 64) or "")
            ],
            version=_version(),
        )
    except ValueError as exc:
        return _show(number, 400, error=first_error(exc), failed="add")
    _, err = perform(
        lambda: shipments.add_containers(get_db(), number=number, data=data, actor=actor())
    )
    return _done(number, err, "bag added", "add")


@bp.post("/shipments/<number>/readings", endpoint="readings")
@page()
def shipment_readings(number: str):  # noqa: ANN201
    """Import the logger's CSV file (or pasted text)."""
    upload = request.files.get("file")
    raw = upload.read() if upload and upload.filename else (request.form.get("csv") or "").encode()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _show(number, 400, error="The logger file is not UTF-8 text.", failed="readings")
    if not text.strip():
        return _show(number, 400, error="Choose the logger's CSV file.", failed="readings")
    out, err = perform(
        lambda: logger.import_readings(
            get_db(),
            number=number,
            text=text,
            actor=actor(),
            max_gap=logger.max_gap(current_app.config),
        )
    )
    if err is None and out["deviation"]:
        flash(
            f"{out['outside_limits']} readings outside the limits: deviation {out['deviation']} "
            "opened.",
            "error",
        )
    return _done(number, err, f"{out['readings'] if out else 0} readings imported", "readings")


@bp.post("/shipments/<number>/transition", endpoint="transition")
@page()
def shipment_transition(number: str):  # noqa: ANN201
    """Cancel or reject the shipment with a reason."""
    try:
        data = shipments.ShipmentTransitionIn(
            action=_text("action", 32) or "", reason=_text("reason", 2000), version=_version()
        )
    except ValueError as exc:
        return _show(number, 400, error=first_error(exc), failed="transition")
    _, err = perform(
        lambda: shipments.transition(get_db(), number=number, data=data, actor=actor())
    )
    return _done(number, err, f"{data.action} done", "transition")


@bp.post("/shipments/<number>/acknowledge", endpoint="acknowledge")
@page(*QA)
def shipment_acknowledge(number: str):  # noqa: ANN201
    """QA acknowledges the mismatch that holds the shipment, with a reason."""
    try:
        data = shipments.AcknowledgeIn(reason=_text("reason", 2000) or "", version=_version())
    except ValueError as exc:
        return _show(number, 400, error=first_error(exc), failed="acknowledge")
    _, err = perform(
        lambda: shipments.acknowledge(get_db(), number=number, data=data, actor=actor())
    )
    return _done(number, err, "mismatch acknowledged; receipt may be tried again", "acknowledge")
