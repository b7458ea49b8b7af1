"""The demo centre shows an executed batch record: a newcomer opens it from the lot's page."""

from __future__ import annotations

from helpers import sign_in

LOT = "AAV9-2611-003"


def test_the_demo_has_a_lot_with_an_executed_verified_and_reviewed_batch_record(client, auth):  # noqa: ANN001
    qa1 = auth("qa1")
    rec = client.get(f"/api/lots/{LOT}/batch-record", headers=qa1).json
    assert rec["template"] == "AAV-TTX-2L" and rec["complete"] is True
    assert [(s["operator"], s["verifier"]) for s in rec["steps"]] == [
        ("tech1", None),
        ("tech1", "tech2"),
        ("tech2", "tech1"),
    ]
    assert all(p["in_range"] for s in rec["steps"] for p in s["parameters"])
    assert rec["review"]["reviewed_by"] == "qa1"
    made = client.get(f"/api/lots/{LOT}/made-from", headers=qa1).json
    assert len(made["materials"]) == 5
    assert client.get(f"/api/lots/{LOT}", headers=qa1).json["state"] == "quarantine"
    sign_in(client, "tech1")
    page = client.get(f"/lots/{LOT}").text
    assert 'id="batch-steps"' in page and "Transfect" in page and "QA review signed by" in page
