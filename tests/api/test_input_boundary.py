"""Bad input found by probing the running demo: each answers a clear error and writes nothing."""

from __future__ import annotations

import pytest
from helpers import audit_count, move, register
from sqlmodel import select

from lims.db import new_session
from lims.models import Organisation, Sample, User


def _sample(app, barcode: str) -> Sample:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        return db.exec(select(Sample).where(Sample.barcode == barcode)).one()


# --- accounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "qa"])
def test_a_client_organisation_gets_no_centre_role(app, client, auth, role: str) -> None:  # noqa: ANN001
    admin = auth("admin")  # (its token's creation is an audit event too)
    before = audit_count(app)
    r = client.post(
        "/api/users",
        json={"username": "hx_boss", "role": role, "org": "helix-bio", "password": "x" * 12},
        headers=admin,
    )
    assert r.status_code == 422 and r.json["error"] == "role_not_for_client"
    assert "technician or client_viewer" in r.json["message"]
    assert audit_count(app) == before
    ok = client.post(
        "/api/users",
        json={"username": "hx_tech2", "role": "technician", "org": "helix-bio"},
        headers=admin,
    )
    assert ok.status_code == 201


def test_a_client_account_holding_a_centre_role_acts_as_a_viewer(app, client, auth) -> None:  # noqa: ANN001
    # An older database may hold one: it must not administer the centre.
    with new_session(app.extensions["lims"]["engine"]) as db:
        helix = db.exec(select(Organisation).where(Organisation.name == "helix-bio")).one()
        db.add(User(username="old_hx_admin", full_name="Old", org_id=helix.id, role="admin"))
        db.commit()
    h = auth("old_hx_admin")
    before = audit_count(app)
    r = client.post(
        "/api/users", json={"username": "x1", "role": "admin", "org": "centre"}, headers=h
    )
    assert r.status_code == 403
    assert client.post("/api/tokens", json={"username": "tech1"}, headers=h).status_code == 403
    assert client.get("/api/users", headers=h).status_code == 403
    assert audit_count(app) == before


def test_the_system_account_gets_no_token(app, client, auth) -> None:  # noqa: ANN001
    admin = auth("admin")
    before = audit_count(app)
    r = client.post("/api/tokens", json={"username": "system"}, headers=admin)
    assert r.status_code == 400 and r.json["error"] == "system_account"
    assert audit_count(app) == before


@pytest.mark.parametrize(
    "username", ["Tech1", "\uff54\uff45\uff43\uff48\uff11", "t\u0435ch1", "_x", "a b", ""]
)
def test_usernames_that_could_pass_for_another_are_refused(app, client, auth, username) -> None:  # noqa: ANN001
    r = client.post(
        "/api/users",
        json={"username": username, "role": "technician", "org": "centre"},
        headers=auth("admin"),
    )
    assert r.status_code == 400, r.json


@pytest.mark.parametrize(
    "extra",
    [
        {"full_name": "QA Lead\u202e\u0007\n(real)"},
        {"full_name": "   "},
        {"password": " " * 12},
    ],
)
def test_names_signed_on_records_and_blank_passwords_are_refused(app, client, auth, extra) -> None:  # noqa: ANN001
    admin = auth("admin")
    before = audit_count(app)
    r = client.post(
        "/api/users",
        json={"username": "newtech", "role": "technician", "org": "centre", **extra},
        headers=admin,
    )
    assert r.status_code == 400, r.json
    assert audit_count(app) == before


def test_an_empty_station_binds_no_station_and_says_so(client, auth) -> None:  # noqa: ANN001
    r = client.post("/api/tokens", json={"username": "tech1", "station": ""}, headers=auth("admin"))
    assert r.status_code == 201 and r.json["station"] is None


# --- request bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '{"action":"x\\u0000","n":' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=["arrays", "objects", "nul-and-nesting"],
)
@pytest.mark.parametrize("signed_in", [True, False])
def test_deeply_nested_json_is_a_400_not_a_500(app, client, auth, body, signed_in) -> None:  # noqa: ANN001
    headers = {"Content-Type": "application/json", **(auth("tech1") if signed_in else {})}
    before = audit_count(app)
    r = client.post("/api/samples", data=body, headers=headers)
    assert r.status_code == 400 and r.json["error"] == "malformed"
    assert "nested too deeply" in r.json["message"]
    assert audit_count(app) == before


