"""Setting up a real centre from nothing with `flask setup ...`, as an administrator would."""

from __future__ import annotations

import getpass

import pytest
from helpers import audit_count, verify
from sqlalchemy import text
from sqlmodel import select

from lims import create_app, masterdata
from lims.accounts.users import actor_for
from lims.db import new_session
from lims.errors import Forbidden
from lims.models import User

SETUP = [
    ["organisation", "acme-gene", "Acme Gene Ltd (client)"],
    ["project", "AC-LV1", "Acme LV CAR-T", "--org", "acme-gene"],
    ["project", "QC-IN", "Centre QC", "--org", "centre"],
    ["sample-type", "PBMC", "PBMC"],
    ["location", "SITE-A", "Main site", "--kind", "site"],
    ["location", "RM-B2", "Cleanroom B2", "--kind", "room", "--parent", "SITE-A", "--grade", "B"],
    ["location", "FRZ-2", "Freezer -80 #2", "--kind", "equipment", "--parent", "RM-B2"]
    + ["--equipment-type", "freezer", "--temperature", "-80 C"],
    ["location", "FRZ-2-R1", "Rack 1", "--kind", "rack", "--parent", "FRZ-2"],
    ["location", "BOX-0500", "Box 500", "--kind", "box", "--parent", "FRZ-2-R1"]
    + ["--rows", "9", "--cols", "9"],
    ["station", "BENCH-B2", "--room", "RM-B2"],
]


@pytest.fixture
def fresh(empty_db_url):  # noqa: ANN001, ANN201
    app = create_app({"DATABASE_URL": empty_db_url, "TESTING": True, "SECRET_KEY": "t"})
    yield app
    app.extensions["lims"]["engine"].dispose()


def test_a_centre_set_up_from_nothing_takes_its_first_tube(fresh):
    runner, client = fresh.test_cli_runner(), fresh.test_client()
    before = audit_count(fresh)
    for args in SETUP:
        r = runner.invoke(args=["setup", *args])
        assert r.exit_code == 0, (args, r.output)
        assert r.output.strip().endswith(f"{args[1]} added")
    # One event per record, naming the person at the keyboard.
    assert audit_count(fresh) == before + len(SETUP)
    with fresh.extensions["lims"]["engine"].connect() as conn:
        rows = conn.execute(
            text("SELECT action, entity_id, device FROM audit_event WHERE seq > :s ORDER BY seq"),
            {"s": before},
        ).all()
    assert [(a, e) for a, e, _ in rows][:2] == [
        ("organisation.create", "acme-gene"),
        ("project.create", "AC-LV1"),
    ]
    assert {d for _, _, d in rows} == {f"cli:{getpass.getuser()}"}

    r = runner.invoke(
        args=["user", "create", "ana", "--role", "technician", "--org", "centre"],
        input="a long enough password\n",
    )
    assert r.exit_code == 0, r.output
    h = {
        "Authorization": "Bearer "
        + runner.invoke(args=["token", "create", "ana"]).output.split()[-1]
    }
    r = client.post(
        "/api/samples",
        json={"sample_type": "PBMC", "project": "AC-LV1", "volume": 2, "unit": "mL"},
        headers=h,
    )
    assert r.status_code == 201, r.json
    assert r.json["organisation"] == "acme-gene"
    moved = client.post(
        f"/api/samples/{r.json['barcode']}/transitions",
        json={"action": "receive", "condition": "ok", "location": "BOX-0500", "position": "I9"},
        headers=h,
    )
    assert moved.status_code == 200, moved.json
    assert (moved.json["location"], moved.json["position"]) == ("BOX-0500", "I9")
    tree = client.get("/api/locations", headers=h).json
    assert "BOX-0500" in str(tree) and "Freezer -80 #2" in str(tree)
    bench = runner.invoke(args=["token", "create", "ana", "--station", "BENCH-B2"])
    assert bench.exit_code == 0, bench.output
    assert verify(fresh).ok


