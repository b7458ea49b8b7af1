"""Bad input to lots, labels and scans: a clear JSON refusal, and nothing written."""

from __future__ import annotations

import pytest
from helpers import register

LOT = "AAV9-2611-001"  # demo: quarantine, mycoplasma QC missing
STATION = "BENCH-B1"
NEW_LOT = {
    "lot_number": "AAV-T2",
    "vector_type": "AAV",
    "vector": "AAV2-CMV-GFP",
    "project": "CART-001",
}


def events(client, auth) -> int:  # noqa: ANN001
    """Return how many events the audit chain holds (GET /api/audit/verify as QA)."""
    r = client.get("/api/audit/verify", headers=auth("qa1"))
    assert r.status_code == 200 and r.json["ok"], r.json
    return r.json["events"]


def lot_numbers(client, headers) -> list[str]:  # noqa: ANN001
    r = client.get("/api/lots", headers=headers)
    assert r.status_code == 200, r.json
    return [x["lot_number"] for x in r.json["lots"]]


def jobs(client, headers) -> list[int]:  # noqa: ANN001
    r = client.get("/api/print-jobs", headers=headers)
    assert r.status_code == 200, r.json
    return [j["id"] for j in r.json["jobs"]]


# --- 1. JSON types are taken exactly -----------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        {"titer_vg_per_ml": True},
        {"volume_ml": "5"},
        {"lot_number": 12345},
        {"expires_on": True},
        {"expires_on": 0},  # lax parsing read this as 1970-01-01
    ],
)
def test_a_lot_body_of_the_wrong_json_type_is_refused(client, auth, tech, field):
    before, lots = events(client, auth), lot_numbers(client, tech)
    r = client.post("/api/lots", json={**NEW_LOT, **field}, headers=tech)
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json
    assert lot_numbers(client, tech) == lots and events(client, auth) == before


def test_a_lot_takes_whole_numbers_for_floats_and_dates_as_strings(client, tech):
    body = {
        **NEW_LOT,
        "titer_vg_per_ml": 2,
        "volume_ml": 1.5,
        "manufactured_on": "2026-01-02",
        "expires_on": "2027-01-02",
    }
    r = client.post("/api/lots", json=body, headers=tech)
    assert r.status_code == 201, r.json
    assert (r.json["titer_vg_per_ml"], r.json["expires_on"]) == (2.0, "2027-01-02")


def test_a_qc_result_of_true_is_refused(client, auth, tech):
    before = events(client, auth)
    r = client.post(
        f"/api/lots/{LOT}/qc", json={"test": "mycoplasma", "result": True}, headers=tech
    )
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json
    lot = client.get(f"/api/lots/{LOT}", headers=tech).json
    assert lot["qc_missing"] == ["mycoplasma"] and events(client, auth) == before


def test_a_lot_transition_version_of_true_is_refused(client, auth, tech):
    before = events(client, auth)
    url = f"/api/lots/{LOT}/transitions"
    r = client.post(url, json={"action": "complete", "version": True}, headers=tech)
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json
    assert client.get(f"/api/lots/{LOT}", headers=tech).json["state"] == "quarantine"
    assert events(client, auth) == before


@pytest.mark.parametrize("copies", [True, "2", 1.0])
def test_label_copies_must_be_a_whole_json_number(client, auth, tech, copies):
    b = register(client, tech)["barcode"]
    before, listed = events(client, auth), jobs(client, tech)
    body = {"barcodes": [b], "printer": "ZEBRA-B1", "copies": copies}
    r = client.post("/api/labels", json=body, headers=tech)
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json
    assert jobs(client, tech) == listed and events(client, auth) == before


def test_a_scan_id_of_the_wrong_type_is_refused(client, auth):
    agent = auth("admin", STATION)
    before = events(client, auth)
    r = client.post(
        "/api/scans", json={"station": STATION, "data": "BADGE-0002", "scan_id": 7}, headers=agent
    )
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json
    assert client.get(f"/api/stations/{STATION}", headers=agent).json["operator"] is None
    assert events(client, auth) == before


