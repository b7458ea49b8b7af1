"""Room bookings: requests, approval by the centre, overlaps (changeover included) refused,
clients see only their own organisation's bookings, and racing requests for one slot."""

from __future__ import annotations

from rooms_util import approve, at, book

from tests.helpers import audit_count, bearer, race, verify


def test_client_requests_a_slot_and_the_centre_approves_it(client, auth):
    helix, qa = auth("helix_tech"), auth("qa1")
    before = 0
    r = book(client, helix, purpose="AAV9 fill")
    assert r.status_code == 201, r.json
    b = r.json
    assert b["organisation"] == "helix-bio" and b["state"] == "requested"
    assert b["number"].startswith("BK-")
    assert b["room"] == "RM-C1" and b["changeover_minutes"] == 60
    # A client cannot approve its own request.
    r = client.post(
        f"/api/bookings/{b['number']}/transitions", json={"action": "approve"}, headers=helix
    )
    assert r.status_code == 403 and r.json["error"] == "role_required"
    before = audit_count(client.application)
    done = approve(client, qa, b["number"])
    assert done["state"] == "approved" and done["decided_by"] == "qa1"
    assert audit_count(client.application) == before + 1
    assert verify(client.application).ok


def test_overlap_with_changeover_is_refused(client, auth):
    helix, admin = auth("helix_tech"), auth("admin")
    assert book(client, helix, start=10, end=14, changeover=120).status_code == 201
    # Starts inside the first one's changeover (14:00 + 2 h): taken.
    r = book(client, admin, start=15, end=18, organisation="novacell")
    assert r.status_code == 409 and r.json["error"] == "slot_taken"
    # Its own changeover would run into the first booking: taken too.
    r = book(client, admin, start=6, end=9.5, changeover=60, organisation="novacell")
    assert r.status_code == 409
    # After the changeover, and before with room for its own: free.
    assert book(client, admin, start=16, end=18, organisation="novacell").status_code == 201
    assert (
        book(client, admin, start=6, end=9, changeover=60, organisation="novacell").status_code
        == 201
    )
    # Another room is another calendar.
    assert book(client, helix, room="RM-B1", start=10, end=14).status_code == 201


def test_cancelled_or_rejected_booking_frees_the_slot(client, auth):
    helix, qa = auth("helix_tech"), auth("qa1")
    n = book(client, helix, start=30, end=33).json["number"]
    r = client.post(f"/api/bookings/{n}/transitions", json={"action": "reject"}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "missing_fields"
    r = client.post(
        f"/api/bookings/{n}/transitions",
        json={"action": "reject", "reason": "the suite is shut for maintenance"},
        headers=qa,
    )
    assert r.status_code == 200 and r.json["state"] == "rejected"
    assert book(client, helix, start=30, end=33).status_code == 201
    r = client.post(f"/api/bookings/{n}/transitions", json={"action": "approve"}, headers=qa)
    assert r.status_code == 422 and r.json["error"] == "illegal_transition"


def test_clients_see_only_their_own_bookings(client, auth):
    helix, nova, admin = auth("helix_tech"), auth("nova_viewer"), auth("admin")
    mine = book(client, helix, start=40, end=42).json["number"]
    theirs = book(client, admin, start=50, end=52, organisation="novacell").json["number"]
    assert client.get(f"/api/bookings/{mine}", headers=nova).status_code == 404
    assert client.get(f"/api/bookings/{theirs}", headers=nova).status_code == 200
    listed = client.get("/api/bookings", headers=nova).json["bookings"]
    assert theirs in [b["number"] for b in listed]
    assert {b["organisation"] for b in listed} == {"novacell"}
    listed = client.get("/api/bookings?room=RM-C1", headers=admin).json["bookings"]
    assert {b["number"] for b in listed} == {mine, theirs}
    # A client cannot book in another organisation's name.
    r = book(client, helix, start=60, end=62, organisation="novacell")
    assert r.status_code == 404 and r.json["error"] == "unknown_organisation"
    # A clash with someone else's booking does not name it.
    r = book(client, helix, start=50, end=51)
    assert r.status_code == 409 and theirs not in r.json["message"]
    # A viewer reads but does not book.
    assert book(client, nova, start=70, end=72).status_code == 403


def test_bad_slots_are_clear_errors(client, auth):
    helix = auth("helix_tech")
    r = client.post(
        "/api/bookings",
        json={"room": "RM-C1", "starts_at": at(5), "ends_at": at(4)},
        headers=helix,
    )
    assert r.status_code == 400 and r.json["error"] == "bad_slot"
    r = client.post(
        "/api/bookings",
        json={"room": "RM-C1", "starts_at": "2027-01-01T08:00:00", "ends_at": at(4)},
        headers=helix,
    )
    assert r.status_code == 400
    r = client.post(
        "/api/bookings",
        json={"room": "BOX-0001", "starts_at": at(1), "ends_at": at(2)},
        headers=helix,
    )
    assert r.status_code == 422 and r.json["error"] == "not_a_room"
    r = client.post(
        "/api/bookings",
        json={"room": "RM-NONE", "starts_at": at(1), "ends_at": at(2)},
        headers=helix,
    )
    assert r.status_code == 404
    r = book(client, helix, start=-5, end=-1)
    assert r.status_code == 422 and r.json["error"] == "slot_in_past"


def test_racing_requests_for_one_slot_exactly_one_wins(race_app):
    headers = [bearer(race_app, u) for u in ("helix_tech", "admin", "tech1", "tech2")] * 2

    def fire(client, i):  # noqa: ANN001, ANN202
        # Overlapping slots, each a little shifted: only one can hold the room.
        return book(
            client,
            headers[i],
            room="RM-B1",
            start=100 + i * 0.25,
            end=104 + i * 0.25,
            **({} if i % 4 == 0 else {"organisation": "novacell"}),
        )

    results = race(race_app, fire, len(headers))
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1, [(r.status_code, r.json) for r in results]
    assert codes.count(409) == len(headers) - 1
    listed = race_app.test_client().get("/api/bookings?room=RM-B1", headers=headers[1])
    assert len(listed.json["bookings"]) == 1
    assert verify(race_app).ok
