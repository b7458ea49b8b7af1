"""A batch step in a rented room: only for the lot's client, inside its booking, after clearance."""

from __future__ import annotations

from batch_util import approved_template, lot_with_record
from helpers import PASSWORD, audit_count, post_form, sign_in, verify

from tests.rooms.rooms_util import approve, book, room_move


def _sig(meaning: str) -> dict:
    return {"password": PASSWORD, "meaning": meaning}


def _clear(client, room: str, first, second) -> None:  # noqa: ANN001
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


def _step(client, headers, lot: str, n: int = 1, **body):  # noqa: ANN001, ANN003, ANN201
    body.setdefault("values", {"cell density": 1.0})
    return client.post(f"/api/lots/{lot}/batch-record/steps/{n}", json=body, headers=headers)


def test_a_step_in_a_rented_room_needs_the_clients_cleared_running_booking(app, client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "HX-B1", project="HX-AAV9", who="helix_tech")
    lot_with_record(client, auth, "CT-B1")  # the centre's own lot
    helix, admin, tech1, tech2 = auth("helix_tech"), auth("admin"), auth("tech1"), auth("tech2")
    number = book(client, helix, start=-0.02, end=4, changeover=60).json["number"]
    before = audit_count(app)
    r = _step(client, helix, "HX-B1", room="RM-C1")
    assert (r.status_code, r.json["error"]) == (422, "room_not_cleared")
    assert "not booked for helix-bio now" in r.json["message"] and "step 1" in r.json["message"]
    approve(client, admin, number)
    r = _step(client, helix, "HX-B1", room="rm-c1")
    assert (r.status_code, r.json["error"]) == (422, "room_not_cleared")
    assert "not cleared and started" in r.json["message"] and number in r.json["message"]
    assert audit_count(app) == before + 1  # only the booking's approval
    for action in ("hold", "lift_hold", "clean"):
        who = auth("qa1") if action == "lift_hold" else tech1
        assert room_move(client, who, "RM-C1", action, reason="changeover").status_code == 200
    _clear(client, "RM-C1", tech1, tech2)
    assert room_move(client, tech1, "RM-C1", "book", booking=number).status_code == 200
    assert room_move(client, helix, "RM-C1", "start").status_code == 200
    r = _step(client, helix, "HX-B1", room="RM-C1")
    assert r.status_code == 201, r.json
    assert r.json["steps"][0]["room"] == "RM-C1"
    # While helix-bio's booking runs, the centre's lot is not made in their room.
    r = _step(client, tech1, "CT-B1", room="RM-C1")
    assert (r.status_code, r.json["error"]) == (422, "room_not_cleared")
    assert "not booked for centre now" in r.json["message"]
    # A room that is not rented out carries no such rule.
    assert _step(client, tech1, "CT-B1", room="RM-B1").status_code == 201
    assert verify(app).ok


def test_a_room_on_hold_or_unknown_refuses_the_step(client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "CT-B2")
    tech1 = auth("tech1")
    r = _step(client, tech1, "CT-B2", room="C-102")
    assert (r.status_code, r.json["error"]) == (422, "unknown_room")
    r = _step(client, tech1, "CT-B2", room="FRZ-80-1")
    assert r.status_code == 422 and r.json["error"] in ("unknown_room",)
    room_move(client, tech1, "RM-B1", "hold", reason="particle count excursion")
    r = _step(client, tech1, "CT-B2", room="RM-B1")
    assert (r.status_code, r.json["error"]) == (422, "room_not_cleared")
    assert "on hold (particle count excursion)" in r.json["message"]
    r = client.get("/api/lots/CT-B2/batch-record", headers=tech1)
    assert r.json["steps"][0]["state"] == "to do"


def test_the_page_shows_why_the_room_refuses_the_step(app, client, auth, qa2):  # noqa: ANN001
    approved_template(client, auth, qa2)
    lot_with_record(client, auth, "CT-B3")
    room_move(client, auth("tech1"), "RM-B1", "hold", reason="particle count excursion")
    sign_in(client, "tech1")
    r = post_form(
        client, "/lots/CT-B3/batch/steps/1", **{"value:cell density": "1", "room": "RM-B1"}
    )
    assert r.status_code == 422
    assert "cannot be done in RM-B1: room RM-B1 is on hold (particle count excursion)" in r.text