# --- 2. one-line text holds no control or invisible formatting characters --------------------


@pytest.mark.parametrize(
    "field",
    [
        {"vector": "\u202eevil\u0007"},
        {"vector": "AAV2\nCMV"},
        {"serotype": "AAV\u200b2"},
        {"project": "CART-001\u0000"},
    ],
)
def test_control_characters_in_a_lot_are_refused(client, auth, tech, field):
    before, lots = events(client, auth), lot_numbers(client, tech)
    r = client.post("/api/lots", json={**NEW_LOT, **field}, headers=tech)
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json
    assert lot_numbers(client, tech) == lots and events(client, auth) == before


def test_a_qc_result_may_run_over_lines_but_holds_no_control_characters(client, auth, tech):
    url = f"/api/lots/{LOT}/qc"
    body = {"test": "mycoplasma"}
    before = events(client, auth)
    r = client.post(url, json={**body, "result": "not detected\u001b[2J"}, headers=tech)
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json
    assert client.get(f"/api/lots/{LOT}", headers=tech).json["qc_missing"] == ["mycoplasma"]
    assert events(client, auth) == before
    r = client.post(url, json={**body, "result": "not detected\n(PCR, 2 runs)"}, headers=tech)
    assert r.status_code == 201, r.json
    # Judged as the text the specification accepts, however the lines run.
    myco = [q for q in r.json["qc"] if q["test"] == "mycoplasma"]
    assert myco[0]["passed"] is False


def test_a_print_reason_with_a_right_to_left_override_is_refused(client, auth, tech):
    b = register(client, tech)["barcode"]
    job = client.post("/api/labels", json={"barcodes": [b], "printer": "ZEBRA-B1"}, headers=tech)
    assert job.status_code == 201, job.json
    before = events(client, auth)
    r = client.post(
        f"/api/print-jobs/{job.json['id']}/void", json={"reason": "\u202etypo"}, headers=tech
    )
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json
    assert client.get(f"/api/print-jobs/{job.json['id']}", headers=tech).json["state"] == "queued"
    assert events(client, auth) == before


# --- 3. a reason of only spaces is no reason ---------------------------------------------------


def test_a_lot_rejection_with_a_blank_reason_is_refused_as_a_missing_one(client, auth):
    qa = auth("qa1")
    url = f"/api/lots/{LOT}/transitions"
    sign = {"password": "demo-only-lims", "meaning": "rejection"}
    missing = client.post(url, json={"action": "reject", "signature": sign}, headers=qa)
    assert (missing.status_code, missing.json["error"]) == (422, "missing_fields")
    before = events(client, auth)
    for reason in ("  ", "\n\t "):
        r = client.post(
            url, json={"action": "reject", "reason": reason, "signature": sign}, headers=qa
        )
        assert (r.status_code, r.json["error"]) == (422, "missing_fields"), r.json
        assert r.json["missing"] == ["reason"]
    lot = client.get(f"/api/lots/{LOT}", headers=qa).json
    assert (lot["state"], lot["signatures"]) == ("quarantine", [])
    assert events(client, auth) == before


def test_a_qc_correction_with_a_blank_reason_is_refused_as_a_missing_one(client, auth, tech):
    url = f"/api/lots/{LOT}/qc"
    body = {"test": "titer", "result": "2.2e13 vg/mL"}
    missing = client.post(url, json=body, headers=tech)
    assert (missing.status_code, missing.json["error"]) == (422, "reason_required")
    before = client.get(f"/api/lots/{LOT}", headers=tech).json
    count = events(client, auth)
    r = client.post(url, json={**body, "reason": "   "}, headers=tech)
    assert (r.status_code, r.json["error"]) == (422, "reason_required"), r.json
    assert client.get(f"/api/lots/{LOT}", headers=tech).json == before
    assert events(client, auth) == count