def test_a_key_given_twice_is_refused_not_silently_the_last(app, client, tech) -> None:  # noqa: ANN001
    s = register(client, tech)
    r = client.post(
        f"/api/samples/{s['barcode']}/transitions",
        data='{"action": "receive", "action": "dispose", "reason": "x", "condition": "ok"}',
        headers={**tech, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "'action' appears more than once" in r.json["message"]
    assert _sample(app, s["barcode"]).state == "registered"


def test_a_giant_number_is_refused_in_plain_words(client, tech) -> None:  # noqa: ANN001
    r = client.post(
        "/api/samples",
        data='{"sample_type": "PBMC", "volume": ' + "9" * 5000 + "}",
        headers={**tech, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "too many digits" in r.json["message"]
    assert "sys.set_int_max_str_digits" not in r.json["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/samples", {"sample_type": "PBMC", "project": "CART-001", "volume": True}),
        ("/api/samples", {"sample_type": "PBMC", "project": "CART-001", "volume": "5"}),
        ("{sample}/aliquots", {"count": True, "volume": 1, "unit": "mL"}),
        ("{sample}/aliquots", {"count": "3", "volume": 1, "unit": "mL"}),
        ("{sample}/corrections", {"volume": True, "reason": "typo"}),
        ("{sample}/transitions", {"action": "dispose", "reason": "x", "version": "1"}),
    ],
)
def test_json_types_are_taken_exactly(app, client, tech, path: str, body: dict) -> None:  # noqa: ANN001
    # The body is checked before anything else, so the sample's state does not matter.
    s = register(client, tech)
    before, snapshot = audit_count(app), _sample(app, s["barcode"])
    r = client.post(
        path.replace("{sample}", f"/api/samples/{s['barcode']}"), json=body, headers=tech
    )
    assert r.status_code == 400, r.json
    assert audit_count(app) == before
    after = _sample(app, s["barcode"])
    assert (after.version, after.volume, after.state) == (
        snapshot.version,
        snapshot.volume,
        snapshot.state,
    )


def test_control_characters_in_one_line_fields_are_refused(client, tech) -> None:  # noqa: ANN001
    r = client.post(
        "/api/samples",
        json={"sample_type": "PBMC", "project": "CART-001", "container": "vial\u202e\u0007"},
        headers=tech,
    )
    assert r.status_code == 400 and "control or invisible" in str(r.json)
    # A reason may run over lines.
    s = register(client, tech)
    r = move(client, tech, s["barcode"], "dispose", reason="spilled\nsee deviation DV-12")
    assert r.status_code == 200, r.json


# --- custody moves -------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["   ", "\n\t "])
def test_a_reason_of_only_spaces_is_no_reason(app, client, tech, reason: str) -> None:  # noqa: ANN001
    s = register(client, tech)
    before = audit_count(app)
    r = move(client, tech, s["barcode"], "dispose", reason=reason)
    assert r.status_code == 422 and r.json["error"] == "missing_fields"
    assert r.json["missing"] == ["reason"]
    assert _sample(app, s["barcode"]).state == "registered" and audit_count(app) == before


@pytest.mark.parametrize("position", ["A\u00b2", "B\u0663", "A1\u00b9"])
def test_positions_take_ascii_digits_only(app, client, tech, position: str) -> None:  # noqa: ANN001
    one, two = register(client, tech), register(client, tech)
    before = audit_count(app)
    r = move(
        client, tech, one["barcode"], "receive", condition="ok", location="BOX-0002",
        position=position,
    )  # fmt: skip
    assert r.status_code == 422 and r.json["error"] == "bad_position"
    rack = client.post(
        "/api/transitions",
        json={
            "action": "receive",
            "condition": "ok",
            "location": "BOX-0002",
            "samples": [{"barcode": two["barcode"], "position": position}],
        },
        headers=tech,
    )
    assert rack.status_code == 422 and rack.json["error"] == "bad_position"
    assert audit_count(app) == before


def test_a_position_without_its_box_is_refused_not_dropped(app, client, tech) -> None:  # noqa: ANN001
    one, two = register(client, tech), register(client, tech)
    before = audit_count(app)
    r = move(client, tech, one["barcode"], "receive", condition="ok", position="A1")
    assert r.status_code == 422 and r.json["error"] == "missing_fields"
    assert r.json["missing"] == ["location"]
    rack = client.post(
        "/api/transitions",
        json={
            "action": "receive",
            "condition": "ok",
            "samples": [{"barcode": two["barcode"], "position": "C1"}],
        },
        headers=tech,
    )
    assert rack.status_code == 422 and rack.json["missing"] == ["location"]
    assert audit_count(app) == before
    assert _sample(app, one["barcode"]).state == "registered"


@pytest.mark.parametrize("place", ["RM-B1", "SITE-1"])
def test_store_puts_a_sample_into_storage_not_into_a_room(app, client, tech, place) -> None:  # noqa: ANN001
    s = register(client, tech)
    assert move(client, tech, s["barcode"], "receive", condition="ok").status_code == 200
    before = audit_count(app)
    r = move(client, tech, s["barcode"], "store", location=place)
    assert r.status_code == 422 and r.json["error"] == "bad_location"
    assert "box, rack or storage unit" in r.json["message"]
    assert audit_count(app) == before and _sample(app, s["barcode"]).location_id is None
    # A freezer shelf (no box) is storage; a room is still fine for work at a bench.
    assert move(client, tech, s["barcode"], "store", location="FRZ-80-1").status_code == 200


def test_a_name_written_with_joiners_is_accepted(client, auth) -> None:  # noqa: ANN001
    # Persian and Devanagari names use the zero-width (non-)joiner between letters.
    r = client.post(
        "/api/users",
        json={"username": "fz1", "role": "technician", "org": "centre",
              "full_name": "\u0641\u0627\u0637\u0645\u0647\u200c\u0632\u0647\u0631\u0627"},
        headers=auth("admin"),
    )  # fmt: skip
    assert r.status_code == 201, r.json
