"""A bench's refusals are kept with the station until acknowledged: a reload shows them again;
"OK, seen", "acknowledge all" and CMD:ACK clear them (audited); a stop's only a release clears."""

from __future__ import annotations

from tests.bench.test_scanning_flow import Bench, events
from tests.bench.test_station_stop import _mismatch

STATION = "BENCH-B1"
URL = f"/api/stations/{STATION}/refusals"


def _waiting(client, headers) -> list[dict]:  # noqa: ANN001
    r = client.get(URL, headers=headers)
    assert r.status_code == 200, r.json
    return r.json["refusals"]


def _ack(client, headers, **body):  # noqa: ANN001, ANN202
    return client.post(f"{URL}/acknowledge", json=body, headers=headers)


def test_refusals_wait_until_seen_one_by_one_or_all(app, client, auth):
    tech = auth("tech1")
    bench = Bench(client, auth("admin", STATION))
    bench.ok("BADGE-0002")
    first = bench.scan("S26-000001-X")  # a wrong check character
    second = bench.scan("NOT A BARCODE")
    assert (first["outcome"], second["outcome"]) == ("refused", "refused")
    bench.ok("CMD:RECEIVE")  # an accepted scan does not clear them

    waiting = _waiting(client, tech)
    assert [r["id"] for r in waiting] == [second["id"], first["id"]]  # newest first
    assert waiting[1]["data"] == "S26-000001-X" and waiting[1]["message"] == first["message"]
    assert not any(r["stop"] for r in waiting)

    r = _ack(client, tech, scan_id=first["id"])
    assert r.status_code == 200 and r.json["acknowledged"] == 1
    assert [x["id"] for x in r.json["refusals"]] == [second["id"]]
    seen = events(app, action="station.refusal_acknowledged")
    assert len(seen) == 1 and seen[0].actor == "tech1" and "S26-000001-X" in seen[0].reason
    # A second click (another screen) changes nothing and records nothing.
    assert _ack(client, tech, scan_id=first["id"]).json["acknowledged"] == 0
    assert len(events(app, action="station.refusal_acknowledged")) == 1

    r = _ack(client, tech)
    assert r.json["acknowledged"] == 1 and r.json["refusals"] == []
    assert _waiting(client, tech) == []
    assert len(events(app, action="station.refusals_acknowledged")) == 1
    assert _ack(client, tech).json["acknowledged"] == 0  # nothing waits: no event
    assert len(events(app, action="station.refusals_acknowledged")) == 1


def test_cmd_ack_clears_them_on_the_server(app, client, auth):
    tech = auth("tech1")
    bench = Bench(client, auth("admin", STATION))
    bench.ok("BADGE-0002")
    bench.scan("NOT A BARCODE")
    bench.scan("ALSO NOT ONE")
    assert len(_waiting(client, tech)) == 2
    assert bench.ok("CMD:ACK")["action"] == "acknowledge"
    assert _waiting(client, tech) == []
    assert events(app, action="station.refusals_acknowledged")[-1].actor == "tech1"
    later = bench.scan("STILL NOT ONE")
    assert [r["id"] for r in _waiting(client, tech)] == [later["id"]]


def test_a_stops_refusals_stay_until_a_supervisor_releases_it(client, auth):
    tech = auth("tech1")
    bench = Bench(client, auth("admin", STATION))
    b, _ = _mismatch(client, auth, bench)
    bench.scan("CMD:DONE")  # refused: the station is stopped
    waiting = _waiting(client, tech)
    assert [r["stop"] for r in waiting] == [True, True] and waiting[1]["code"] == "coi_mismatch"

    r = _ack(client, tech, scan_id=waiting[1]["id"])
    assert r.status_code == 422 and r.json["error"] == "stop_needs_supervisor"
    assert _ack(client, tech).json["acknowledged"] == 0  # "all" leaves a stop's refusals
    assert len(_waiting(client, tech)) == 2

    bench.ok("CMD:ACK")
    assert len(_waiting(client, tech)) == 2  # acknowledged, not yet released
    assert bench.ok("BADGE-0004")["action"] == "release_stop"
    assert _waiting(client, tech) == []


def test_unknown_or_other_stations_scan_is_404(client, auth):
    tech = auth("tech1")
    bench = Bench(client, auth("admin", STATION))
    bench.ok("BADGE-0002")
    ok = bench.ok("CMD:RECEIVE")
    assert _ack(client, tech, scan_id=ok["id"]).status_code == 404  # accepted, not refused
    assert _ack(client, tech, scan_id=999_999).status_code == 404
    assert _ack(client, tech, scan_id="x").status_code == 400
    assert client.get("/api/stations/NO-SUCH/refusals", headers=tech).status_code == 404