def test_a_print_job_void_or_reprint_with_a_blank_reason_is_refused(client, auth, tech):
    b = register(client, tech)["barcode"]
    job = client.post("/api/labels", json={"barcodes": [b], "printer": "ZEBRA-B1"}, headers=tech)
    job_id = job.json["id"]
    before = events(client, auth)
    r = client.post(f"/api/print-jobs/{job_id}/void", json={"reason": " \t "}, headers=tech)
    assert (r.status_code, r.json["error"]) == (422, "reason_required"), r.json
    r = client.post(f"/api/print-jobs/{job_id}/reprint", json={"reason": "  "}, headers=tech)
    assert (r.status_code, r.json["error"]) == (422, "reason_required"), r.json
    assert client.get(f"/api/print-jobs/{job_id}", headers=tech).json["state"] == "queued"
    assert events(client, auth) == before


# --- 4. a scan_id names one scan ---------------------------------------------------------------


def test_a_scan_id_reused_for_other_data_is_refused_and_a_retry_still_replays(client, auth, tech):
    a, b = (register(client, tech)["barcode"] for _ in range(2))
    agent = auth("admin", STATION)

    def post(data: str, scan_id: str):  # noqa: ANN202
        body = {"station": STATION, "data": data, "scan_id": scan_id}
        return client.post("/api/scans", json=body, headers=agent)

    assert post("BADGE-0002", "a1").json["outcome"] == "accepted"
    first = post(a, "a3")
    assert first.status_code == 200 and first.json["sample"]["barcode"] == a, first.json
    before = events(client, auth)
    scans = client.get(f"/api/scans?station={STATION}", headers=agent).json["scans"]

    r = post(b, "a3")
    assert (r.status_code, r.json["error"]) == (422, "scan_id_reused"), r.json
    assert "new scan_id" in r.json["message"] and a not in r.text
    r = client.post(
        "/api/scans",
        json={"station": STATION, "data": a, "scan_id": "a3", "symbology": "]C1"},
        headers=agent,
    )
    assert (r.status_code, r.json["error"]) == (422, "scan_id_reused"), r.json
    assert client.get(f"/api/scans?station={STATION}", headers=agent).json["scans"] == scans
    assert events(client, auth) == before

    again = post(a, "a3")
    assert again.status_code == 200, again.json
    body = again.json
    assert body.pop("replayed") is True and body == first.json


# --- 5. a missing field is 422 everywhere ------------------------------------------------------


def test_qc_of_a_test_the_specification_lacks_is_422_naming_it(client, auth, tech):
    before = events(client, auth)
    r = client.post(f"/api/lots/{LOT}/qc", json={"test": "potency", "result": "98 %"}, headers=tech)
    assert (r.status_code, r.json["error"]) == (422, "spec_missing"), r.json
    assert "AAV-RELEASE v1" in r.json["message"] and "potency" in r.json["message"]
    assert client.get(f"/api/lots/{LOT}", headers=tech).json["qc_missing"] == ["mycoplasma"]
    assert events(client, auth) == before


# --- 6. a barcode is at most 64 characters -----------------------------------------------------


def test_an_overlong_barcode_is_refused_before_it_is_looked_up(client, auth, tech):
    b = register(client, tech)["barcode"]
    job = client.post("/api/labels", json={"barcodes": [b], "printer": "ZEBRA-B1"}, headers=tech)
    job_id = job.json["id"]
    long = "S" * 200_000
    before, listed = events(client, auth), jobs(client, tech)
    for url, body in (
        ("/api/labels", {"barcodes": [b, long], "printer": "ZEBRA-B1"}),
        ("/api/labels", {"barcodes": ["X" * 65], "printer": "ZEBRA-B1"}),
        (f"/api/print-jobs/{job_id}/reprint", {"reason": "smudged", "barcodes": [long]}),
        ("/api/labels/sheet.pdf", {"barcodes": [long]}),
        ("/api/labels/sheet.pdf", {"barcodes": [""]}),
    ):
        r = client.post(url, json=body, headers=tech)
        assert (r.status_code, r.json["error"]) == (400, "malformed"), (url, r.json)
        assert len(r.get_data()) < 10_000
    assert jobs(client, tech) == listed and events(client, auth) == before


