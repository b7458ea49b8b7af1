"""The scan-first bench through POST /api/scans: badge, mode, target, tubes; and the refusals."""

from __future__ import annotations

import itertools
import json

import pytest
from helpers import audit_count, move, register, verify
from sqlmodel import select

from lims import audit
from lims.db import new_session
from lims.identifiers import sample_barcode
from lims.models import User

STATION = "BENCH-B1"


class Bench:
    """Scan at a station through the API, the way the station agent does."""

    def __init__(self, client, headers, station: str = STATION) -> None:  # noqa: ANN001
        self.client = client
        self.headers = headers
        self.station = station
        self._ids = itertools.count(1)

    def post(self, data: str, scan_id: str | None = None, **extra):  # noqa: ANN003, ANN201
        body = {"station": self.station, "data": data, **extra}
        body["scan_id"] = scan_id or f"t-{next(self._ids)}"
        return self.client.post("/api/scans", json=body, headers=self.headers)

    def scan(self, data: str, scan_id: str | None = None, **extra) -> dict:  # noqa: ANN003
        r = self.post(data, scan_id, **extra)
        assert r.status_code == 200, r.json
        return r.json

    def ok(self, data: str) -> dict:
        out = self.scan(data)
        assert out["outcome"] == "accepted", out
        return out


@pytest.fixture
def bench(client, auth) -> Bench:
    # The agent's token is bound to the station; the operator is whoever badges in.
    return Bench(client, auth("admin", STATION))


def events(app, **filters) -> list:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        return audit.query(db, limit=10_000, **filters)


def sample(client, headers, barcode: str) -> dict:  # noqa: ANN001
    r = client.get(f"/api/samples/{barcode}", headers=headers)
    assert r.status_code == 200
    return r.json


def test_receive_then_store_a_rack_by_scanning_alone(app, client, bench, tech):
    tubes = [register(client, tech)["barcode"] for _ in range(3)]
    bench.ok("BADGE-0003")  # tech2 signs in
    bench.ok("CMD:RECEIVE")
    for b in tubes:
        out = bench.ok(b)
        assert out["action"] == "receive" and out["sample"]["state"] == "received"
    bench.ok("CMD:STORE")
    out = bench.ok("BOX-0002")
    assert out["station_state"]["target"] == "BOX-0002"
    placed = [bench.ok(b)["sample"] for b in tubes]
    assert [(s["location"], s["position"]) for s in placed] == [
        ("BOX-0002", "A1"),
        ("BOX-0002", "A2"),
        ("BOX-0002", "A3"),
    ]
    receipt = events(app, entity_ids=[tubes[0]], action="sample.receive")[0]
    # The person is the badge holder; the token (admin's agent) and scanner are the device.
    assert receipt.actor == "tech2" and receipt.station == STATION
    assert "via admin" in receipt.device
    assert json.loads(receipt.after)["condition"].startswith("intact")
    assert [e.actor for e in events(app, entity_ids=tubes, action="sample.store")] == ["tech2"] * 3
    assert verify(app).ok


def test_a_scanned_condition_is_recorded_at_receipt(client, bench, tech):
    b = register(client, tech)["barcode"]
    bench.ok("BADGE-0002")
    bench.ok("CMD:RECEIVE")
    bench.ok("CMD:CONDITION:DAMAGED")
    assert bench.ok(b)["sample"]["condition"] == "container damaged on arrival"


def test_without_an_operator_every_scan_but_a_badge_is_refused(app, client, bench, tech):
    b = register(client, tech)["barcode"]
    before = audit_count(app)
    for data in (b, "CMD:RECEIVE", "BOX-0002"):
        out = bench.scan(data)
        assert (out["outcome"], out["code"]) == ("refused", "no_operator")
        assert "badge" in out["message"]
    assert sample(client, tech, b)["state"] == "registered"
    # Each refusal is one audit event of its own; nothing else was written.
    refused = events(app, action="scan.refused")
    assert audit_count(app) == before + 3 and len(refused) == 3
    log = client.get(f"/api/scans?station={STATION}", headers=bench.headers).json["scans"]
    assert [(s["data"], s["outcome"]) for s in log] == [
        ("BOX-0002", "refused"),
        ("CMD:RECEIVE", "refused"),
        (b, "refused"),
    ]
    assert log[2]["resolved"] == {"kind": "sample", "ref": b}


