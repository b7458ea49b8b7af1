"""Every /api route: 401 without credentials, 403 for a refused role, 404 for another org's record.

The table ROUTES lists each route with the roles it allows and a valid request body, so that a
refusal is about who asks, not about the body. A route added to the app without an entry here
fails test_every_api_route_is_in_the_table: decide its access rules, then add it.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlmodel import select

from lims.db import new_session
from lims.models import Deviation, Organisation, Sample

# A clinical site's staff (role site) are among ANY: where a route serves everyone, a site user
# sees only what was shipped to the site (nothing of samples, lots or audit of any client).
ANY = frozenset({"technician", "qa", "admin", "client_viewer", "site"})
LAB = frozenset({"technician", "qa", "admin"})
READERS = frozenset({"qa", "admin", "client_viewer"})
ADMIN = frozenset({"admin"})

# The demo users that act in each role: the centre's staff, and helix-bio's client viewer (whose
# requests use helix-bio records so that a refusal is about the role, not about visibility).
ROLE_USER = {
    "technician": "tech1",
    "qa": "qa1",
    "admin": "admin",
    "client_viewer": "helix_viewer",
    "site": "site_nurse",
}
# helix-bio users by role, asking for novacell's records (another organisation's: 404).
HELIX_USER = {"technician": "helix_tech", "client_viewer": "helix_viewer"}

LOT_CREATE = {
    "lot_number": "AAV9-TEST-9",
    "vector_type": "AAV",
    "vector": "AAV9-X",
    "project": "HX-AAV9",
}
# (method, rule) -> (roles allowed, JSON body or None). A body is valid for the record chosen.
ROUTES: dict[tuple[str, str], tuple[frozenset[str], dict | None]] = {
    ("GET", "/api/samples"): (ANY, None),
    ("POST", "/api/samples"): (LAB, {"sample_type": "PLASMID", "project": "HX-AAV9"}),
    ("GET", "/api/samples/<barcode>"): (ANY, None),
    ("POST", "/api/samples/<barcode>/transitions"): (
        LAB,
        {"action": "receive", "condition": "intact"},
    ),
    ("POST", "/api/transitions"): (
        LAB,
        {"action": "receive", "condition": "intact", "samples": [{"barcode": "{barcode}"}]},
    ),
    ("POST", "/api/samples/<barcode>/aliquots"): (
        LAB,
        {"count": 1, "volume": 0.1, "unit": "mL"},
    ),
    ("GET", "/api/samples/<barcode>/history"): (ANY, None),
    ("GET", "/api/samples/<barcode>/genealogy"): (ANY, None),
    ("GET", "/api/samples/<barcode>/report.pdf"): (READERS, None),
    ("POST", "/api/samples/<barcode>/corrections"): (
        LAB,
        {"volume": 0.9, "reason": "transcription error"},
    ),
    ("GET", "/api/lots"): (ANY, None),
    ("POST", "/api/lots"): (LAB, LOT_CREATE),
    ("GET", "/api/lots/<lot>"): (ANY, None),
    ("GET", "/api/lots/<lot>/report.pdf"): (READERS, None),
    ("POST", "/api/lots/<lot>/qc"): (LAB, {"test": "mycoplasma", "result": "not detected"}),
    # Reviewing a result, moving a specification or an OOS on: QA alone (signed).
    ("POST", "/api/lots/<lot>/qc/<int:result_id>/review"): (
        frozenset({"qa"}),
        {"signature": {"password": "x", "meaning": "review"}},
    ),
    ("GET", "/api/samples/<barcode>/qc"): (ANY, None),
    ("POST", "/api/samples/<barcode>/qc"): (LAB, {"test": "viability", "result": "90 %"}),
    ("POST", "/api/samples/<barcode>/qc/<int:result_id>/review"): (
        frozenset({"qa"}),
        {"signature": {"password": "x", "meaning": "review"}},
    ),
    ("GET", "/api/specs"): (ANY, None),
    ("POST", "/api/specs"): (
        frozenset({"qa", "admin"}),
        {
            "code": "PBMC-RELEASE",
            "product": "PBMC",
            "stage": "release",
            "title": "PBMC release",
            "limits": [{"test": "sterility", "text": "no growth"}],
        },
    ),
    ("GET", "/api/specs/<code>/<int:version>"): (ANY, None),
    ("POST", "/api/specs/<code>/<int:version>/transitions"): (
        frozenset({"qa"}),
        {"action": "approve", "signature": {"password": "x", "meaning": "approval"}},
    ),
    ("GET", "/api/oos"): (ANY, None),
    ("GET", "/api/oos/<int:oos_id>"): (ANY, None),
    ("POST", "/api/oos/<int:oos_id>/transitions"): (
        frozenset({"qa"}),
        {"action": "confirm", "reason": "t", "signature": {"password": "x", "meaning": "approval"}},
    ),
    ("POST", "/api/oos/<int:oos_id>/retests"): (LAB, {"result": "no growth"}),
    # Rejecting a quarantined lot is for QA alone (with a signature).
    ("POST", "/api/lots/<lot>/transitions"): (
        frozenset({"qa"}),
        {
            "action": "reject",
            "reason": "test",
            "signature": {"password": "x", "meaning": "rejection"},
        },
    ),
    ("GET", "/api/lots/<lot>/audit-trail"): (READERS, None),
    ("POST", "/api/lots/<lot>/audit-trail/review"): (
        frozenset({"qa"}),
        {"up_to_seq": 1, "signature": {"password": "x", "meaning": "review"}},
    ),
    # A released lot's certificate: centre staff and the lot's own organisation.
    ("GET", "/api/lots/<lot>/coa.pdf"): (ANY, None),
    ("GET", "/api/audit"): (READERS, None),
    ("GET", "/api/audit/export.csv"): (READERS, None),
    ("GET", "/api/audit/verify"): (LAB, None),
    ("GET", "/api/organisations"): (ANY, None),
    ("GET", "/api/projects"): (ANY, None),
    ("GET", "/api/sample-types"): (ANY, None),
    ("GET", "/api/locations"): (ANY, None),
    ("GET", "/api/locations/<code>"): (ANY, None),
    ("GET", "/api/stations"): (LAB, None),
    ("GET", "/api/stations/<name>"): (LAB, None),
    ("GET", "/api/stations/<name>/refusals"): (LAB, None),
    ("POST", "/api/stations/<name>/refusals/acknowledge"): (LAB, {}),
    ("GET", "/api/printers"): (ANY, None),
    # A station agent reports its idle printers' ~HS (its station's printers only).
    ("POST", "/api/printers/<name>/status"): (LAB, {"worker": "w1", "answered": False}),
    ("GET", "/api/users"): (ADMIN, None),
    ("POST", "/api/users"): (
        ADMIN,
        {"username": "newbie", "role": "technician", "org": "centre", "password": "long-enough-1"},
    ),
    ("POST", "/api/tokens"): (ADMIN, {"username": "tech2"}),
    ("POST", "/api/users/<username>/unlock"): (ADMIN, {"reason": "checked with them"}),
    ("POST", "/api/users/<username>/password-reset"): (ADMIN, {"reason": "forgotten"}),
    ("POST", "/api/account/password"): (ANY, {"current_password": "x", "new_password": "y"}),
    ("DELETE", "/api/tokens/<int:token_id>"): (ADMIN, None),
    ("POST", "/api/scans"): (LAB, {"station": "BENCH-B1", "data": "S26-000001-Y", "scan_id": "q1"}),
    ("GET", "/api/scans"): (ANY, None),
    ("POST", "/api/labels"): (LAB, {"barcodes": ["{barcode}"], "printer": "ZEBRA-B1"}),
    ("POST", "/api/labels/sheet.pdf"): (LAB, {"barcodes": ["{barcode}"]}),
    ("GET", "/api/samples/<barcode>/label.png"): (ANY, None),
    ("GET", "/api/samples/<barcode>/label.pdf"): (LAB, None),
    ("GET", "/api/print-jobs"): (LAB, None),
    ("GET", "/api/print-jobs/<int:job_id>"): (LAB, None),
    ("POST", "/api/print-jobs/<int:job_id>/reprint"): (LAB, {"reason": "smudged"}),
    ("POST", "/api/print-jobs/<int:job_id>/resume"): (LAB, {"reason": "ribbon changed"}),
    ("POST", "/api/print-jobs/<int:job_id>/void"): (LAB, {"reason": "wrong printer"}),
    ("POST", "/api/print-jobs/<int:job_id>/resolve"): (LAB, {"printed": 0}),
    ("POST", "/api/print-jobs/claim"): (LAB, {"worker": "w1"}),
    ("POST", "/api/print-jobs/<int:job_id>/start"): (LAB, {"worker": "w1"}),
    ("POST", "/api/print-jobs/<int:job_id>/outcome"): (
        LAB,
        {"worker": "w1", "sent": 0, "printed": 0},
    ),
    ("GET", "/api/deviations"): (ANY, None),
    ("POST", "/api/deviations"): (
        LAB,
        {"title": "Spill", "description": "in the hood", "severity": "minor"},
    ),
    ("GET", "/api/deviations/<number>"): (ANY, None),
    ("POST", "/api/deviations/<number>/transitions"): (
        frozenset({"qa"}),
        {"action": "investigate"},
    ),
    ("POST", "/api/deviations/<number>/links"): (LAB, {"kind": "room", "ref": "RM-C1"}),
    ("POST", "/api/deviations/<number>/capa"): (
        frozenset({"qa"}),
        {"description": "retrain", "owner": "tech2", "due_on": "2027-01-31"},
    ),
    # QA, or the action's owner (tech2 owns the demo's; tech1 asks here).
    ("POST", "/api/deviations/<number>/capa/<int:capa_id>/complete"): (
        frozenset({"qa"}),
        {"effectiveness_check": "checked"},
    ),
    ("POST", "/api/deviations/<number>/capa/<int:capa_id>/carry"): (
        frozenset({"qa"}),
        {"to": "DEV-00-0000", "reason": "site-wide"},
    ),
    # Cell therapy (lims/therapy): identifiers are for the centre's QA and admin; episodes move
    # by lab roles (each action's own roles within them); a mismatch is acknowledged by QA.
    ("GET", "/api/patients"): (frozenset({"qa", "admin"}), None),
    ("GET", "/api/patients/<coi>"): (frozenset({"qa", "admin"}), None),
    ("POST", "/api/patients"): (
        frozenset({"qa", "admin"}),
        {"full_name": "Test Person", "date_of_birth": "1970-01-01", "hospital_id": "H-TEST-1"},
    ),
    ("GET", "/api/product-codes"): (ANY, None),
    ("POST", "/api/product-codes"): (ADMIN, {"code": "S0999", "description": "Test product"}),
    ("GET", "/api/episodes"): (ANY, None),
    ("POST", "/api/episodes"): (LAB, {"coi": "COI-26-000001-Q", "project": "HX-AAV9"}),
    ("GET", "/api/episodes/<number>"): (ANY, None),
    ("POST", "/api/episodes/<number>/transitions"): (LAB, {"action": "schedule_collection"}),
    ("POST", "/api/episodes/<number>/acknowledge"): (frozenset({"qa"}), {"reason": "checked"}),
    # Shipments (lims/therapy/shipments.py): the centre packs and dispatches; the clinical site
    # (role site) reads what was sent to it, imports the logger and takes delivery by scans.
    ("GET", "/api/shipments"): (ANY, None),
    ("POST", "/api/shipments"): (
        LAB,
        {
            "site": "st-marys",
            "product_code": "S0001",
            "shipper": "courier",
            "logger_id": "L1",
            "containers": [{"bag": "{barcode}", "coi": "COI-26-000001-Q"}],
        },
    ),
    ("GET", "/api/shipments/<number>"): (ANY, None),
    ("POST", "/api/shipments/<number>/containers"): (
        LAB,
        {"containers": [{"bag": "{barcode}", "coi": "COI-26-000001-Q"}]},
    ),
    ("POST", "/api/shipments/<number>/dispatch"): (LAB, {}),
    ("POST", "/api/shipments/<number>/readings"): (
        LAB | {"site"},
        {"csv": "time,temperature_c\n2026-12-01T10:00:00Z,-180\n"},
    ),
    ("POST", "/api/shipments/<number>/receive"): (
        LAB | {"site"},
        {"scans": [{"bag": "{barcode}", "coi": "COI-26-000001-Q"}]},
    ),
    ("POST", "/api/shipments/<number>/transitions"): (LAB, {"action": "cancel", "reason": "x"}),
    ("POST", "/api/shipments/<number>/acknowledge"): (frozenset({"qa"}), {"reason": "checked"}),
    ("POST", "/api/pools"): (LAB, {"parents": ["{barcode}", "{barcode}"], "sample_type": "PBMC"}),
    ("GET", "/api/pools/<barcode>"): (ANY, None),
    # Cleanroom rental (lims/rooms): reading is everyone's (clients: their own bookings).
    ("GET", "/api/rooms"): (ANY, None),
    ("GET", "/api/rooms/<code>"): (ANY, None),
    ("POST", "/api/rooms/<code>/transitions"): (LAB, {"action": "hold", "reason": "test"}),
    ("GET", "/api/rooms/<code>/clearance"): (ANY, None),
    ("PUT", "/api/rooms/<code>/checklist"): (frozenset({"qa", "admin"}), {"items": ["Room clean"]}),
    ("POST", "/api/rooms/<code>/clearances"): (
        LAB,
        {"confirmed": ["Room clean"], "signature": {"password": "x", "meaning": "responsibility"}},
    ),
    ("POST", "/api/rooms/<code>/clearances/<int:clearance_id>/countersign"): (
        LAB,
        {"signature": {"password": "x", "meaning": "review"}},
    ),
    ("GET", "/api/rooms/<code>/em-points"): (ANY, None),
    ("GET", "/api/bookings"): (ANY, None),
    ("POST", "/api/bookings"): (
        LAB,
        {"room": "RM-C1", "starts_at": "2099-01-01T08:00:00Z", "ends_at": "2099-01-01T12:00:00Z"},
    ),
    ("GET", "/api/bookings/<number>"): (ANY, None),
    ("POST", "/api/bookings/<number>/transitions"): (
        frozenset({"qa", "admin"}),
        {"action": "approve"},
    ),
    ("GET", "/api/bookings/usage.csv"): (ANY, None),
    ("GET", "/api/bookings/usage.pdf"): (ANY, None),
    ("POST", "/api/em-points"): (
        frozenset({"qa", "admin"}),
        {"room": "RM-C1", "code": "EM-T-1", "name": "test", "kind": "air"},
    ),
    ("GET", "/api/em-points/<code>/results"): (ANY, None),
    ("POST", "/api/em-results"): (
        LAB,
        {
            "point": "EM-B1-A1",
            "taken_at": "2026-01-01T08:00:00Z",
            "occupancy": "at_rest",
            "value": 1,
        },
    ),
    # Viral vector manufacturing (lims.manufacturing): kinds by QA or admin, material by the lab,
    # release of material and approval of process templates by QA; reading by anyone signed in.
    ("GET", "/api/material-kinds"): (ANY, None),
    ("POST", "/api/material-kinds"): (
        frozenset({"qa", "admin"}),
        {"code": "X-1", "name": "x", "category": "medium"},
    ),
    ("POST", "/api/materials/receive"): (LAB, {"data": "]d20109506000134352172811301012"}),
    ("POST", "/api/materials"): (
        LAB,
        {"kind": "X-1", "supplier_lot": "L1", "expires_on": "2030-01-31"},
    ),
    ("GET", "/api/materials"): (ANY, None),
    ("GET", "/api/materials/<code>"): (ANY, None),
    ("GET", "/api/materials/<code>/where-used"): (ANY, None),
    ("POST", "/api/materials/<code>/transitions"): (
        frozenset({"qa"}),
        {"action": "release", "signature": {"password": "x", "meaning": "release"}},
    ),
    ("GET", "/api/lots/<lot>/inputs"): (ANY, None),
    ("POST", "/api/lots/<lot>/inputs"): (LAB, {"material": "MAT-26-000001"}),
    ("GET", "/api/lots/<lot>/made-from"): (ANY, None),
    ("GET", "/api/lots/<lot>/where-used"): (ANY, None),
    ("POST", "/api/process-templates"): (
        frozenset({"qa", "admin"}),
        {"code": "T-1", "name": "t", "product": "AAV", "steps": [{"name": "s"}]},
    ),
    ("GET", "/api/process-templates/<code>/<int:version>"): (ANY, None),
    ("POST", "/api/process-templates/<code>/<int:version>/approve"): (
        frozenset({"qa"}),
        {"signature": {"password": "x", "meaning": "approval"}},
    ),
    ("GET", "/api/lots/<lot>/batch-record"): (ANY, None),
    ("GET", "/api/lots/<lot>/batch-record.pdf"): (ANY, None),
    ("POST", "/api/lots/<lot>/batch-record"): (LAB, {"template": "T-1"}),
    ("POST", "/api/lots/<lot>/batch-record/steps/<int:position>"): (LAB, {"values": {}}),
    ("POST", "/api/lots/<lot>/batch-record/steps/<int:position>/verify"): (
        LAB,
        {"signature": {"password": "x", "meaning": "review"}},
    ),
    ("POST", "/api/lots/<lot>/batch-record/review"): (
        frozenset({"qa"}),
        {"signature": {"password": "x", "meaning": "review"}},
    ),
}
SKIP = {"/api/health"}  # the one route that needs no sign-in
QUERY = {
    "/api/scans": "?station=BENCH-B1",
    "/api/bookings/usage.csv": "?month=2026-12",
    "/api/bookings/usage.pdf": "?month=2026-12",
}


def api_routes(app) -> set[tuple[str, str]]:  # noqa: ANN001
    """Return (method, rule) of every /api route the app serves."""
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule in SKIP:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method, rule.rule))
    return out


def _records(app) -> dict[str, dict[str, str]]:  # noqa: ANN001
    """Return path parameters: helix-bio's records ('own') and novacell's ('other')."""
    with new_session(app.extensions["lims"]["engine"]) as db:

        def sample_of(org: str) -> str:
            org_id = db.exec(select(Organisation.id).where(Organisation.name == org)).one()
            return db.exec(
                select(Sample.barcode).where(Sample.org_id == org_id).order_by(Sample.id.desc())
            ).first()

        def deviation_of(org: str) -> str:
            org_id = db.exec(select(Organisation.id).where(Organisation.name == org)).one()
            return db.exec(select(Deviation.number).where(Deviation.org_id == org_id)).first()

        common = {
            "capa_id": "1",
            "code": "BOX-0001",
            "name": "BENCH-B1",
            "token_id": "1",
            "job_id": "1",
            "username": "tech2",
            "result_id": "1",
            "oos_id": "1",
            "version": "1",
            "clearance_id": "1",
            "coi": "COI-26-000001-Q",
            "position": "1",
        }
        return {
            "own": {
                **common,
                "barcode": sample_of("helix-bio"),
                "lot": "AAV9-2611-001",
                "number": deviation_of("helix-bio"),
            },
            "other": {
                **common,
                "barcode": sample_of("novacell"),
                "lot": "LV-2611-002",
                "number": deviation_of("novacell"),
            },
        }


def _fill(rule: str, params: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1).split(":")[-1]
        assert name in params, f"no demo value for <{name}> in {rule}: add one to _records"
        return params[name]

    return re.sub(r"<([^>]+)>", sub, rule) + QUERY.get(rule, "")


def _body(body: dict | None, params: dict[str, str]) -> dict | None:
    if body is None:
        return None
    return json.loads(json.dumps(body).replace("{barcode}", params["barcode"]))


def _call(client, method: str, url: str, body: dict | None, headers: dict | None = None):  # noqa: ANN001, ANN201
    return client.open(url, method=method, json=body, headers=headers or {})


def test_every_api_route_is_in_the_table(app):
    served = api_routes(app)
    missing = sorted(served - set(ROUTES))
    stale = sorted(set(ROUTES) - served)
    assert not missing, f"routes without access rules in ROUTES (add them): {missing}"
    assert not stale, f"ROUTES lists routes the app does not serve: {stale}"


def test_every_api_route_refuses_a_request_without_credentials(app, client):
    params = _records(app)["own"]
    for method, rule in sorted(api_routes(app)):
        _roles, body = ROUTES[(method, rule)]
        r = _call(client, method, _fill(rule, params), _body(body, params))
        assert r.status_code == 401, (method, rule, r.status_code, r.get_json())
        assert r.is_json and r.json["error"] == "unauthorized"
        # A bad token is refused the same way.
        r = _call(
            client, method, _fill(rule, params), _body(body, params), {"Authorization": "Bearer x"}
        )
        assert r.status_code == 401, (method, rule)


def test_every_role_restricted_route_refuses_other_roles(app, client, auth):
    params = _records(app)["own"]
    checked = 0
    for method, rule in sorted(api_routes(app)):
        roles, body = ROUTES[(method, rule)]
        for role in sorted(ANY - roles):
            r = _call(
                client, method, _fill(rule, params), _body(body, params), auth(ROLE_USER[role])
            )
            if role == "site" and r.status_code == 404:
                # A clinical site sees no client's samples, lots or deviations: for it the
                # record does not exist, which is checked before the role on these routes.
                assert r.json["error"].startswith("unknown_"), (method, rule, r.get_json())
                continue
            assert r.status_code == 403, (method, rule, role, r.status_code, r.get_json())
            assert r.json["error"] == "role_required"
            checked += 1
    assert checked >= 20  # the table restricts many routes; all of them were asked


def test_another_organisations_record_does_not_exist(app, client, auth):
    recs = _records(app)
    checked = 0
    for method, rule in sorted(api_routes(app)):
        if "<barcode>" not in rule and "<lot>" not in rule:
            continue
        roles, body = ROUTES[(method, rule)]
        # QA is a centre role: routes only QA may use are asked with no client account.
        role = next((r for r in ("technician", "client_viewer") if r in roles), None)
        if role is None:
            continue
        headers = auth(HELIX_USER[role])
        r = _call(client, method, _fill(rule, recs["other"]), _body(body, recs["other"]), headers)
        assert r.status_code == 404, (method, rule, role, r.status_code, r.get_json())
        assert r.json["error"] in ("unknown_sample", "unknown_lot")
        assert "novacell" not in r.get_data(as_text=True)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("user", ["qa1", "helix_viewer"])
def test_own_records_are_served_to_allowed_readers(app, client, auth, user):
    # The other side of the 404s above: the same routes answer for a record one may see.
    params = _records(app)["own"]
    for rule in ("/api/samples/<barcode>/report.pdf", "/api/lots/<lot>/report.pdf"):
        r = client.get(_fill(rule, params), headers=auth(user))
        assert r.status_code == 200 and r.mimetype == "application/pdf"
