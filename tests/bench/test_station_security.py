"""Who may drive a bench, as whom, and what a bench shows of another organisation's work."""

from __future__ import annotations

import itertools
import json

import pytest
from helpers import audit_count, move, page_csrf, register, sign_in, verify
from sqlmodel import select

from lims import audit
from lims.db import new_session
from lims.models import AuditEvent, Station, User

STATION = "BENCH-B1"
_ids = itertools.count(1)


def scan(client, headers, data: str, station: str = STATION, scan_id: str | None = None):  # noqa: ANN001, ANN201
    """Post one scan; return the response."""
    body = {"station": station, "data": data, "scan_id": scan_id or f"sec-{next(_ids)}"}
    return client.post("/api/scans", json=body, headers=headers)


def answer(client, headers, data: str, station: str = STATION) -> dict:  # noqa: ANN001
    r = scan(client, headers, data, station)
    assert r.status_code == 200, r.json
    return r.json


def ok(client, headers, data: str, station: str = STATION) -> dict:  # noqa: ANN001
    out = answer(client, headers, data, station)
    assert out["outcome"] == "accepted", out
    return out


def db(app):  # noqa: ANN001, ANN201
    return new_session(app.extensions["lims"]["engine"])


def events(app, **filters) -> list[AuditEvent]:  # noqa: ANN001
    with db(app) as s:
        return audit.query(s, limit=10_000, **filters)


def operator_of(app, station: str = STATION) -> str | None:  # noqa: ANN001
    with db(app) as s:
        st = s.exec(select(Station).where(Station.name == station)).one()
        return s.get(User, st.operator_id).username if st.operator_id else None


@pytest.fixture
def agent(auth):
    # The bench's station agent: a centre token bound to the bench.
    return auth("admin", STATION)


@pytest.fixture
def tech(auth):
    return auth("tech1")


@pytest.fixture
def nova_tube(client, tech) -> str:
    """A received NovaCell tube (registered by centre staff for the client's project)."""
    b = register(client, tech, project="NC-LVCAR")["barcode"]
    assert move(client, tech, b, "receive", condition="intact").status_code == 200
    return b


def test_a_personal_token_cannot_sign_in_with_another_persons_badge(app, client, auth):
    helix = auth("helix_tech")
    before = audit_count(app)
    out = answer(client, helix, "BADGE-0002")  # tech1's badge, typed by a client technician
    assert (out["outcome"], out["code"]) == ("refused", "not_your_badge")
    # The answer does not say whose badge it is.
    assert out["resolved"] == {"kind": "badge", "ref": "BADGE-0002"}
    assert "tech1" not in json.dumps(out) and "Tara" not in json.dumps(out)
    assert operator_of(app) is None
    assert audit_count(app) == before + 1
    assert events(app, action="scan.refused")[-1].actor == "helix_tech"
    # Their own badge signs them in, as themselves.
    out = ok(client, helix, "BADGE-0101")
    assert out["action"] == "sign_in" and operator_of(app) == "helix_tech"


def test_a_person_cannot_act_at_a_bench_where_someone_else_is_signed_in(
    app, client, auth, agent, tech, nova_tube
):
    helix = auth("helix_tech")
    ok(client, agent, "BADGE-0002")  # tech1 badges in at the scanner
    before = audit_count(app)
    for data in ("CMD:DISPOSE", "CMD:REASON:NOT-NEEDED", nova_tube):
        out = answer(client, helix, data)
        assert (out["outcome"], out["code"]) == ("refused", "operator_elsewhere"), out
        # A client is not told which centre person is signed in.
        assert "Tara" not in out["message"] and "tech1" not in json.dumps(out)
        assert out["sample"] is None
    assert audit_count(app) == before + 3
    assert [e.actor for e in events(app, action="scan.refused")][-3:] == ["helix_tech"] * 3
    assert client.get(f"/api/samples/{nova_tube}", headers=tech).json["state"] == "received"
    assert events(app, entity_ids=[nova_tube], action="sample.dispose") == []
    assert operator_of(app) == "tech1"
    # Centre staff are told who it is.
    out = answer(client, auth("tech2"), "CMD:RECEIVE")
    assert out["code"] == "operator_elsewhere" and "Tara Technician" in out["message"]
    # Scanning their own badge replaces the operator; from then on the scans are theirs, with
    # their own organisation's view: the NovaCell tube is unknown to them.
    ok(client, helix, "BADGE-0101")
    assert operator_of(app) == "helix_tech"
    ok(client, helix, "CMD:QUARANTINE")
    out = answer(client, helix, nova_tube)
    assert (out["outcome"], out["code"]) == ("refused", "unknown_code")
    evs = events(app, entity_type="station", entity_ids=[STATION], action="station.mode")
    assert evs[-1].actor == "helix_tech" and "via helix_tech" in evs[-1].device
    # And the agent's scans now act for helix_tech, the badge holder.
    assert answer(client, agent, nova_tube)["code"] == "unknown_code"