def rack(code: str, *extra: str) -> list[str]:
    return ["location", code, "Rack", "--kind", "rack", "--parent", "FRZ-80-1", *extra]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["organisation", "Acme Gene", "x"], "lower-case letters"),
        (["organisation", "helix-bio", "again"], "exists already"),
        (["organisation", "acme", "bell\x07"], "control"),
        (["project", "hx-aav9", "x", "--org", "helix-bio"], "upper-case letters"),
        (["project", "HX-AAV9", "again", "--org", "helix-bio"], "exists already"),
        (["project", "AC-1", "x", "--org", "nobody"], "no organisation"),
        (["sample-type", "pbmc", "x"], "upper-case letters"),
        (["sample-type", "PBMC", "again"], "exists already"),
        # Its name is the title of every tube label.
        (["sample-type", "PBMC2", "Peripheral blood mononuclear cells"], "cannot be printed"),
        (["sample-type", "LEUK", "Leukapheresis concentrate"], "tube-2ml-203"),
        # Fits every stock since 300-dpi lines are as wide in inches as 203-dpi ones.
        (["sample-type", "BMA", "Bone marrow aspirate"], None),
        (["sample-type", "PBMC2", "   "], "visible text"),
        (["sample-type", "PBMC2", "\u3164"], "visible text"),
        (["sample-type", "PBMC2", "Line\u2028two"], "control"),
        (rack("FRZ-80-1-RACK-0001-BOX-00001"), "cannot be printed"),
        (rack("RK-9", "--temperature", "37 C, 5 % CO2, humidified atmosphere"), "at most 32"),
        (
            ["location", "RK-9", "x", "--kind", "equipment", "--parent", "RM-B1"]
            + ["--equipment-type", "ln2", "--rows", "9"],
            "an equipment has no rows",
        ),
        (["location", "SITE-2", "x", "--kind", "site", "--parent", "SITE-1"], "goes in the top"),
        (["location", "RM-9", "x", "--kind", "room"], "a room goes in a site"),
        (["location", "RM-9", "x", "--kind", "room", "--parent", "NOPE"], "no location"),
        (["location", "FRZ-9", "x", "--kind", "equipment", "--parent", "RM-B1"], "equipment_type"),
        (
            ["location", "BOX-9", "x", "--kind", "box", "--parent", "FRZ-80-1-R1"],
            "needs rows and cols",
        ),
        (
            ["location", "BOX-9", "x", "--kind", "box", "--parent", "RM-B1", "--rows", "9"]
            + ["--cols", "9"],
            "a box goes in an equipment or a rack",
        ),
        (
            ["location", "BOX-9", "x", "--kind", "box", "--parent", "FRZ-80-1-R1", "--rows", "27"]
            + ["--cols", "9"],
            "rows",
        ),
        (rack("RM-9", "--grade", "B"), "no grade"),
        (rack("BOX-0002"), "location already"),
        (rack("LV-2611-002"), "lot already"),
        (rack("S26-000001-X"), "sample barcode"),
        (rack("S26-000017-I"), "reads it as a sample"),
        (rack("COI-26-000001-Q"), "COI"),
        (rack("01234567890128"), "GS1"),
        (rack("CMD-STORE"), None),
        (["station", "BENCH-B1", "--room", "RM-C1"], "station already"),
        (["station", "BENCH-Z", "--room", "FRZ-80-1"], "not a room"),
    ],
)
def test_setup_refuses_what_would_confuse_a_scan_or_a_record(runner, app, args, said):
    before = audit_count(app)
    r = runner.invoke(args=["setup", *args])
    if said is None:
        # A code that merely starts like a command word is still a plain code.
        assert r.exit_code == 0, r.output
        return
    assert r.exit_code == 1, (args, r.output)
    assert said in r.output and "Traceback" not in r.output, r.output
    assert audit_count(app) == before


def test_setup_is_for_the_centre_s_administrators(app):

    with new_session(app.extensions["lims"]["engine"]) as db:
        for name in ("tech1", "qa1", "helix_tech"):
            who = actor_for(db, db.exec(select(User).where(User.username == name)).one())
            data = masterdata.parse(masterdata.SampleTypeIn, code="SERUM", name="Serum")
            with pytest.raises(Forbidden):
                masterdata.add_sample_type(db, data=data, actor=who)
        admin = actor_for(db, db.exec(select(User).where(User.username == "admin")).one())
        data = masterdata.parse(masterdata.SampleTypeIn, code="SERUM", name="Serum")
        assert masterdata.add_sample_type(db, data=data, actor=admin).code == "SERUM"


