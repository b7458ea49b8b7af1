"""Room status as data: each move one audit event; illegal moves refused with the allowed ones."""

from __future__ import annotations

from rooms_util import approve, book, room_move

from tests.helpers import audit_count, verify


def test_a_room_goes_round_its_cycle_one_event_per_move(client, auth):
    helix, admin, tech = auth("helix_tech"), auth("admin"), auth("tech1")
    room = client.get("/api/rooms/RM-C1", headers=tech).json
    assert room["status"] == "available" and room["grade"] == "C" and not room["rented"]
    # A slot that began a minute ago (the client books the work under way).
    number = book(client, helix, start=-0.02, end=3).json["number"]
    r = room_move(client, tech, "RM-C1", "book", booking=number)
    assert r.status_code == 422 and r.json["error"] == "booking_not_approved"
    approve(client, admin, number)
    steps = [
        ("book", {"booking": number}, "booked"),
        ("start", {}, "in_use"),
    ]
    for action, fields, target in steps:
        before = audit_count(client.application)
        r = room_move(client, tech, "RM-C1", action, **fields)
        assert r.status_code == 200 and r.json["status"] == target, r.json
        assert audit_count(client.application) == before + 1
    for action, target in (("finish", "dirty"), ("clean", "cleaning")):
        r = room_move(client, helix if action == "finish" else tech, "RM-C1", action)
        assert r.status_code == 200 and r.json["status"] == target, r.json
    # Cleared only by a line clearance, never by asking.
    r = room_move(client, tech, "RM-C1", "clear")
    assert r.status_code == 422 and r.json["error"] == "illegal_transition"
    assert verify(client.application).ok


def test_illegal_moves_and_roles(client, auth):
    tech, helix, qa = auth("tech1"), auth("helix_tech"), auth("qa1")
    r = room_move(client, tech, "RM-B1", "finish")
    assert r.status_code == 422 and r.json["error"] == "illegal_transition"
    assert set(r.json["allowed"]) == {"book", "hold"}
    r = room_move(client, helix, "RM-B1", "hold", reason="x")
    assert r.status_code == 403
    r = room_move(client, tech, "RM-B1", "hold")
    assert r.status_code == 422 and r.json["missing"] == ["reason"]
    r = room_move(client, tech, "RM-B1", "hold", reason="pressure cascade alarm")
    assert r.status_code == 200 and r.json["status"] == "on_hold"
    assert r.json["hold_reason"] == "pressure cascade alarm"
    r = room_move(client, tech, "RM-B1", "lift_hold", reason="fixed")
    assert r.status_code == 403
    r = room_move(client, qa, "RM-B1", "lift_hold", reason="differential pressure restored")
    assert r.status_code == 200 and r.json["status"] == "dirty"
    r = room_move(client, tech, "BOX-0001", "hold", reason="x")
    assert r.status_code == 422 and r.json["error"] == "not_a_room"
    r = room_move(client, tech, "RM-B1", "teleport")
    assert r.status_code == 422 and r.json["error"] == "unknown_action"


def test_a_room_booked_for_a_cancelled_booking_is_unbooked(client, auth):
    helix, admin, tech = auth("helix_tech"), auth("admin"), auth("tech1")
    number = book(client, helix, start=20, end=24).json["number"]
    approve(client, admin, number)
    assert room_move(client, tech, "RM-C1", "book", booking=number).json["status"] == "booked"
    r = client.post(
        f"/api/bookings/{number}/transitions",
        json={"action": "cancel", "reason": "campaign postponed"},
        headers=helix,
    )
    assert r.status_code == 200 and r.json["state"] == "cancelled"
    r = room_move(client, tech, "RM-C1", "start")
    assert r.status_code == 422 and r.json["error"] == "no_booking"
    r = room_move(client, tech, "RM-C1", "unbook", reason="booking cancelled")
    assert r.status_code == 200 and r.json["status"] == "available" and r.json["booking"] is None