def test_a_client_organisations_station_token_cannot_drive_a_centre_bench(app, client, auth):
    import hashlib
    import secrets

    from sqlmodel import select

    from lims.db import new_session
    from lims.models import ApiToken, Station, User

    # Such a token is refused at creation (test_cli); one that exists anyway (made before the
    # rule, or written straight into the database) is still refused when used.
    secret = "lims_" + secrets.token_urlsafe(32)
    with new_session(app.extensions["lims"]["engine"]) as db:
        user = db.exec(select(User).where(User.username == "helix_tech")).one()
        st = db.exec(select(Station).where(Station.name == STATION)).one()
        db.add(
            ApiToken(
                user_id=user.id,
                station_id=st.id,
                token_hash=hashlib.sha256(secret.encode()).hexdigest(),
            )
        )
        db.commit()
    token = {"Authorization": f"Bearer {secret}"}
    before = audit_count(app)
    r = scan(client, token, "BADGE-0002")
    assert (r.status_code, r.json["error"]) == (403, "client_station_token")
    assert operator_of(app) is None and audit_count(app) == before


def test_only_the_sender_of_a_scan_id_gets_its_answer_replayed(client, auth, agent, tech):
    b = register(client, tech)["barcode"]
    ok(client, agent, "BADGE-0002")
    first = scan(client, agent, b, scan_id="agent-1-abc").json
    assert first["sample"]["barcode"] == b
    other = scan(client, auth("helix_tech"), "BADGE-0101", scan_id="agent-1-abc")
    assert (other.status_code, other.json["error"]) == (422, "scan_id_taken")
    assert b not in other.text
    again = scan(client, agent, b, scan_id="agent-1-abc").json
    assert again.pop("replayed") is True and again == first


def test_station_state_is_for_lab_staff_and_hides_another_orgs_task(app, client, auth, agent):
    ok(client, agent, "BADGE-0002")
    ok(client, agent, "CMD:RECEIVE")
    ok(client, agent, "LV-2611-002")  # a NovaCell lot
    ok(client, agent, "BOX-0002")
    for path in (f"/api/stations/{STATION}", "/api/stations"):
        r = client.get(path, headers=auth("helix_viewer"))
        assert (r.status_code, r.json["error"]) == (403, "role_required")
    # Centre staff see the whole task.
    state = client.get(f"/api/stations/{STATION}", headers=auth("tech2")).json
    assert (state["operator"], state["lot"], state["target"]) == (
        "tech1",
        "LV-2611-002",
        "BOX-0002",
    )
    assert state["redacted"] is False
    # A client technician sees only that the bench is in use.
    helix = auth("helix_tech")
    r = client.get(f"/api/stations/{STATION}", headers=helix)
    assert r.status_code == 200 and r.json["redacted"] is True
    assert all(r.json[k] is None for k in ("operator", "mode", "lot", "coi", "target"))
    listed = client.get("/api/stations", headers=helix)
    assert listed.status_code == 200
    for text in (r.text, listed.text):
        assert "LV-2611-002" not in text and "tech1" not in text and "BOX-0002" not in text
    row = next(s for s in listed.json["stations"] if s["name"] == STATION)
    assert row["redacted"] is True and row["mode"] is None
    # Once they are the operator, the task is theirs and they see it.
    ok(client, helix, "BADGE-0101")
    ok(client, helix, "CMD:QUARANTINE")
    ok(client, helix, "AAV9-2611-001")
    state = client.get(f"/api/stations/{STATION}", headers=helix).json
    assert (state["operator"], state["lot"], state["redacted"]) == (
        "helix_tech",
        "AAV9-2611-001",
        False,
    )


def test_station_audit_events_do_not_show_a_client_another_orgs_task(app, client, auth, agent):
    ok(client, agent, "BADGE-0002")
    ok(client, agent, "CMD:HANDOVER")
    ok(client, agent, "LV-2611-002")
    ok(client, agent, "BADGE-0101")  # helix_tech walks up and badges in
    ok(client, agent, "CMD:QUARANTINE")
    evs = events(app, entity_type="station", entity_ids=[STATION])
    assert len(evs) >= 5 and all(e.org_id is None for e in evs)
    # The handover to helix_tech holds tech1's task in `before`: the client must not read it.
    assert "LV-2611-002" in evs[-2].before
    for who in ("helix_viewer", "nova_viewer"):
        r = client.get("/api/audit?limit=1000", headers=auth(who))
        assert r.status_code == 200 and r.json["events"]
        assert "station." not in r.text
    # NovaCell's lot, chosen for tech1's task, never reaches Helix through the trail.
    assert (
        "LV-2611-002" not in client.get("/api/audit?limit=1000", headers=auth("helix_viewer")).text
    )
    assert verify(app).ok


