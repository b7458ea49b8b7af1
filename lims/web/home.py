"""The home page by role, and /find: open what a scanned or typed code names."""

from __future__ import annotations

from flask import Response, flash, g, redirect, request, url_for

from lims import lots, samples, storage, worklist
from lims.boundary.unit import get_db
from lims.identifiers import SAMPLE_BARCODE_RE, check_coi
from lims.web.common import actor, area, page, render, safe_next

bp = area("home", __name__)

_HOME_TILES = {
    "technician": [
        ("Bench", "web.bench.benches", "Scan tubes: receive, store, check out"),
        ("Samples", "web.samples.list", "Find a sample, its custody and lineage"),
        ("Lots", "web.lots.list", "Vector lots, QC results"),
        ("Storage", "web.storage.tree", "Rooms, freezers and box grids"),
        ("Print queue", "web.printing.queue", "Label jobs and reprints"),
    ],
    "qa": [
        ("Lots", "web.lots.list", "QC results, release and reject with e-signature"),
        ("Audit", "web.audit.search", "Search and export the audit trail"),
        ("Samples", "web.samples.list", "Custody timelines and lineage"),
        ("Bench", "web.bench.benches", "Scan at a bench"),
        ("Storage", "web.storage.tree", "Rooms, freezers and box grids"),
        ("Print queue", "web.printing.queue", "Label jobs and reprints"),
    ],
    "admin": [
        ("Users", "web.accounts.users", "Accounts, lockouts, sign-in events"),
        ("Audit", "web.audit.search", "Search and export the audit trail"),
        ("Bench", "web.bench.benches", "Scan at a bench"),
        ("Samples", "web.samples.list", "Find a sample"),
        ("Lots", "web.lots.list", "Vector lots"),
        ("Storage", "web.storage.tree", "Rooms, freezers and box grids"),
        ("Print queue", "web.printing.queue", "Label jobs and reprints"),
    ],
    "client_viewer": [
        ("Samples", "web.samples.list", "Your organisation's samples"),
        ("Lots", "web.lots.list", "Your organisation's lots"),
        ("Audit", "web.audit.search", "Your organisation's audit trail"),
        ("Storage", "web.storage.tree", "Where material is kept"),
    ],
}


@bp.get("/")
def index() -> Response:
    """Send a visitor to the sign-in page, or a signed-in user home."""
    if g.get("web_user") is None:
        return redirect(url_for("web.accounts.login"))
    return redirect(url_for("web.home.home"))


@bp.get("/home")
@page()
def home():  # noqa: ANN201
    """Show the links that fit the signed-in user's role."""
    tiles = [(t, url_for(ep), d) for t, ep, d in _HOME_TILES.get(actor().role, [])]
    sections = worklist.worklist(get_db(), actor())
    return render("home.html", tiles=tiles, org=actor().org, sections=sections)


@bp.get("/find")
@page()
def find() -> Response:
    """Open what a scanned or typed code names: a sample, a lot or a location."""
    q = (request.args.get("q") or "").strip()
    db = get_db()
    if not q:
        return redirect(url_for("web.home.home"))
    if SAMPLE_BARCODE_RE.match(q.upper()):
        return redirect(url_for("web.samples.show", barcode=q.upper()))
    if check_coi(q.upper()):
        # A Chain of Identity id: open the first sample that carries it (its page shows the
        # genealogy down to every aliquot).
        barcode = samples.first_with_coi(db, q.upper(), actor())
        if barcode is not None:
            return redirect(url_for("web.samples.show", barcode=barcode))
    lot = lots.find_lot(db, q, actor())
    if lot is not None:
        return redirect(url_for("web.lots.show", lot=lot.lot_number))
    code = q.split(":")[0]
    if storage.find_location(db, code) is not None:
        return redirect(url_for("web.storage.show", code=code))
    flash(f"Nothing is known by the code {q[:80]!r}.", "error")
    return redirect(safe_next(request.args.get("back")))
