"""The scan-first bench: stations driven by scans (walk-through in docs/bench.md)."""

from lims.bench import refusals
from lims.bench.modes import DEFAULT_CONDITION, MODES
from lims.bench.scan import handle_scan, recent_scans, scan_dict
from lims.bench.station import (
    get_station,
    list_stations,
    sign_off_everywhere,
    station_state,
    station_view,
)

__all__ = [
    "DEFAULT_CONDITION",
    "MODES",
    "get_station",
    "handle_scan",
    "list_stations",
    "refusals",
    "recent_scans",
    "scan_dict",
    "sign_off_everywhere",
    "station_state",
    "station_view",
]