def test_a_badge_from_the_command_line_signs_its_holder_in_at_a_bench(runner, client, auth, app):
    r = runner.invoke(
        args=["user", "create", "bo", "--role", "technician", "--no-password"]
        + ["--badge", "BADGE-0200"]
    )
    assert r.exit_code == 0, r.output
    bench = {"station": "BENCH-B1", "data": "BADGE-0200", "scan_id": "b-1"}
    agent = auth("admin", "BENCH-B1")
    r = client.post("/api/scans", json=bench, headers=agent)
    assert r.json["outcome"] == "accepted" and r.json["action"] == "sign_in", r.json
    # A lost badge is replaced; the old code no longer signs anyone in.
    assert runner.invoke(args=["user", "badge", "bo", "BADGE-0201"]).exit_code == 0
    new = {**bench, "data": "BADGE-0201", "scan_id": "b-2"}
    assert client.post("/api/scans", json=new, headers=agent).json["outcome"] == "accepted"
    r = client.post("/api/scans", json={**bench, "scan_id": "b-3"}, headers=agent)
    assert (r.json["outcome"], r.json["code"]) == ("refused", "unknown_code"), r.json
    # The trail says a badge was issued without handing out the code that signs in.
    with app.extensions["lims"]["engine"].connect() as conn:
        after = (
            conn.execute(
                text("SELECT after FROM audit_event WHERE action = 'user.badge' ORDER BY seq")
            )
            .scalars()
            .all()
        )
    assert after == ['{"badge":"issued"}', '{"badge":"replaced"}']
    admin = auth("admin")
    before = audit_count(app)
    for args, said in (
        (["user", "badge", "tech2", "BADGE-0001"], "is a badge already"),
        (["user", "badge", "tech2", "box-0002"], "upper-case letters"),
        (["user", "badge", "tech2", "BOX-0002"], "is a location already"),
        (["user", "badge", "tech2", "S26-000017-I"], "sample barcode"),
        (["user", "badge", "nobody", "BADGE-0300"], "no user"),
        (["user", "badge", "system", "BADGE-0300"], "no user"),
        (["user", "badge", "bo", "BADGE-0201"], "bo holds badge BADGE-0201 already"),
    ):
        r = runner.invoke(args=args)
        assert r.exit_code == 1 and said in r.output and "Traceback" not in r.output, r.output
    # A refused badge takes the new account with it: all or nothing.
    r = runner.invoke(
        args=["user", "create", "cy", "--role", "technician", "--no-password"]
        + ["--badge", "BADGE-0001"]
    )
    assert r.exit_code == 1 and "is a badge already" in r.output
    assert "cy" not in {
        u["username"] for u in client.get("/api/users", headers=admin).json["users"]
    }
    assert audit_count(app) == before


def test_other_records_refuse_codes_and_text_that_would_later_break(runner, client, auth, app):
    centre, client_tech = auth("tech1"), auth("helix_tech")
    before = audit_count(app)
    r = runner.invoke(args=["printer", "add", "zebra-b1", "socket://127.0.0.1:9100"])
    assert r.exit_code == 1 and "printer ZEBRA-B1 exists already" in r.output
    r = runner.invoke(
        args=["user", "create", "long", "--role", "qa", "--full-name", "N" * 201],
        input="a long password\n",
    )
    assert r.exit_code == 1 and "at most 200" in r.output and "Traceback" not in r.output
    url = "socket://127.0.0.1:9100/" + "x" * 500
    assert runner.invoke(args=["printer", "add", "ZD-LONG", url]).exit_code == 2
    assert audit_count(app) == before
    # A lot number scanned bare is looked up after places and badges: it must name one thing.
    lot = {
        "vector_type": "AAV",
        "vector": "AAV9-CMV-GFP",
        "project": "HX-AAV9",
        "manufactured_on": "2026-11-01",
        "expires_on": "2027-11-01",
    }
    r = client.post("/api/lots", json={**lot, "lot_number": "BOX-0002"}, headers=centre)
    assert r.status_code == 409 and "is a location already" in r.json["message"]
    r = client.post("/api/lots", json={**lot, "lot_number": "BOX-0002"}, headers=client_tech)
    assert r.status_code == 409 and "location" not in r.json["message"]  # a client learns nothing
    r = client.post("/api/lots", json={**lot, "lot_number": "S26-000017-I"}, headers=centre)
    assert r.status_code == 422 and r.json["error"] == "bad_code"
    assert audit_count(app) == before
    # Suppliers' lot numbers are often only digits, which GS1 would read as a serial or a GTIN:
    # they are lot numbers all the same, and a scan of the lot's own label finds the lot.
    r = client.post("/api/lots", json={**lot, "lot_number": "21000123"}, headers=centre)
    assert r.status_code == 201, r.json
    bench, scan = auth("admin", "BENCH-B1"), {"station": "BENCH-B1"}
    client.post("/api/scans", json={**scan, "data": "BADGE-0002", "scan_id": "l-1"}, headers=bench)
    r = client.post(
        "/api/scans", json={**scan, "data": "21000123", "scan_id": "l-2"}, headers=bench
    )
    assert r.json["resolved"]["kind"] == "lot" and r.json["resolved"]["ref"] == "21000123", r.json


def test_a_place_label_prints_on_box_stock_unless_told_otherwise(client, auth):
    tech = auth("tech1")
    r = client.post(
        "/api/labels", json={"barcodes": ["RM-C1"], "printer": "ZEBRA-B1"}, headers=tech
    )
    assert r.status_code == 201, r.json
    assert r.json["template"].startswith("box-")
    r = client.post("/api/labels/sheet.pdf", json={"barcodes": ["RM-C1"]}, headers=tech)
    assert r.status_code == 200 and r.data.startswith(b"%PDF")
