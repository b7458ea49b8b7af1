"""A client learns nothing of another organisation's records from a conflict or a refusal.

Each test asks as a client would (API or bench) once with another organisation's record and once
with one that does not exist, and expects the same answer; centre staff keep theirs.
"""

from __future__ import annotations

import itertools

import pytest
from helpers import move, register
from sqlmodel import select

from lims.db import new_session
from lims.identifiers import coi_id
from lims.models import User

_ids = itertools.count(1)


def same(a, b, *, given: tuple[str, str] | None = None) -> None:  # noqa: ANN001
    """Assert two responses say the same (the value each named swapped for a placeholder)."""

    def body(r, value: str | None) -> str:  # noqa: ANN001
        text = r.get_data(as_text=True)
        return text.replace(value, "<given>") if value else text

    first, second = given or (None, None)
    assert a.status_code == b.status_code, (a.json, b.json)
    assert body(a, first) == body(b, second)


def released(client, auth, headers, **fields) -> str:  # noqa: ANN001
    """Return the barcode of a released sample registered by headers' user."""
    b = register(client, headers, **fields)["barcode"]
    assert move(client, headers, b, "receive", condition="ok").status_code == 200
    assert move(client, headers, b, "quarantine").status_code == 200
    assert move(client, auth("qa1"), b, "release").status_code == 200
    return b


# --- COI ---------------------------------------------------------------------------------------


def test_another_clients_coi_is_refused_as_an_unallocated_one_is(client, auth, tech):
    helix = auth("helix_tech")
    nova_coi = register(client, tech, project="NC-LVCAR")["coi"]
    unused = coi_id(26, 999_999)  # well formed, never allocated
    body = {"sample_type": "PLASMID", "project": "HX-AAV9"}
    theirs = client.post("/api/samples", json={**body, "coi": nova_coi}, headers=helix)
    nobodys = client.post("/api/samples", json={**body, "coi": unused}, headers=helix)
    assert (theirs.status_code, theirs.json["error"]) == (422, "coi_refused")
    same(theirs, nobodys, given=(nova_coi, unused))
    assert "leave" in theirs.json["message"]  # it says what to do
    # Their own patient's COI still registers a second collection; an empty one is allocated.
    own = register(client, helix, sample_type="PLASMID", project="HX-AAV9")["coi"]
    r = client.post("/api/samples", json={**body, "coi": own}, headers=helix)
    assert r.status_code == 201 and r.json["coi"] == own


def test_the_centre_still_gives_a_new_local_coi_and_is_told_another_organisations(
    client, auth, tech
):
    nova_coi = register(client, tech, project="NC-LVCAR")["coi"]
    body = {"sample_type": "PLASMID", "project": "HX-AAV9"}
    r = client.post("/api/samples", json={**body, "coi": nova_coi}, headers=tech)
    assert (r.status_code, r.json["error"]) == (422, "coi_refused")
    r = client.post("/api/samples", json={**body, "coi": coi_id(26, 999_998)}, headers=tech)
    assert r.status_code == 201


# --- usernames ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["check_out", "hand_over"])
def test_another_clients_user_cannot_hold_a_tube_and_is_not_confirmed(client, auth, action):
    helix = auth("helix_tech")
    b = released(client, auth, helix, sample_type="PLASMID", project="HX-AAV9")
    fields = {}
    if action == "hand_over":
        assert move(client, helix, b, "check_out", custodian="helix_tech").status_code == 200
        fields["coi"] = client.get(f"/api/samples/{b}", headers=helix).json["coi"]
    theirs = move(client, helix, b, action, custodian="nova_viewer", **fields)
    nobody = move(client, helix, b, action, custodian="nobody_here", **fields)
    assert (theirs.status_code, theirs.json["error"]) == (404, "unknown_user")
    same(theirs, nobody, given=("nova_viewer", "nobody_here"))
    # A centre technician may hold it: the centre's staff are known to every client.
    r = move(client, helix, b, action, custodian="tech1", **fields)
    assert r.status_code == 200 and r.json["custodian"] == "tech1"


def test_centre_staff_are_still_told_the_user_may_not_hold_it(client, auth, tech):
    b = released(client, auth, tech, sample_type="PLASMID", project="HX-AAV9")
    r = move(client, tech, b, "check_out", custodian="nova_viewer")
    assert r.status_code == 422 and "may not hold" in r.json["message"]


# --- lot numbers -------------------------------------------------------------------------------

LOT = {"vector_type": "AAV", "vector": "AAV9-X", "project": "HX-AAV9"}


