"""Line clearance signed by two different people, and the bench refusing work in a rented room
that is not cleared and started for the tube's organisation inside its booking."""

from __future__ import annotations

import itertools

from rooms_util import approve, book, room_move

from tests.helpers import PASSWORD, audit_count, register, verify

_ids = itertools.count(1)


def _sig(meaning: str) -> dict:
    return {"password": PASSWORD, "meaning": meaning}


def clear_room(client, room: str, first, second) -> dict:  # noqa: ANN001
    """Sign the room's checklist by two people; return the countersigned clearance."""
    state = client.get(f"/api/rooms/{room}/clearance", headers=first).json
    r = client.post(
        f"/api/rooms/{room}/clearances",
        json={"confirmed": state["checklist"], "signature": _sig("responsibility")},
        headers=first,
    )
    assert r.status_code == 201, r.json
    r = client.post(
        f"/api/rooms/{room}/clearances/{r.json['id']}/countersign",
        json={"signature": _sig("review")},
        headers=second,
    )
    assert r.status_code == 200, r.json
    return r.json


def test_two_different_people_sign_before_the_room_is_cleared(client, auth):
    tech1, tech2, admin = auth("tech1"), auth("tech2"), auth("admin")
    assert room_move(client, admin, "RM-C1", "hold", reason="end of campaign").status_code == 200
    assert room_move(client, auth("qa1"), "RM-C1", "lift_hold", reason="done").status_code == 200
    # Not yet cleaning: no clearance.
    state = client.get("/api/rooms/RM-C1/clearance", headers=tech1).json
    assert len(state["checklist"]) >= 3 and state["open"] is None
    r = client.post(
        "/api/rooms/RM-C1/clearances",
        json={"confirmed": state["checklist"], "signature": _sig("responsibility")},
        headers=tech1,
    )
    assert r.status_code == 422 and r.json["error"] == "not_cleaning"
    assert room_move(client, tech1, "RM-C1", "clean").status_code == 200
    # Every line confirmed, and signed.
    r = client.post(
        "/api/rooms/RM-C1/clearances",
        json={"confirmed": state["checklist"][1:], "signature": _sig("responsibility")},
        headers=tech1,
    )
    assert r.status_code == 422 and r.json["missing"] == state["checklist"][:1]
    r = client.post(
        "/api/rooms/RM-C1/clearances", json={"confirmed": state["checklist"]}, headers=tech1
    )
    assert r.status_code == 422 and r.json["error"] == "signature_required"
    before = audit_count(client.application)
    r = client.post(
        "/api/rooms/RM-C1/clearances",
        json={"confirmed": state["checklist"], "signature": _sig("responsibility")},
        headers=tech1,
    )
    assert r.status_code == 201 and r.json["state"] == "signed_once"
    assert audit_count(client.application) == before + 1
    cid = r.json["id"]
    # The same person cannot give the second signature.
    r = client.post(
        f"/api/rooms/RM-C1/clearances/{cid}/countersign",
        json={"signature": _sig("review")},
        headers=tech1,
    )
    assert r.status_code == 422 and r.json["error"] == "same_person"
    r = client.post(
        f"/api/rooms/RM-C1/clearances/{cid}/countersign",
        json={"signature": {"password": "wrong", "meaning": "review"}},
        headers=tech2,
    )
    assert r.status_code == 422 and r.json["error"] == "signature_refused"
    assert client.get("/api/rooms/RM-C1", headers=tech1).json["status"] == "cleaning"
    before = audit_count(client.application)
    r = client.post(
        f"/api/rooms/RM-C1/clearances/{cid}/countersign",
        json={"signature": _sig("review")},
        headers=tech2,
    )
    assert r.status_code == 200, r.json
    c = r.json
    assert c["state"] == "complete" and (c["first_by"], c["second_by"]) == ("tech1", "tech2")
    assert c["first_signature"]["meaning"] == "responsibility"
    assert c["second_signature"]["meaning"] == "review"
    assert audit_count(client.application) == before + 1
    assert client.get("/api/rooms/RM-C1", headers=tech1).json["status"] == "cleared"
    assert verify(client.application).ok