# --- 7. lot numbers without regard to case; the lot list takes no unknown parameters ---------


def test_a_lot_number_differing_only_in_case_is_a_duplicate(client, auth, tech):
    exact = client.post("/api/lots", json={**NEW_LOT, "lot_number": LOT}, headers=tech)
    before, lots = events(client, auth), lot_numbers(client, tech)
    r = client.post("/api/lots", json={**NEW_LOT, "lot_number": LOT.lower()}, headers=tech)
    assert (r.status_code, r.json["error"]) == (exact.status_code, exact.json["error"])
    assert (r.status_code, r.json["error"]) == (409, "lot_exists")
    assert LOT in r.json["message"]
    assert lot_numbers(client, tech) == lots and events(client, auth) == before


def test_a_client_is_not_told_a_lot_number_in_another_case_exists(client, auth):
    body = {**NEW_LOT, "lot_number": "lv-2611-002", "project": "HX-AAV9"}
    r = client.post("/api/lots", json=body, headers=auth("helix_tech"))
    assert (r.status_code, r.json["error"]) == (409, "lot_exists")
    assert "exists" not in r.json["message"] and "LV-2611-002" not in r.text


@pytest.mark.parametrize("query", ["limit=-1&x=abc", "x=abc", "colour=red"])
def test_the_lot_list_refuses_unknown_query_parameters(client, tech, query):
    r = client.get(f"/api/lots?{query}", headers=tech)
    assert (r.status_code, r.json["error"]) == (400, "malformed"), r.json


def test_no_new_label_for_a_disposed_sample(app, client, auth, tech):  # noqa: ANN001
    s = register(client, tech)
    r = client.post(
        f"/api/samples/{s['barcode']}/transitions",
        json={"action": "dispose", "reason": "spilled"},
        headers=tech,
    )
    assert r.status_code == 200, r.json
    before, queued = events(client, auth), jobs(client, tech)
    r = client.post(
        "/api/labels", json={"barcodes": [s["barcode"]], "printer": "ZEBRA-B1"}, headers=tech
    )
    assert r.status_code == 422 and r.json["error"] == "sample_closed"
    assert "disposed" in r.json["message"]
    assert jobs(client, tech) == queued and events(client, auth) == before


def test_an_unknown_printer_or_station_names_the_known_ones(client, tech):  # noqa: ANN001
    s = register(client, tech)
    r = client.post(
        "/api/labels", json={"barcodes": [s["barcode"]], "printer": "NOPE"}, headers=tech
    )
    assert r.status_code == 404 and "ZEBRA-B1" in r.json["message"]
    assert "/api/" not in r.json["message"]
    body = {"station": "NOPE", "data": s["barcode"], "scan_id": "t-1"}
    r = client.post("/api/scans", json=body, headers=tech)
    assert r.status_code == 404 and "BENCH-B1" in r.json["message"]


@pytest.mark.parametrize(
    ("result", "code"),
    [
        ("-3 EU/mL", "bad_number"),
        ("0.5 mg/L", "unit_mismatch"),
        ("2 eu/ML", None),
    ],
)
def test_a_numeric_qc_result_is_read_in_the_spec_unit(client, auth, tech, result, code):  # noqa: ANN001
    # AAV-RELEASE: endotoxin < 5 EU/mL (a limit below zero is tested in tests/quality).
    before = events(client, auth)
    r = client.post(
        f"/api/lots/{LOT}/qc",
        json={"test": "endotoxin", "result": result, "reason": "retest"},
        headers=tech,
    )
    if code is None:  # the same unit written in another case
        assert r.status_code == 201, r.json
        endotoxin = [q for q in r.json["qc"] if q["test"] == "endotoxin"]
        assert endotoxin[-1]["result"] == result and endotoxin[-1]["passed"] is True
        return
    assert (r.status_code, r.json["error"]) == (422, code), r.json
    assert events(client, auth) == before
