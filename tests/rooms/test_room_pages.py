"""Room pages as a browser uses them: the rooms, a room's week, booking from the form, approval,
line clearance by two people, and a client's own calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rooms_util import book, room_move

from tests.helpers import post_form, sign_in


def _local(hours: float) -> str:
    t = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=hours)
    return t.strftime("%Y-%m-%dT%H:%M")


def test_client_books_from_the_room_page_and_sees_only_its_own(app, auth):
    helix = app.test_client()
    sign_in(helix, "helix_tech")
    page = helix.get("/rooms/RM-C1")
    assert page.status_code == 200 and "RM-C1" in page.text and "booking-form" in page.text
    r = post_form(
        helix,
        "/rooms/RM-C1/bookings",
        starts_at=_local(24),
        ends_at=_local(28),
        changeover_minutes="120",
        purpose="AAV9 fill",
    )
    assert r.status_code == 302, r.text
    mine = helix.get("/api/bookings?room=RM-C1").json["bookings"][0]["number"]
    # Someone else's booking in the same room shows as taken, without its number or client.
    theirs = book(app.test_client(), auth("admin"), start=30, end=32, organisation="novacell").json[
        "number"
    ]
    week = helix.get(f"/rooms/RM-C1?week={(datetime.now(UTC) + timedelta(hours=24)).date()}")
    assert mine in week.text and "requested" in week.text
    week2 = helix.get(f"/rooms/RM-C1?week={(datetime.now(UTC) + timedelta(hours=30)).date()}")
    assert theirs not in week2.text and "novacell" not in week2.text
    cal = helix.get(f"/bookings/calendar?week={(datetime.now(UTC) + timedelta(hours=24)).date()}")
    assert cal.status_code == 200 and mine in cal.text and "helix-bio" in cal.text
    assert helix.get("/bookings/calendar?org=novacell").status_code == 404
    # A clash is said on the page, not a 500.
    r = post_form(helix, "/rooms/RM-C1/bookings", starts_at=_local(25), ends_at=_local(26))
    assert r.status_code == 409 and "taken" in r.text


def test_centre_approves_and_clears_from_the_page(app, auth):
    admin, tech2 = app.test_client(), app.test_client()
    sign_in(admin, "admin")
    sign_in(tech2, "tech2")
    number = book(app.test_client(), auth("helix_tech"), start=48, end=50).json["number"]
    r = post_form(admin, f"/bookings/{number}/transition", action="approve")
    assert r.status_code == 302
    assert (
        app.test_client().get(f"/api/bookings/{number}", headers=auth("qa1")).json["state"]
        == "approved"
    )
    tech = auth("tech1")
    room_move(app.test_client(), tech, "RM-C1", "hold", reason="changeover")
    room_move(app.test_client(), auth("qa1"), "RM-C1", "lift_hold", reason="ok")
    r = post_form(admin, "/rooms/RM-C1/transition", action="clean")
    assert r.status_code == 302
    page = admin.get("/rooms/RM-C1")
    assert "clearance-form" in page.text
    lines = app.test_client().get("/api/rooms/RM-C1/clearance", headers=tech).json["checklist"]
    r = admin.post(
        "/rooms/RM-C1/clearance",
        data={
            "csrf_token": page.text.split('name="csrf_token" value="')[1].split('"')[0],
            "confirmed": lines,
            "password": "demo-only-lims",
        },
    )
    assert r.status_code == 302, r.text
    page = tech2.get("/rooms/RM-C1")
    assert "countersign-form" in page.text and "waiting for a second person" in page.text
    cid = app.test_client().get("/api/rooms/RM-C1/clearance", headers=tech).json["open"]["id"]
    r = post_form(tech2, f"/rooms/RM-C1/clearance/{cid}/countersign", password="nope")
    assert r.status_code == 422 and "password" in r.text
    r = post_form(tech2, f"/rooms/RM-C1/clearance/{cid}/countersign", password="demo-only-lims")
    assert r.status_code == 302
    page = admin.get("/rooms/RM-C1")
    assert "cleared" in page.text and "clearance-last" in page.text
    listing = admin.get("/rooms")
    assert listing.status_code == 200 and "RM-C1" in listing.text


def test_usage_page_shows_a_clients_own_month_only(app):
    month = datetime.now(UTC).strftime("%Y-%m")
    qa = app.test_client()
    sign_in(qa, "qa1")
    page = qa.get(f"/bookings/usage?month={month}")
    assert page.status_code == 200 and "helix-bio" in page.text and "RM-C2" in page.text
    assert f"/api/bookings/usage.csv?month={month}" in page.text
    assert qa.get("/bookings/usage?month=December").status_code == 400
    novacell = app.test_client()
    sign_in(novacell, "nova_viewer")
    page = novacell.get(f"/bookings/usage?month={month}")
    # novacell's next-slot request is not approved: none of its own, and none of helix-bio's.
    assert page.status_code == 200 and "helix-bio" not in page.text
    assert "organisation=novacell" in page.text
    assert novacell.get(f"/bookings/usage?month={month}&org=helix-bio").status_code == 404


def test_em_entry_page_judges_and_refuses_what_it_cannot_read(app):
    taken = _local(-1)
    tech = app.test_client()
    sign_in(tech, "tech1")
    page = tech.get("/rooms/RM-C2/em")
    assert page.status_code == 200 and "EM-C2-C1/cfu" in page.text and "EM-B1-A1" not in page.text
    form = {"occupancy": "at_rest", "taken_at": taken}
    r = post_form(tech, "/rooms/RM-C2/em", point="EM-C2-C1/cfu", value="13", **form)
    assert r.status_code == 302
    page = tech.get(r.location)
    assert "alert level" in page.text and 'id="em-action">25<' in page.text
    # A point of another room, a value that is no number, a client: refused, nothing saved.
    r = post_form(tech, "/rooms/RM-C2/em", point="EM-B1-A1/cfu", value="1", **form)
    assert r.status_code == 422 and "EM-B1-A1 is in RM-B1, not RM-C2" in r.text
    r = post_form(tech, "/rooms/RM-C2/em", point="EM-C2-C1/cfu", value="twelve", **form)
    assert r.status_code == 400 and "is a number" in r.text
    r = post_form(tech, "/rooms/RM-C2/em", point="EM-C2-C1/cfu", value="nan", **form)
    assert r.status_code == 400
    helix = app.test_client()
    sign_in(helix, "helix_tech")
    assert "em-form" not in helix.get("/rooms/RM-C2/em").text
    r = post_form(helix, "/rooms/RM-C2/em", point="EM-C2-C1/cfu", value="1", **form)
    assert r.status_code == 403
    assert tech.get("/rooms/RM-C2/em?result=999999").status_code == 404
