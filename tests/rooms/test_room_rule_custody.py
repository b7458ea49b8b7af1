"""The rented-room rule on custody moves made through the API (transitions, bulk transitions,
aliquots): the same rule and the same answer as the bench, from the rooms the move names."""

from __future__ import annotations

from rooms_util import approve, book, room_move
from test_line_clearance import Bench, _station_in_c1, clear_room

from tests.helpers import audit_count, move, register, verify


def _cleared_and_started(client, auth, number: str) -> None:  # noqa: ANN001
    """Clear RM-C1 with two signatures, book it for helix-bio's approved booking, start it."""
    tech1, tech2 = auth("tech1"), auth("tech2")
    for action in ("hold", "lift_hold", "clean"):
        who = auth("qa1") if action == "lift_hold" else tech1
        assert room_move(client, who, "RM-C1", action, reason="changeover").status_code == 200
    clear_room(client, "RM-C1", tech1, tech2)
    assert room_move(client, tech1, "RM-C1", "book", booking=number).status_code == 200
    assert room_move(client, auth("helix_tech"), "RM-C1", "start").status_code == 200


def test_a_move_into_a_rented_room_waits_for_the_clients_cleared_started_booking(app, client, auth):
    helix, tech1 = auth("helix_tech"), auth("tech1")
    tube = register(client, helix, project="HX-AAV9", sample_type="PBMC")["barcode"]
    # A room never booked carries no rule (RM-C2 in the demo is; RM-C1 is not yet).
    number = book(client, helix, start=-0.02, end=4, changeover=60).json["number"]
    r = move(client, tech1, tube, "receive", condition="ok", location="RM-C1")
    assert r.status_code == 409 and r.json["error"] == "room_not_cleared"
    assert r.json["room"] == "RM-C1" and r.json["organisation"] == "helix-bio"
    assert "RM-C1 is not booked for helix-bio now" in r.json["message"]
    approve(client, auth("admin"), number)
    events = audit_count(app)
    r = move(client, tech1, tube, "receive", condition="ok", location="RM-C1")
    assert r.status_code == 409 and "not cleared and started" in r.json["message"]
    assert number in r.json["message"] and "helix-bio" in r.json["message"]
    # Nothing written: the tube is where it was, no event.
    assert audit_count(app) == events
    got = client.get(f"/api/samples/{tube}", headers=tech1).json
    assert got["state"] == "registered" and got["version"] == 1
    _cleared_and_started(client, auth, number)
    r = move(client, tech1, tube, "receive", condition="ok", location="RM-C1")
    assert r.status_code == 200 and r.json["location"] == "RM-C1", r.json
    # Another organisation's tube does not come into helix-bio's running booking.
    theirs = register(client, tech1)["barcode"]
    r = move(client, tech1, theirs, "receive", condition="ok", location="RM-C1")
    assert r.status_code == 409 and "not booked for centre now" in r.json["message"]
    # A move of a tube kept in the room is made at the room: on hold, nothing moves.
    room_move(client, tech1, "RM-C1", "hold", reason="particle count excursion")
    r = move(client, tech1, tube, "quarantine")
    assert r.status_code == 409 and r.json["room"] == "RM-C1"
    assert "RM-C1 is on hold (particle count excursion)" in r.json["message"]
    assert "helix-bio" in r.json["message"]
    assert verify(app).ok


def test_bench_and_api_give_the_same_answer(app, client, auth):
    station = _station_in_c1(app)
    helix, tech1 = auth("helix_tech"), auth("tech1")
    tube = register(client, helix, project="HX-AAV9", sample_type="PBMC")["barcode"]
    number = book(client, helix, start=-0.02, end=4, changeover=60).json["number"]
    bench = Bench(client, auth("admin", station), station)
    bench.scan("BADGE-0101")  # helix_tech at the bench in RM-C1
    bench.scan("CMD:RECEIVE")
    for step in ("requested", "approved"):
        if step == "approved":
            approve(client, auth("admin"), number)
        at_bench = bench.scan(tube)
        by_api = move(client, tech1, tube, "receive", condition="ok", location="RM-C1")
        assert at_bench["outcome"] == "refused" and by_api.status_code == 409
        assert at_bench["code"] == by_api.json["error"] == "room_not_cleared"
        assert at_bench["message"] == by_api.json["message"]
    room_move(client, tech1, "RM-C1", "hold", reason="leak under the cabinet")
    at_bench = bench.scan(tube)
    by_api = move(client, tech1, tube, "receive", condition="ok", location="RM-C1")
    assert at_bench["message"] == by_api.json["message"]
    assert "on hold (leak under the cabinet)" in at_bench["message"]


def test_bulk_moves_and_aliquots_keep_the_rule(app, client, auth):
    helix, tech1 = auth("helix_tech"), auth("tech1")
    tubes = [
        register(client, helix, project="HX-AAV9", sample_type="PBMC")["barcode"] for _ in range(2)
    ]
    number = book(client, helix, start=-0.02, end=4, changeover=60).json["number"]
    body = {
        "action": "receive",
        "condition": "ok",
        "location": "RM-C1",
        "samples": [{"barcode": b} for b in tubes],
    }
    events = audit_count(app)
    r = client.post("/api/transitions", json=body, headers=tech1)
    assert r.status_code == 409 and r.json["error"] == "room_not_cleared"
    assert audit_count(app) == events  # the whole rack or nothing
    approve(client, auth("admin"), number)
    _cleared_and_started(client, auth, number)
    r = client.post("/api/transitions", json=body, headers=tech1)
    assert r.status_code == 200, r.json
    assert move(client, tech1, tubes[0], "quarantine").status_code == 200
    # Aliquots of a quarantined tube kept in a room on hold are not made.
    room_move(client, tech1, "RM-C1", "hold", reason="open door alarm")
    split = {"count": 2, "volume": 1, "unit": "mL", "location": "BOX-0002"}
    events = audit_count(app)
    r = client.post(f"/api/samples/{tubes[0]}/aliquots", json=split, headers=tech1)
    assert r.status_code == 409 and r.json["room"] == "RM-C1"
    assert "on hold (open door alarm)" in r.json["message"]
    assert audit_count(app) == events
    # A room never rented out keeps no such rule: the same split works from RM-STORE's box.
    other = register(client, tech1)["barcode"]
    assert move(client, tech1, other, "receive", condition="ok").status_code == 200
    assert move(client, tech1, other, "quarantine", location="BOX-0001").status_code == 200
    r = client.post(f"/api/samples/{other}/aliquots", json=split, headers=tech1)
    assert r.status_code == 201, r.json
