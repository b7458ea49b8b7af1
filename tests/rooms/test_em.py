"""Environmental monitoring: results judged against Annex 1 limits by grade and state; an
action-level result holds the room and opens a deviation linked to it."""

from __future__ import annotations

import pytest
from rooms_util import at, room_move

from lims.rooms import em
from tests.helpers import audit_count, verify


def _point(client, headers, room: str, code: str, kind: str):  # noqa: ANN001, ANN202
    return client.post(
        "/api/em-points",
        json={"room": room, "code": code, "name": f"{kind} by the door", "kind": kind},
        headers=headers,
    )


def _result(client, headers, point: str, value, **extra):  # noqa: ANN001, ANN003, ANN202
    body = {"point": point, "taken_at": at(-1), "occupancy": "in_operation", "value": value}
    return client.post("/api/em-results", json={**body, **extra}, headers=headers)


@pytest.mark.parametrize(
    ("grade", "kind", "occupancy", "measure", "action"),
    [
        ("A", "settle", "in_operation", "cfu", 0),
        ("B", "air", "in_operation", "cfu", 10),
        ("B", "particles", "in_operation", "particles_0_5", 352_000),
        ("B", "particles", "at_rest", "particles_0_5", 3_520),
        ("C", "particles", "in_operation", "particles_5_0", 29_300),
        ("C", "contact", "at_rest", "cfu", 25),
        ("D", "settle", "in_operation", "cfu", 100),
    ],
)
def test_annex_1_limits(grade, kind, occupancy, measure, action):
    assert em.limits(grade, kind, occupancy, measure)[1] == action


def test_no_limit_where_annex_1_sets_none():
    assert em.limits("B", "particles", "at_rest", "particles_5_0") == (None, None)
    assert em.limits("C", "glove", "in_operation", "cfu") == (None, None)
    assert em.limits("CNC", "air", "at_rest", "cfu") == (None, None)


def test_alert_then_action_holds_the_room_and_opens_a_deviation(client, auth):
    qa, tech = auth("qa1"), auth("tech1")
    assert _point(client, tech, "RM-B1", "EM-B1-01", "air").status_code == 403
    r = _point(client, qa, "RM-B1", "EM-B1-01", "air")
    assert r.status_code == 201, r.json
    assert r.json["limits"]["cfu/in_operation"] == {"alert": 5, "action": 10}
    assert _point(client, qa, "RM-B1", "EM-B1-01", "air").status_code == 409
    ok = _result(client, tech, "EM-B1-01", 3)
    assert ok.status_code == 201 and ok.json["level"] == "ok"
    alert = _result(client, tech, "EM-B1-01", 7)
    assert alert.json["level"] == "alert" and alert.json["deviation"] is None
    assert client.get("/api/rooms/RM-B1", headers=tech).json["status"] == "available"
    before = audit_count(client.application)
    action = _result(client, tech, "EM-B1-01", 12)
    assert action.status_code == 201
    assert action.json["level"] == "action" and action.json["deviation"].startswith("DEV-")
    # The result, the deviation and the hold: one event each, in one transaction.
    assert audit_count(client.application) == before + 3
    room = client.get("/api/rooms/RM-B1", headers=tech).json
    assert room["status"] == "on_hold" and action.json["deviation"] in room["open_deviations"]
    assert "EM action level" in room["hold_reason"]
    dev = client.get(f"/api/deviations/{action.json['deviation']}", headers=qa).json
    assert dev["links"][0]["kind"] == "room" and dev["links"][0]["ref"] == "RM-B1"
    # QA cannot lift the hold while the deviation is open.
    r = room_move(client, qa, "RM-B1", "lift_hold", reason="recount fine")
    assert r.status_code == 422 and r.json["error"] == "deviation_open"
    trend = client.get("/api/em-points/EM-B1-01/results", headers=auth("helix_viewer")).json
    assert [x["level"] for x in trend["results"]] == ["ok", "alert", "action"]
    assert verify(client.application).ok


def test_bad_results_are_clear_errors(client, auth):
    qa, tech = auth("qa1"), auth("tech1")
    _point(client, qa, "RM-C1", "EM-C1-P1", "particles")
    r = _result(client, tech, "EM-C1-P1", 100)
    assert r.status_code == 400 and r.json["error"] == "bad_measure"
    r = _result(client, tech, "EM-C1-P1", 100, measure="particles_0_5", occupancy="busy")
    assert r.status_code == 400 and r.json["error"] == "bad_occupancy"
    r = _result(client, tech, "EM-C1-P1", -1, measure="particles_0_5")
    assert r.status_code == 400
    r = _result(client, tech, "EM-NONE", 1)
    assert r.status_code == 404
    r = _result(client, auth("helix_tech"), "EM-C1-P1", 1, measure="particles_0_5")
    assert r.status_code == 403
    r = _result(client, tech, "EM-C1-P1", 1, measure="particles_0_5", taken_at=at(5))
    assert r.status_code == 422 and r.json["error"] == "taken_in_future"
    r = _result(client, tech, "EM-C1-P1", 300_000, measure="particles_0_5")
    assert r.json["level"] == "ok"  # grade C in operation: 3 520 000


def test_a_room_held_by_an_excursion_takes_no_work_at_its_bench(client, auth):
    from tests.helpers import register

    qa, tech = auth("qa1"), auth("tech1")
    _point(client, qa, "RM-B1", "EM-B1-09", "glove")
    tube = register(client, tech)["barcode"]
    r = _result(client, tech, "EM-B1-09", 6)  # grade B gloves: 5 cfu
    assert r.json["level"] == "action"
    headers = auth("admin", "BENCH-B1")
    for i, data in enumerate(("BADGE-0002", "CMD:RECEIVE", tube)):
        body = {"station": "BENCH-B1", "data": data, "scan_id": f"em-{i}"}
        out = client.post("/api/scans", json=body, headers=headers).json
    assert out["outcome"] == "refused" and out["code"] == "room_not_cleared"
    assert "RM-B1 is on hold (EM action level" in out["message"]
    # RM-B1 is not rented out: no booking rule once the hold is over (here: still held).
    assert client.get("/api/rooms/RM-B1", headers=tech).json["rented"] is False


def test_sampling_plan_says_when_a_point_is_due(client, auth):
    qa, tech = auth("qa1"), auth("tech1")
    _point(client, qa, "RM-C1", "EM-C1-S9", "settle")
    [p] = client.get("/api/rooms/RM-C1/em-points", headers=tech).json["points"]
    assert p["interval_days"] == 7 and p["overdue"] and p["last_taken_at"] is None
    _result(client, tech, "EM-C1-S9", 2)
    [p] = client.get("/api/rooms/RM-C1/em-points", headers=tech).json["points"]
    assert not p["overdue"] and p["next_due"] > p["last_taken_at"]
    _point(client, qa, "RM-C1", "EM-C1-G9", "glove")
    glove = [
        x
        for x in client.get("/api/rooms/RM-C1/em-points", headers=tech).json["points"]
        if x["code"] == "EM-C1-G9"
    ][0]
    assert glove["interval_days"] is None and not glove["overdue"]