def test_an_unknown_badge_or_a_viewers_badge_signs_nobody_in(app, bench):
    out = bench.scan("BADGE-9999")
    assert (out["outcome"], out["code"]) == ("refused", "unknown_code")
    with new_session(app.extensions["lims"]["engine"]) as db:
        viewer = db.exec(select(User).where(User.username == "helix_viewer")).one()
        viewer.badge = "BADGE-0102"
        db.add(viewer)
        db.commit()
    out = bench.scan("BADGE-0102")
    assert (out["outcome"], out["code"]) == ("refused", "role_required")
    assert out["station_state"]["operator"] is None


def test_station_state_changes_are_audited_as_the_operator(app, client, bench):
    bench.ok("BADGE-0002")
    bench.ok("CMD:STORE")
    bench.ok("BOX-0003")
    state = client.get(f"/api/stations/{STATION}", headers=bench.headers).json
    assert (state["operator"], state["mode"], state["target"]) == ("tech1", "store", "BOX-0003")
    assert "tubes" in state["prompt"]
    evs = events(app, entity_type="station", entity_ids=[STATION])
    assert [(e.action, e.actor) for e in evs][-3:] == [
        ("station.operator", "tech1"),
        ("station.mode", "tech1"),
        ("station.target", "tech1"),
    ]
    assert json.loads(evs[-1].before)["target"] is None
    assert json.loads(evs[-1].after)["target"] == "BOX-0003"
    # Another badge: a new person and a clean task.
    out = bench.ok("BADGE-0003")
    st = out["station_state"]
    assert (st["operator"], st["mode"], st["target"]) == ("tech2", None, None)
    bench.ok("CMD:LOGOUT")
    assert client.get(f"/api/stations/{STATION}", headers=bench.headers).json["operator"] is None


def test_store_into_a_scanned_position_then_the_next_free_ones(client, bench, tech):
    tubes = []
    for _ in range(2):
        b = register(client, tech)["barcode"]
        move(client, tech, b, "receive", condition="intact")
        tubes.append(b)
    bench.ok("BADGE-0002")
    bench.ok("CMD:STORE")
    bench.ok("BOX-0003:C4")
    assert bench.ok(tubes[0])["sample"]["position"] == "C4"
    assert bench.ok(tubes[1])["sample"]["position"] == "A1"
    # Storing a tube again into the box it is in is refused as a no-op, not moved.
    out = bench.scan("CMD:DONE")
    bench.ok("CMD:STORE")
    bench.ok("BOX-0003")
    out = bench.scan(tubes[0])
    assert (out["outcome"], out["code"]) == ("refused", "already_there")
    assert sample(client, tech, tubes[0])["position"] == "C4"
    out = bench.scan("BOX-0003:C4")
    assert (out["outcome"], out["code"]) == ("refused", "position_occupied")


def test_hand_over_refuses_a_tube_of_another_coi_loudly(app, client, bench, auth):
    qa = auth("qa1")
    tech = auth("tech1")
    a = register(client, tech)
    other = register(client, tech)
    b = a["barcode"]
    for action, fields in [
        ("receive", {"condition": "intact"}),
        ("quarantine", {}),
    ]:
        assert move(client, tech, b, action, **fields).status_code == 200
    assert move(client, qa, b, "release").status_code == 200
    assert move(client, tech, b, "check_out", custodian="tech1").status_code == 200

    bench.ok("BADGE-0003")  # tech2 takes the tube over from tech1
    bench.ok("CMD:HANDOVER")
    out = bench.scan(b)
    assert (out["outcome"], out["code"]) == ("refused", "no_coi")
    bench.ok(other["coi"])  # the wrong patient's label
    before = audit_count(app)
    out = bench.scan(b)
    assert (out["outcome"], out["code"]) == ("refused", "coi_mismatch")
    assert "COI MISMATCH" in out["message"] and a["coi"] in out["message"]
    assert sample(client, tech, b)["custodian"] == "tech1"
    # The refusal and the station's stop (tests/bench/test_station_stop.py) are recorded.
    assert audit_count(app) == before + 2
    assert events(app, action="scan.refused")[-1].reason == out["message"]
    assert out["station_stopped"] is True

    bench.ok("CMD:ACK")
    assert bench.ok("BADGE-0004")["action"] == "release_stop"  # qa1 releases the bench
    bench.ok(a["coi"])
    out = bench.ok(b)
    assert out["sample"]["custodian"] == "tech2" and out["action"] == "hand_over"
    ev = events(app, entity_ids=[b], action="sample.hand_over")[0]
    assert ev.actor == "tech2"


