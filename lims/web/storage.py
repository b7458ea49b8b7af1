"""Storage pages: the location tree and one place (a box drawn as its grid)."""

from __future__ import annotations

from lims import storage
from lims.boundary.unit import get_db
from lims.web.common import actor, area, page, render

bp = area("storage", __name__)


@bp.get("/storage", endpoint="tree")
@page()
def storage_page():  # noqa: ANN201
    """Show the location tree: site, rooms with their grade, equipment, racks and boxes."""
    db = get_db()
    return render("storage.html", tree=storage.tree(db), counts=storage.sample_counts(db))


@bp.get("/storage/<code>", endpoint="show")
@page()
def location_page(code: str):  # noqa: ANN201
    """Show a location; a box is drawn as its grid with what each position holds."""
    db = get_db()
    who = actor()
    loc = storage.get_location(db, code)
    chain = list(reversed(storage.ancestors(db, loc)))
    held = storage.contents(db, loc, who)
    return render(
        "location.html",
        loc=loc,
        chain=chain,
        children=storage.children(db, loc),
        cols=list(range(1, (loc.cols or 0) + 1)),
        **held,
    )