def test_disabling_a_user_signs_them_off_every_bench(app, client, auth):
    ok(client, auth("admin", STATION), "BADGE-0002")
    ok(client, auth("admin", STATION), "CMD:RECEIVE")
    ok(client, auth("admin", "BENCH-QC"), "BADGE-0002", station="BENCH-QC")
    ok(client, auth("admin", "BENCH-STORE"), "BADGE-0003", station="BENCH-STORE")
    sign_in(client, "admin")
    before = audit_count(app)
    r = client.post(
        "/admin/users/tech1/disable",
        data={"csrf_token": page_csrf(client), "reason": "left the company"},
    )
    assert r.status_code == 302
    assert operator_of(app, STATION) is None and operator_of(app, "BENCH-QC") is None
    assert operator_of(app, "BENCH-STORE") == "tech2"
    signed_off = [e for e in events(app, action="station.operator") if e.actor == "admin"]
    assert sorted(e.station for e in signed_off) == [STATION, "BENCH-QC"]
    assert all(
        "disabled" in e.reason and json.loads(e.after)["operator"] is None for e in signed_off
    )
    # One event per bench plus the user.disable itself, nothing else.
    assert audit_count(app) == before + 3
    assert json.loads(events(app, action="user.disable")[-1].after)["benches_signed_off"] == 2
    out = answer(client, auth("admin", STATION), "CMD:QUARANTINE")
    assert (out["outcome"], out["code"]) == ("refused", "no_operator")


def test_a_disabled_operator_can_do_nothing_at_the_bench(app, client, agent, tech):
    b = register(client, tech)["barcode"]
    ok(client, agent, "BADGE-0002")
    ok(client, agent, "CMD:RECEIVE")
    # Disabled some other way than the admin page (e.g. by a directory sync): still refused.
    with db(app) as s:
        u = s.exec(select(User).where(User.username == "tech1")).one()
        u.active = False
        s.add(u)
        s.commit()
    before = audit_count(app)
    for data in (b, "CMD:DONE", "CMD:LOGOUT"):
        out = answer(client, agent, data)
        assert (out["outcome"], out["code"]) == ("refused", "user_disabled"), out
    assert audit_count(app) == before + 3
    assert client.get(f"/api/samples/{b}", headers=agent).json["state"] == "registered"
    # The next person badges in and works as usual.
    ok(client, agent, "BADGE-0003")
    ok(client, agent, "CMD:RECEIVE")
    assert ok(client, agent, b)["sample"]["state"] == "received"


def test_an_occupied_position_does_not_name_another_orgs_tube(
    app, client, auth, agent, tech, nova_tube
):
    r = move(client, tech, nova_tube, "store", location="BOX-0003", position="E5")
    assert r.status_code == 200, r.json
    ok(client, agent, "BADGE-0101")  # helix_tech
    ok(client, agent, "CMD:STORE")
    out = answer(client, agent, "BOX-0003:E5")
    assert (out["outcome"], out["code"]) == ("refused", "position_occupied")
    assert nova_tube not in json.dumps(out) and "is occupied" in out["message"]
    assert nova_tube not in events(app, action="scan.refused")[-1].reason
    # Centre staff may see the tube, and are told which it is.
    ok(client, agent, "BADGE-0002")
    ok(client, agent, "CMD:STORE")
    assert nova_tube in answer(client, agent, "BOX-0003:E5")["message"]


def _checked_out(client, auth, tech) -> dict:  # noqa: ANN001
    s = register(client, tech)
    for action, fields in (("receive", {"condition": "intact"}), ("quarantine", {})):
        assert move(client, tech, s["barcode"], action, **fields).status_code == 200
    assert move(client, auth("qa1"), s["barcode"], "release").status_code == 200
    r = move(client, tech, s["barcode"], "check_out", custodian="tech1")
    assert r.status_code == 200, r.json
    return s


def test_check_in_at_the_bench_needs_a_box(app, client, auth, agent, tech):
    b = _checked_out(client, auth, tech)["barcode"]
    ok(client, agent, "BADGE-0002")
    out = ok(client, agent, "CMD:CHECKIN")
    assert "box" in out["station_state"]["prompt"]
    before = audit_count(app)
    out = answer(client, agent, b)
    assert (out["outcome"], out["code"]) == ("refused", "no_target")
    assert audit_count(app) == before + 1
    s = client.get(f"/api/samples/{b}", headers=tech).json
    assert (s["state"], s["custodian"]) == ("in_use", "tech1")
    ok(client, agent, "BOX-0002")
    s = ok(client, agent, b)["sample"]
    assert (s["state"], s["location"], s["position"]) == ("available", "BOX-0002", "A1")


def test_a_hand_over_to_the_custodian_themselves_is_refused(app, client, auth, agent, tech):
    s = _checked_out(client, auth, tech)
    ok(client, agent, "BADGE-0002")  # tech1 holds the tube already
    ok(client, agent, "CMD:HANDOVER")
    ok(client, agent, s["coi"])
    before = audit_count(app)
    out = answer(client, agent, s["barcode"])
    assert (out["outcome"], out["code"]) == ("refused", "no_change")
    assert audit_count(app) == before + 1
    assert events(app, entity_ids=[s["barcode"]], action="sample.hand_over") == []
    # Another person takes it over as before.
    ok(client, agent, "BADGE-0003")
    ok(client, agent, "CMD:HANDOVER")
    ok(client, agent, s["coi"])
    assert ok(client, agent, s["barcode"])["sample"]["custodian"] == "tech2"