def test_another_clients_lot_number_is_refused_as_any_unavailable_number(client, auth):
    helix = auth("helix_tech")

    def create(number: str):  # noqa: ANN202
        return client.post("/api/lots", json={**LOT, "lot_number": number}, headers=helix)

    theirs = create("LV-2611-002")
    assert (theirs.status_code, theirs.json["error"]) == (409, "lot_exists")
    assert "choose another lot number" in theirs.json["message"]
    # The same answer for a number naming a place, a station or another person's badge.
    for taken in ("lv-2611-002", "BOX-0001", "BENCH-B1", "BADGE-0002"):
        same(theirs, create(taken), given=("LV-2611-002", taken))
    # Its own lot is named; a free number is taken.
    own = create("aav9-2611-001")
    assert own.status_code == 409 and "AAV9-2611-001 exists already" in own.json["message"]
    assert create("AAV9-FREE-1").status_code == 201


def test_centre_staff_are_still_told_what_a_lot_number_names(client, auth, tech):
    def create(number: str):  # noqa: ANN202
        body = {**LOT, "project": "CART-001", "lot_number": number}
        return client.post("/api/lots", json=body, headers=tech)

    r = create("LV-2611-002")
    assert (r.status_code, r.json["error"]) == (409, "lot_exists")
    assert "LV-2611-002 exists already" in r.json["message"]
    r = create("BOX-0001")
    assert (r.status_code, r.json["error"]) == (409, "exists")
    assert "is a location already" in r.json["message"]


# --- badges at a bench -------------------------------------------------------------------------

STATION = "BENCH-B1"


def scan(client, headers, data: str) -> dict:  # noqa: ANN001
    body = {"station": STATION, "data": data, "scan_id": f"oracle-{next(_ids)}"}
    r = client.post("/api/scans", json=body, headers=headers)
    assert r.status_code == 200, r.json
    return r.json


@pytest.fixture
def nova_badge(app) -> str:
    """Give NovaCell's viewer a badge (another client organisation's)."""
    with new_session(app.extensions["lims"]["engine"]) as db:
        user = db.exec(select(User).where(User.username == "nova_viewer")).one()
        user.badge = "BADGE-0201"
        db.add(user)
        db.commit()
    return "BADGE-0201"


def _without_ids(out: dict, value: str) -> dict:
    """The answer without what differs between any two scans (ids, time, the data itself)."""
    drop = {"id", "scan_id", "time", "data", "station_state"}
    text = {k: v for k, v in out.items() if k not in drop}
    return {
        k: (v.replace(value, "<given>") if isinstance(v, str) else v) for k, v in text.items()
    } | {"resolved": {**out["resolved"], "ref": out["resolved"]["ref"].replace(value, "<given>")}}


def test_another_clients_badge_is_an_unknown_code_to_a_client(client, auth, nova_badge):
    helix = auth("helix_tech")
    theirs = scan(client, helix, nova_badge)
    nobodys = scan(client, helix, "BADGE-9999")
    assert (theirs["outcome"], theirs["code"]) == ("refused", "unknown_code"), theirs
    assert _without_ids(theirs, nova_badge) == _without_ids(nobodys, "BADGE-9999")
    assert "nova" not in str(theirs).lower()


def test_a_bench_agent_still_signs_in_another_clients_badge(client, auth, nova_badge, app):
    # At the bench's scanner a badge is the card in hand: it signs its holder in, whoever was.
    agent = auth("admin", STATION)
    assert scan(client, agent, "BADGE-0101")["action"] == "sign_in"  # helix_tech
    out = scan(client, agent, nova_badge)
    # nova_viewer is not a lab role: refused for the role, which names the badge's holder.
    assert out["code"] == "role_required" and "nova_viewer" in out["message"]
    # Centre staff signed in personally are told it is someone else's badge.
    assert scan(client, auth("tech2"), nova_badge)["code"] == "not_your_badge"


# --- audit verification ------------------------------------------------------------------------


def test_a_client_cannot_verify_the_centre_wide_chain(client, auth):
    r = client.get("/api/audit/verify", headers=auth("helix_tech"))
    assert r.status_code == 403, r.json
    assert "events" not in r.json and "head_seq" not in r.json
    assert r.json["error"] == "centre_only"
    for user in ("tech1", "qa1", "admin"):
        r = client.get("/api/audit/verify", headers=auth(user))
        assert r.status_code == 200 and r.json["ok"] and r.json["events"] > 0
