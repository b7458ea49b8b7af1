"""The bench pages: the list of stations and one bench's scan page."""

from __future__ import annotations

from lims import bench as bench_mod
from lims.boundary.unit import get_db
from lims.roles import LAB
from lims.web.common import actor, area, page, render

bp = area("bench", __name__)


@bp.get("/bench")
@page(*LAB)
def benches():  # noqa: ANN201
    """List the bench stations to open one."""
    return render("benches.html", rows=bench_mod.list_stations(get_db(), actor()))


@bp.get("/bench/<station>")
@page(*LAB)
def bench(station: str):  # noqa: ANN201
    """Show a bench: mode banner, operator, target, the scan field and the last scans."""
    db = get_db()
    st = bench_mod.get_station(db, station)
    state = bench_mod.station_view(db, st, actor())
    scans = bench_mod.recent_scans(db, station=st.name, actor=actor(), limit=15)
    return render("bench.html", station=st, state=state, scans=scans)
