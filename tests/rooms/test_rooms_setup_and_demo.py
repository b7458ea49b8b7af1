"""Setting rooms up from the command line, and the demo centre's rented suite at its bench."""

from __future__ import annotations

import itertools

from tests.helpers import register, sign_in

_ids = itertools.count(1)


def test_cli_writes_a_checklist_and_adds_sampling_points(app, client, runner, auth):
    out = runner.invoke(
        args=["setup", "room-checklist", "RM-C1", "Material out", "Room cleaned", "Labels out"]
    )
    assert out.exit_code == 0, out.output
    assert "3 lines" in out.output
    state = client.get("/api/rooms/RM-C1/clearance", headers=auth("tech1")).json
    assert state["checklist"] == ["Material out", "Room cleaned", "Labels out"]
    out = runner.invoke(
        args=["setup", "em-point", "RM-C1", "EM-C1-09", "Settle plate at door", "--kind", "settle"]
    )
    assert out.exit_code == 0, out.output
    points = client.get("/api/rooms/RM-C1/em-points", headers=auth("tech1")).json["points"]
    assert [p["code"] for p in points] == ["EM-C1-09"]
    assert points[0]["limits"]["cfu/in_operation"]["action"] == 50
    out = runner.invoke(args=["setup", "em-point", "RM-NONE", "EM-X-1", "x", "--kind", "air"])
    assert out.exit_code != 0 and "no room" in out.output
    out = runner.invoke(args=["setup", "em-point", "RM-C1", "EM-C1-09", "again", "--kind", "air"])
    assert out.exit_code != 0 and "exists already" in out.output


def test_demo_suite_is_in_use_by_helix_and_its_bench_says_so(client, auth):
    room = client.get("/api/rooms/RM-C2", headers=auth("tech1")).json
    assert room["status"] == "in_use" and room["rented"]
    helix_tube = register(client, auth("helix_tech"), project="HX-AAV9")["barcode"]
    centre_tube = register(client, auth("tech1"))["barcode"]
    headers = auth("admin", "BENCH-C2")

    def scan(data: str) -> dict:
        body = {"station": "BENCH-C2", "data": data, "scan_id": f"d-{next(_ids)}"}
        r = client.post("/api/scans", json=body, headers=headers)
        assert r.status_code == 200, r.json
        return r.json

    scan("BADGE-0101")
    scan("CMD:RECEIVE")
    assert scan(helix_tube)["outcome"] == "accepted"
    scan("BADGE-0002")
    scan("CMD:RECEIVE")
    out = scan(centre_tube)
    assert out["outcome"] == "refused" and out["code"] == "room_not_cleared"
    assert "RM-C2 is not booked for centre now" in out["message"]
    # The trend page of a demo point draws its results.
    assert client.get("/api/em-points/EM-B1-A1/results", headers=auth("qa1")).json["results"]


def test_bench_page_and_trend_page_show_the_rooms_rule(app):
    helix, tech = app.test_client(), app.test_client()
    sign_in(helix, "helix_tech")
    sign_in(tech, "tech1")
    page = helix.get("/bench/BENCH-C2")
    assert page.status_code == 200 and "cleared and in use under booking" in page.text
    page = tech.get("/bench/BENCH-C2")
    assert "refused here: room RM-C2 is not booked for centre now" in page.text
    assert "room-note" not in tech.get("/bench/BENCH-B1").text
    trend = tech.get("/em/EM-B1-A1?days=30")
    assert trend.status_code == 200 and "trend-chart" in trend.text and "alert" in trend.text
    assert tech.get("/em/EM-NONE").status_code == 404
    room = tech.get("/rooms/RM-C2")
    assert "EM-C2-P1" in room.text and "in use" in room.text