def test_a_coi_label_outside_receive_and_hand_over_is_refused(client, bench, tech):
    s = register(client, tech)
    bench.ok("BADGE-0002")
    bench.ok("CMD:STORE")
    out = bench.scan(s["coi"])
    assert out["code"] == "wrong_mode" and "CMD:RECEIVE or CMD:HANDOVER" in out["message"]


def test_a_vial_of_another_lot_is_refused(app, client, bench, tech):
    lv = [
        s["barcode"]
        for s in client.get("/api/samples?lot=LV-2611-002", headers=tech).json["samples"]
    ]
    aav = [
        s["barcode"]
        for s in client.get("/api/samples?lot=AAV9-2611-001", headers=tech).json["samples"]
    ]
    bench.ok("BADGE-0002")
    bench.ok("CMD:QUARANTINE")
    out = bench.ok("LV-2611-002")
    assert out["station_state"]["lot"] == "LV-2611-002"
    out = bench.scan(aav[0])
    assert (out["outcome"], out["code"]) == ("refused", "wrong_lot")
    assert "AAV9-2611-001" in out["message"]
    assert sample(client, tech, aav[0])["state"] == "received"
    assert bench.ok(lv[0])["sample"]["state"] == "quarantine"
    # A tube that is not a vial of any lot is refused too.
    plain = register(client, tech)["barcode"]
    assert bench.scan(plain)["code"] == "wrong_lot"


def test_a_gs1_label_carrying_our_lot_selects_it(client, bench):
    bench.ok("BADGE-0002")
    bench.ok("CMD:QUARANTINE")
    out = bench.scan("010541234567890810LV-2611-002\x1d21V1", symbology="]d2")
    assert out["outcome"] == "accepted", out
    assert out["resolved"]["kind"] == "lot" and out["resolved"]["gs1"]["serial"] == "V1"
    assert out["station_state"]["lot"] == "LV-2611-002"
    foreign = bench.scan("010541234567890810OTHER-LOT", symbology="]C1")
    assert (foreign["outcome"], foreign["code"]) == ("refused", "not_ours")


def test_dispose_needs_a_scanned_reason(app, client, bench, tech):
    b = register(client, tech)["barcode"]
    bench.ok("BADGE-0002")
    bench.ok("CMD:DISPOSE")
    assert bench.scan(b)["code"] == "no_reason"
    bench.ok("CMD:REASON:EXPIRED")
    out = bench.ok(b)
    assert out["sample"]["state"] == "disposed"
    assert events(app, entity_ids=[b], action="sample.dispose")[0].reason == "expired"


@pytest.mark.parametrize("hidden", ["\u200b", "\u00ad", "\ufeff", "\u200e", "\x85"])
def test_a_scanned_reason_with_hidden_characters_is_refused_at_the_scan(
    app, client, bench, tech, hidden: str
):
    b = register(client, tech)["barcode"]
    bench.ok("BADGE-0002")
    bench.ok("CMD:DISPOSE")
    out = bench.scan(f"CMD:REASON:broken{hidden}tube")
    assert (out["outcome"], out["code"]) == ("refused", "bad_command"), out
    # The bench is not stuck: the tube still waits for a reason, and a good one works.
    assert bench.scan(b)["code"] == "no_reason"
    bench.ok("CMD:REASON:broken tube")
    assert bench.ok(b)["sample"]["state"] == "disposed"


