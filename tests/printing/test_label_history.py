"""A tube's label printing is part of its record: history, audit filter, CSV export, PDF report."""

from __future__ import annotations

import csv
import io

import pytest
from helpers import pdf_text, register
from printing_util import add_printer, queue, worker

from lims import audit, reports
from lims.accounts import users
from lims.db import new_session


@pytest.fixture
def zebra(runner, sim) -> str:  # noqa: ANN001
    add_printer(runner, "Z1", sim.port)
    return "Z1"


def _printed_then_reprinted(app, client, tech, zebra) -> tuple[str, int, int]:  # noqa: ANN001
    """Return a sample's barcode, the job that printed its label and the job that reprinted it."""
    b = register(client, tech)["barcode"]
    other = register(client, tech)["barcode"]
    job = queue(client, tech, [b, other]).json["id"]
    worker(app, zebra).run_once()
    r = client.post(
        f"/api/print-jobs/{job}/reprint",
        json={"reason": "label smudged by ethanol", "barcodes": [b]},
        headers=tech,
    )
    assert r.status_code == 201, r.json
    worker(app, zebra).run_once()
    return b, job, r.json["id"]


def test_history_lists_the_label_jobs_of_a_sample_beside_its_custody_events(
    app, client, tech, zebra
):
    b, job, again = _printed_then_reprinted(app, client, tech, zebra)
    h = client.get(f"/api/samples/{b}/history", headers=tech).json
    # Custody events stay what the contract says they are.
    assert [e["action"] for e in h["events"]] == ["sample.register"]
    labels = [(e["entity_id"], e["action"], e["reason"]) for e in h["label_events"]]
    assert labels == [
        (str(job), "print_job.queue", None),
        (str(job), "print_job.send", None),
        (str(job), "print_job.print", None),
        (str(again), "print_job.reprint", "label smudged by ethanol"),
        (str(again), "print_job.send", None),
        (str(again), "print_job.print", None),
    ]
    # A tube never printed has none.
    fresh = register(client, tech)["barcode"]
    assert client.get(f"/api/samples/{fresh}/history", headers=tech).json["label_events"] == []


def test_qa_filter_export_and_report_of_a_sample_include_its_labels(app, client, tech, auth, zebra):
    b, job, again = _printed_then_reprinted(app, client, tech, zebra)
    qa = auth("qa1")
    events = client.get(f"/api/audit?sample={b}", headers=qa).json["events"]
    assert [(e["entity_type"], e["action"]) for e in events] == [
        ("sample", "sample.register"),
        ("print_job", "print_job.queue"),
        ("print_job", "print_job.send"),
        ("print_job", "print_job.print"),
        ("print_job", "print_job.reprint"),
        ("print_job", "print_job.send"),
        ("print_job", "print_job.print"),
    ]
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(f"/api/audit/export.csv?sample={b}", headers=qa).get_data(as_text=True)
            )
        )
    )
    assert {(r["entity_type"], r["entity_id"]) for r in rows} == {
        ("sample", b),
        ("print_job", str(job)),
        ("print_job", str(again)),
    }
    with new_session(app.extensions["lims"]["engine"]) as db:
        filters = reports.filters_for(db, users.system_actor(db), sample=b)
        assert audit.count_events(db, **filters) == len(rows) == 7
    pdf = client.get(f"/api/samples/{b}/report.pdf", headers=qa)
    assert pdf.status_code == 200
    text = pdf_text(pdf.data)
    assert f"print_job {again}" in text and "label smudged by ethanol" in text
    assert f"reprint of job {job}" in text and "2 label(s)" in text


HELIX_LOT, NOVA_LOT = "AAV9-2611-001", "LV-2611-002"


def test_a_client_sees_its_own_label_jobs_but_not_one_shared_with_another_organisation(
    app, client, auth, zebra
):
    helix, viewer, centre = auth("helix_tech"), auth("helix_viewer"), auth("tech1")
    mine = register(client, helix, project="HX-AAV9")["barcode"]
    own_job = queue(client, helix, [mine]).json["id"]
    # Centre staff label the client's tube and the client's own lot together: still theirs.
    with_lot = register(client, helix, project="HX-AAV9")["barcode"]
    theirs = queue(client, centre, [with_lot, HELIX_LOT])
    assert theirs.status_code == 201, theirs.json
    # Jobs that also label another organisation's tube or lot, or a centre box, name them.
    mixed = {}
    for other in ("tube", NOVA_LOT, "BOX-0002"):
        b = register(client, helix, project="HX-AAV9")["barcode"]
        barcodes = [b, register(client, centre)["barcode"] if other == "tube" else other]
        r = queue(client, centre, barcodes)
        assert r.status_code == 201, r.json
        mixed[b] = (r.json["id"], barcodes[1])
    worker(app, zebra).run_once()

    def label_jobs(b: str, who: dict) -> set[str]:  # noqa: ANN001
        r = client.get(f"/api/samples/{b}/history", headers=who)
        assert r.status_code == 200, r.json
        return {e["entity_id"] for e in r.json["label_events"]}

    assert label_jobs(mine, helix) == {str(own_job)}
    assert label_jobs(with_lot, helix) == {str(theirs.json["id"])}
    assert client.get(f"/api/print-jobs/{theirs.json['id']}", headers=helix).status_code == 200
    for b, (job, other) in mixed.items():
        assert label_jobs(b, helix) == set()
        assert label_jobs(b, centre) == {str(job)}
        assert client.get(f"/api/print-jobs/{job}", headers=helix).status_code == 404
        events = client.get(f"/api/audit?sample={b}", headers=viewer)
        assert events.status_code == 200
        assert [e["entity_type"] for e in events.json["events"]] == ["sample"]
        csv_text = client.get(f"/api/audit/export.csv?sample={b}", headers=viewer)
        assert csv_text.status_code == 200 and other not in csv_text.get_data(as_text=True)
        assert other in str(client.get(f"/api/audit?sample={b}", headers=auth("qa1")).json)