def test_a_client_does_not_sign_line_clearance(client, auth):
    r = client.post(
        "/api/rooms/RM-C1/clearances",
        json={"confirmed": ["x"], "signature": _sig("responsibility")},
        headers=auth("helix_tech"),
    )
    assert r.status_code == 403


def test_checklist_is_the_centres_to_write(client, auth):
    items = ["Previous client's material out", "Room cleaned", "Status board updated"]
    r = client.put("/api/rooms/RM-C2/checklist", json={"items": items}, headers=auth("tech1"))
    assert r.status_code == 403
    r = client.put("/api/rooms/RM-C2/checklist", json={"items": items}, headers=auth("qa1"))
    assert r.status_code == 200 and r.json["checklist"] == items


class Bench:
    def __init__(self, client, headers, station: str) -> None:  # noqa: ANN001
        self.client, self.headers, self.station = client, headers, station

    def scan(self, data: str) -> dict:
        body = {"station": self.station, "data": data, "scan_id": f"r-{next(_ids)}"}
        r = self.client.post("/api/scans", json=body, headers=self.headers)
        assert r.status_code == 200, r.json
        return r.json


def _station_in_c1(app) -> str:  # noqa: ANN001
    runner = app.test_cli_runner()
    out = runner.invoke(args=["setup", "station", "BENCH-C1T", "--room", "RM-C1"])
    assert out.exit_code == 0, out.output
    return "BENCH-C1T"


def test_bench_refuses_work_until_the_room_is_cleared_and_started_for_that_client(
    app, client, auth
):
    station = _station_in_c1(app)
    helix, admin, tech1, tech2 = (
        auth("helix_tech"),
        auth("admin"),
        auth("tech1"),
        auth("tech2"),
    )
    tube = register(client, helix, project="HX-AAV9", sample_type="PBMC")["barcode"]
    bench = Bench(client, auth("admin", station), station)
    bench.scan("BADGE-0101")  # helix_tech at the bench
    assert bench.scan("CMD:RECEIVE")["outcome"] == "accepted"
    # The room has no bookings yet: not rented out, no rule.
    # Once it has one, work needs the running, cleared, started booking.
    number = book(client, helix, start=-0.02, end=4, changeover=60).json["number"]
    out = bench.scan(tube)
    assert out["outcome"] == "refused" and out["code"] == "room_not_cleared"
    assert "not booked for helix-bio now" in out["message"]
    approve(client, admin, number)
    out = bench.scan(tube)
    assert out["outcome"] == "refused" and "not cleared and started" in out["message"]
    assert number in out["message"]
    # Clean, clear (two signatures), book and start: now the tube is received.
    for action in ("hold", "lift_hold", "clean"):
        who = auth("qa1") if action == "lift_hold" else tech1
        assert room_move(client, who, "RM-C1", action, reason="changeover").status_code == 200
    clear_room(client, "RM-C1", tech1, tech2)
    assert room_move(client, tech1, "RM-C1", "book", booking=number).status_code == 200
    assert room_move(client, helix, "RM-C1", "start").status_code == 200
    out = bench.scan(tube)
    assert out["outcome"] == "accepted" and out["sample"]["state"] == "received", out
    # Another organisation's tube is refused in the room while helix-bio's booking runs.
    theirs = register(client, tech1, project="CART-001")["barcode"]
    bench.scan("BADGE-0002")
    bench.scan("CMD:RECEIVE")
    out = bench.scan(theirs)
    assert out["outcome"] == "refused" and "not booked for centre now" in out["message"]
    # On hold: refused whoever's it is, with the reason.
    room_move(client, tech1, "RM-C1", "hold", reason="particle count excursion")
    out = bench.scan(theirs)
    assert out["outcome"] == "refused" and "on hold (particle count excursion)" in out["message"]
    assert verify(app).ok


def test_benches_in_rooms_without_bookings_work_as_before(client, auth):
    tech = auth("tech1")
    tube = register(client, tech)["barcode"]
    bench = Bench(client, auth("admin", "BENCH-B1"), "BENCH-B1")
    bench.scan("BADGE-0002")
    bench.scan("CMD:RECEIVE")
    assert bench.scan(tube)["outcome"] == "accepted"