def test_a_bench_setting_the_move_refuses_is_a_refused_scan_not_a_500(app, client, bench, tech):
    # A reason stored before the scan-time check existed (or by another path) must not make
    # every later scan fail: the agent would retry a 500 for ever and hold up the bench.
    from lims.models import Station

    b = register(client, tech)["barcode"]
    bench.ok("BADGE-0002")
    bench.ok("CMD:DISPOSE")
    with new_session(app.extensions["lims"]["engine"]) as db:
        st = db.exec(select(Station).where(Station.name == STATION)).one()
        st.context = json.dumps({**json.loads(st.context or "{}"), "reason": "bad\u202ereason"})
        db.add(st)
        db.commit()
    before = audit_count(app)
    out = bench.scan(b)
    assert (out["outcome"], out["code"]) == ("refused", "bad_field"), out
    assert "scan it again" in out["message"]
    assert sample(client, tech, b)["state"] == "registered"
    assert audit_count(app) == before + 1  # the refusal itself, as for any refused scan


def test_an_illegal_move_is_refused_with_what_is_allowed(client, bench, tech):
    b = register(client, tech)["barcode"]
    bench.ok("BADGE-0002")
    bench.ok("CMD:CHECKOUT")
    out = bench.scan(b)
    assert (out["outcome"], out["code"]) == ("refused", "illegal_transition")
    assert "receive" in out["message"]


def test_a_tube_scanned_with_no_mode_is_looked_up(app, client, bench, tech):
    b = register(client, tech)["barcode"]
    bench.ok("BADGE-0002")
    before = audit_count(app)
    out = bench.ok(b)
    assert out["action"] == "lookup" and out["sample"]["barcode"] == b
    assert audit_count(app) == before


def test_the_same_scan_id_replays_the_first_answer(app, client, bench, tech):
    b = register(client, tech)["barcode"]
    bench.ok("BADGE-0002")
    bench.ok("CMD:RECEIVE")
    before = audit_count(app)
    first = bench.scan(b, scan_id="agent-r0-abc")
    again = bench.scan(b, scan_id="agent-r0-abc")
    assert first["outcome"] == "accepted" and again.pop("replayed") is True
    assert again == first
    assert audit_count(app) == before + 1
    log = client.get(f"/api/scans?station={STATION}", headers=bench.headers).json["scans"]
    assert [s["scan_id"] for s in log].count("agent-r0-abc") == 1


def test_a_double_read_within_the_window_is_one_event(app, client, bench, tech):
    b = register(client, tech)["barcode"]
    bench.ok("BADGE-0002")
    bench.ok("CMD:RECEIVE")
    before = audit_count(app)
    assert bench.scan(b)["outcome"] == "accepted"
    dup = bench.scan(b)
    assert (dup["outcome"], dup["code"]) == ("duplicate", "double_read")
    assert audit_count(app) == before + 1
    # Outside the window the same tube is a new scan (here refused: it is received already).
    app.config["SCAN_DUPLICATE_WINDOW_S"] = 0
    assert bench.scan(b)["code"] == "illegal_transition"


def test_a_refused_scan_is_not_a_base_for_double_reads(client, bench, tech):
    b = register(client, tech)["barcode"]
    assert bench.scan(b)["code"] == "no_operator"
    bench.ok("BADGE-0002")
    bench.ok("CMD:RECEIVE")
    # Scanned again at once after signing in: it acts; it is not swallowed as a double read.
    assert bench.ok(b)["sample"]["state"] == "received"


def test_another_organisations_barcode_is_refused_as_unknown(client, bench, tech):
    centre_tube = register(client, tech)["barcode"]
    never_issued = sample_barcode(26, 999_999)
    bench.ok("BADGE-0101")  # helix_tech, a client's technician renting the bench
    bench.ok("CMD:RECEIVE")
    theirs = bench.scan(centre_tube)
    unknown = bench.scan(never_issued)
    assert (theirs["outcome"], theirs["code"]) == ("refused", "unknown_code")
    # Word for word the answer for a barcode that was never issued: nothing is revealed.
    assert theirs["message"].replace(centre_tube, "X") == unknown["message"].replace(
        never_issued, "X"
    )
    assert theirs["sample"] is None
    # Their own lot resolves; the centre's other client's lot does not.
    bench.ok("CMD:QUARANTINE")
    assert bench.scan("AAV9-2611-001")["outcome"] == "accepted"
    assert bench.scan("LV-2611-002")["code"] == "unknown_code"


