"""Chain-of-custody PDF reports (API and CLI) and client isolation across API, CSV and PDF."""

from __future__ import annotations

import csv
import io

from helpers import pdf_text, tamper, verify
from sqlmodel import select

from lims.db import new_session
from lims.models import Organisation, Sample

PBMC = "S26-000012-S"  # demo: centre PBMC, released by qa1, stored, three aliquots
NOVA_LOT, HELIX_LOT = "LV-2611-002", "AAV9-2611-001"


def barcodes_of(app, org: str) -> set[str]:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        org_id = db.exec(select(Organisation.id).where(Organisation.name == org)).one()
        return set(db.exec(select(Sample.barcode).where(Sample.org_id == org_id)).all())


def test_sample_report_shows_identity_lineage_custody_and_integrity(client, auth):
    r = client.get(f"/api/samples/{PBMC}/report.pdf", headers=auth("qa1"))
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    txt = pdf_text(r.data)
    sample = client.get(f"/api/samples/{PBMC}", headers=auth("qa1")).json
    genealogy = client.get(f"/api/samples/{PBMC}/genealogy", headers=auth("qa1")).json
    children = [c["barcode"] for c in genealogy["tree"]["children"]]
    assert f"Chain-of-custody report: sample {PBMC}" in txt
    assert sample["coi"] in txt and len(children) == 3
    for child in children:
        assert child in txt  # lineage table and the children's registration events
    # Who (printed names and usernames), what, where, in which condition.
    for fragment in (
        "Tara Technician (tech1)",
        "Quinn Quality (qa1)",
        "sample.release",
        "sample.store",
        "BOX-0001 A1",
        "frozen, dry ice",
        "BENCH-B1",
    ):
        assert fragment in txt, fragment
    assert "Audit trail verification PASSED" in txt
    assert "Generated " in txt and "Quinn Quality (qa1, qa, centre)" in txt
    head = client.get("/api/audit/verify", headers=auth("qa1")).json
    assert head["head_hash"] in txt
    assert "page 1 of " in txt


def test_lot_report_prints_signatures_with_name_time_meaning(client, auth):
    r = client.get(f"/api/lots/{NOVA_LOT}/report.pdf", headers=auth("admin"))
    assert r.status_code == 200
    txt = pdf_text(r.data)
    lot = client.get(f"/api/lots/{NOVA_LOT}", headers=auth("admin")).json
    sig = lot["signatures"][0]
    assert sig["meaning"] == "release"
    for fragment in (
        NOVA_LOT,
        "Electronic signatures",
        sig["printed_name"],
        sig["signed_at"],
        "release",
        "intact",
        "lot.release",
        "mycoplasma",
    ):
        assert fragment in txt, fragment
    for vial in lot["vials"]:
        assert vial["barcode"] in txt
    assert "Audit trail verification PASSED" in txt


def test_report_states_a_broken_chain(app, client, auth):
    tamper(app, "UPDATE audit_event SET reason = 'edited' WHERE seq = :s", s=5)
    r = client.get(f"/api/lots/{NOVA_LOT}/report.pdf", headers=auth("qa1"))
    assert r.status_code == 200
    txt = pdf_text(r.data)
    assert "Audit trail verification FAILED at seq 5" in txt
    assert "PASSED" not in txt


def test_cli_writes_the_pdf_and_needs_exactly_one_subject(runner, tmp_path):
    out = tmp_path / "lot.pdf"
    res = runner.invoke(
        args=["audit", "export", "--format", "pdf", "--lot", NOVA_LOT, "--output", str(out)]
    )
    assert res.exit_code == 0, res.output
    txt = pdf_text(out.read_bytes())
    assert NOVA_LOT in txt and "PASSED" in txt and "System (system" in txt
    for args in ([], ["--lot", NOVA_LOT, "--sample", PBMC]):
        bad = tmp_path / "bad.pdf"
        res = runner.invoke(
            args=["audit", "export", "--format", "pdf", *args, "--output", str(bad)]
        )
        assert res.exit_code != 0
        assert "exactly one of --sample" in res.output
        assert not bad.exists()
    res = runner.invoke(
        args=["audit", "export", "--format", "pdf", "--sample", "S26-999999-X", "-o", str(bad)]
    )
    assert res.exit_code == 1 and "no sample" in res.output and not bad.exists()


def test_client_viewer_sees_only_its_organisation(app, client, auth):
    viewer = auth("helix_viewer")
    nova = barcodes_of(app, "novacell") | {NOVA_LOT}
    helix = barcodes_of(app, "helix-bio") | {HELIX_LOT}
    # API: records and audit queries.
    assert client.get(f"/api/lots/{NOVA_LOT}", headers=viewer).status_code == 404
    for b in barcodes_of(app, "novacell"):
        assert client.get(f"/api/samples/{b}", headers=viewer).status_code == 404
        assert client.get(f"/api/samples/{b}/report.pdf", headers=viewer).status_code == 404
    assert client.get(f"/api/audit?lot={NOVA_LOT}", headers=viewer).status_code == 404
    events = client.get("/api/audit?limit=1000", headers=viewer).json["events"]
    seen = {e["entity_id"] for e in events}
    assert seen & helix and not seen & nova
    # CSV export of everything the viewer may see.
    r = client.get("/api/audit/export.csv", headers=viewer)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    body = r.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {row["entity_id"] for row in rows} == seen
    assert "novacell" not in body and not any(n in body for n in nova)
    # PDF: the other organisation's lot does not exist; its own report shows nothing of novacell.
    r = client.get(f"/api/lots/{NOVA_LOT}/report.pdf", headers=viewer)
    assert r.status_code == 404 and r.json["error"] == "unknown_lot"
    txt = pdf_text(client.get(f"/api/lots/{HELIX_LOT}/report.pdf", headers=viewer).data)
    assert HELIX_LOT in txt and not any(n in txt for n in nova)
    # QA at the centre sees both.
    all_csv = client.get("/api/audit/export.csv", headers=auth("qa1")).get_data(as_text=True)
    assert NOVA_LOT in all_csv and HELIX_LOT in all_csv
    assert verify(app).ok


def test_lot_report_shows_a_corrected_qc_result_with_the_value_it_replaced(client, auth):
    tech = auth("tech1")
    r = client.post(
        f"/api/lots/{HELIX_LOT}/qc",
        json={
            "test": "endotoxin",
            "result": "1.2 EU/mL",
            "reason": "re-read of the plate",
        },
        headers=tech,
    )
    assert r.status_code == 201, r.json
    txt = pdf_text(client.get(f"/api/lots/{HELIX_LOT}/report.pdf", headers=auth("qa1")).data)
    assert "QC endotoxin: 0.8 EU/mL -> 1.2 EU/mL (pass)" in txt
    assert "re-read of the plate" in txt
    assert "QC results updated" not in txt


def test_a_clients_report_does_not_state_the_centres_event_count(client, auth):
    qa = pdf_text(client.get(f"/api/lots/{HELIX_LOT}/report.pdf", headers=auth("qa1")).data)
    assert "events were recomputed" in qa and "head seq" in qa
    r = client.get(f"/api/lots/{HELIX_LOT}/report.pdf", headers=auth("helix_viewer"))
    assert r.status_code == 200
    txt = pdf_text(r.data)
    assert "Audit trail verification PASSED: the hash chain was recomputed and is intact" in txt
    assert "events were recomputed" not in txt and "head seq" not in txt
    assert "checkpoint of seq" not in txt and "signed checkpoint" in txt
