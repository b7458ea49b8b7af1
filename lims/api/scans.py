"""Scans from bench stations: POST /api/scans, GET /api/scans, GET /api/stations/<name>.

Refusals answer 200 with outcome "refused"; the contract is in docs/bench.md.
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app
from pydantic import ConfigDict, Field, field_validator

from lims import bench, scanning
from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, answers
from lims.boundary import accepts_nul, current_actor, get_db, require, write
from lims.inputs import Input, Line
from lims.roles import LAB

bp = APIBlueprint("scans", __name__, url_prefix="/api", tag="Scans")


class ScanIn(Input):
    """One read of a scanner at a bench."""

    station: Line = Field(min_length=1, max_length=64, description="station name, e.g. BENCH-B1")
    data: str = Field(max_length=scanning.MAX_SCAN_LENGTH, description="the scanned text")
    scan_id: Line = Field(
        min_length=1, max_length=100, description="unique per scan; a retry reuses it"
    )
    symbology: str | None = Field(default=None, max_length=8, description="AIM id, e.g. ]C1")
    device: str | None = Field(default=None, max_length=120, description="which scanner")
    error: str | None = Field(
        default=None, max_length=100, description="the reader could not frame the scan"
    )

    @field_validator("symbology", "device", "error")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # Only `data` is raw device input (escaped when stored); the rest are names and ids.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class ScanQuery(QueryModel):
    model_config = ConfigDict(extra="forbid")
    station: str = Field(min_length=1, max_length=64)
    limit: int = Field(default=50, ge=1, le=500)


@bp.post("/scans")
@answers(bp, schemas.ScanOut, *WRITE, 404, 413)
@accepts_nul  # a scanner's garbage is refused and recorded (escaped), not a 400
@bp.input(ScanIn, arg_name="data")
@write
def post_scan(data: ScanIn):
    """Resolve a scan at a station and do what it means there (refusals are 200 + refused)."""
    return bench.handle_scan(
        get_db(),
        station=data.station,
        scan_id=data.scan_id,
        data=data.data,
        symbology=data.symbology,
        device=data.device,
        error=data.error,
        agent=current_actor(),
        window_s=float(current_app.config.get("SCAN_DUPLICATE_WINDOW_S", 3.0)),
        config=current_app.config,
    )


@bp.get("/scans")
@answers(bp, schemas.ScansOut, *READ, 403, 404)
@bp.input(ScanQuery, location="query", arg_name="q")
def list_scans(q: ScanQuery):
    """List a station's recent scans, newest first."""
    db = get_db()
    return {
        "station": q.station,
        "scans": bench.recent_scans(db, station=q.station, actor=current_actor(), limit=q.limit),
    }


@bp.get("/stations/<name>")
@answers(bp, schemas.StationOut, *READ, 403, 404)
def get_station(name: str):
    """Return a station's state: operator, mode, target, settings and what to scan next."""
    actor = require(*LAB)
    db = get_db()
    # A client's staff see another organisation's task only as "in use" (redacted: true).
    return bench.station_view(db, bench.get_station(db, name), actor)


class RefusalAckIn(Input):
    """Acknowledge one refusal (its scan's id), or, with none, every one waiting."""

    scan_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


@bp.get("/stations/<name>/refusals")
@answers(bp, schemas.RefusalsOut, *READ, 403, 404)
def station_refusals(name: str):
    """List a station's refusals not yet acknowledged, newest first (stop: needs a supervisor)."""
    actor = require(*LAB)
    db = get_db()
    st = bench.get_station(db, name)
    return {"station": st.name, "refusals": bench.refusals.waiting(db, st, actor)}


@bp.post("/stations/<name>/refusals/acknowledge")
@answers(bp, schemas.RefusalsOut, *WRITE, 404, 413)
@bp.input(RefusalAckIn, arg_name="data")
@write
def acknowledge_refusals(name: str, data: RefusalAckIn):
    """Acknowledge a refusal on a bench's screen, or all of them (as CMD:ACK does)."""
    actor = require(*LAB)
    db = get_db()
    st = bench.get_station(db, name, lock=True)
    n = bench.refusals.acknowledge(db, st, actor, scan_id=data.scan_id)
    return {
        "station": st.name,
        "acknowledged": n,
        "refusals": bench.refusals.waiting(db, st, actor),
    }