def test_wrong_check_character_and_garbage_are_refused_and_recorded(app, client, bench):
    bench.ok("BADGE-0002")
    good = sample_barcode(26, 1)
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    out = bench.scan(bad)
    assert (out["outcome"], out["code"]) == ("refused", "bad_check_character")
    assert bench.scan("\x00\x01junk")["code"] == "unreadable"
    assert bench.scan("not a label")["code"] == "unknown_code"
    assert bench.scan("", error="invalid UTF-8")["code"] == "scanner_error"
    log = client.get(f"/api/scans?station={STATION}&limit=4", headers=bench.headers).json
    assert [s["outcome"] for s in log["scans"]] == ["refused"] * 4
    # NUL is stored escaped (PostgreSQL text cannot hold it); the chain still verifies.
    assert log["scans"][2]["data"] == "\\x00\x01junk"
    assert verify(app).ok


def test_malformed_requests_are_clear_400s_that_write_nothing(app, client, bench):
    before = audit_count(app)
    r = bench.post("x" * 10_000)
    assert r.status_code == 400 and r.json["error"] == "malformed"
    r = client.post(
        "/api/scans",
        data=b'{"station": "BENCH-B1", "scan_id": "a", "data": "\xff\xfe"}',
        headers={**bench.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json["error"] == "malformed"
    r = client.post("/api/scans", json={"station": STATION, "data": "x"}, headers=bench.headers)
    assert r.status_code == 400
    r = client.post("/api/scans", json=["not", "an", "object"], headers=bench.headers)
    assert r.status_code == 400
    assert audit_count(app) == before
    assert client.get(f"/api/scans?station={STATION}", headers=bench.headers).json["scans"] == []


def test_who_may_post_scans(client, auth):
    body = {"station": STATION, "data": "BADGE-0002", "scan_id": "w1"}
    assert client.post("/api/scans", json=body).status_code == 401
    other = client.post("/api/scans", json=body, headers=auth("admin", "BENCH-QC"))
    assert (other.status_code, other.json["error"]) == (403, "wrong_station")
    viewer = client.post("/api/scans", json=body, headers=auth("helix_viewer"))
    assert viewer.status_code == 403
    missing = client.post("/api/scans", json={**body, "station": "NO-SUCH"}, headers=auth("tech1"))
    assert (missing.status_code, missing.json["error"]) == (404, "unknown_station")
    assert client.get("/api/stations/NO-SUCH", headers=auth("tech1")).status_code == 404
    # A technician's own (unbound) token may sign its holder in at any bench with their own
    # badge, e.g. from the bench web page (anyone else's badge:
    # tests/bench/test_station_security.py).
    ok = client.post("/api/scans", json=body, headers=auth("tech1"))
    assert ok.status_code == 200 and ok.json["outcome"] == "accepted"


def test_codes_typed_in_lower_case_name_the_same_place_badge_and_lot(client, bench, tech):
    # A keyboard at the bench with caps lock off: the printed codes are upper case.
    assert bench.ok("badge-0002")["action"] == "sign_in"
    bench.ok("CMD:QUARANTINE")
    out = bench.ok("lv-2611-002")
    assert out["resolved"] == {"kind": "lot", "ref": "LV-2611-002"}, out
    bench.ok("CMD:DONE")
    bench.ok("CMD:STORE")
    assert bench.ok("box-0003")["resolved"]["ref"] == "BOX-0003"
    b = register(client, tech)["barcode"]
    move(client, tech, b, "receive", condition="intact")
    assert bench.ok(b)["sample"]["location"] == "BOX-0003"
    # A code that names nothing in any case is still unknown.
    out = bench.scan("box-9999")
    assert (out["outcome"], out["code"]) == ("refused", "unknown_code")
