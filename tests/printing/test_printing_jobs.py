"""Print jobs end to end: API -> database queue -> worker -> real pyserial -> simulated printer."""

from __future__ import annotations

import pytest
from helpers import register
from printing_util import (
    add_printer,
    aliquots,
    job_events,
    job_row,
    printed_barcodes,
    queue,
    worker,
)

from printers.zpl import TEMPLATES


@pytest.fixture
def zebra(runner, sim) -> str:
    """A 203 dpi printer in the database whose URL is the simulator's pty."""
    add_printer(runner, "Z1", sim.port)
    return "Z1"


def get(client, headers, job_id):  # noqa: ANN001, ANN201
    r = client.get(f"/api/print-jobs/{job_id}", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_prints_each_sample_barcode(app, client, runner, tech, sim, name):
    add_printer(runner, "ZT", sim.port, dpi=TEMPLATES[name].dpi)
    barcodes = [register(client, tech)["barcode"] for _ in range(3)]
    r = queue(client, tech, barcodes, printer="ZT", template=name.rsplit("-", 1)[0])
    assert r.status_code == 201, r.json
    assert r.json["template"] == name and r.json["jobs"][0]["id"] == r.json["id"]

    reports = worker(app, "ZT").run_once()

    assert [rep.outcome["error"] for rep in reports] == [None]
    job = get(client, tech, r.json["id"])
    assert job["state"] == "sent" and job["labels_printed"] == 3
    # Every symbol on every label (Data Matrix and/or Code 128) carries the sample's barcode.
    assert [{data for _kind, data in label.barcodes} for label in sim.printed] == [
        {b} for b in barcodes
    ]
    assert [label.texts[0] for label in sim.printed] == barcodes


def test_96_label_job_arrives_complete_in_order(app, client, tech, sim, zebra):
    barcodes = aliquots(client, tech, 96)
    r = queue(client, tech, barcodes)
    assert r.status_code == 201 and r.json["labels_total"] == 96

    worker(app, zebra).run_once()

    assert printed_barcodes(sim) == barcodes
    job = get(client, tech, r.json["id"])
    assert (job["state"], job["labels_printed"], job["error"]) == ("sent", 96, None)
    assert all(lab["status"] == "printed" for lab in job["labels"])
    assert [e.action for e in job_events(app, r.json["id"])] == [
        "print_job.queue",
        "print_job.send",
        "print_job.print",
    ]
    # A second pass finds nothing to do: a sent job is never sent again.
    assert worker(app, zebra).run_once() == []
    assert sim.formats_received == 96


def test_paper_out_after_40_then_resume_prints_the_rest_once(app, client, tech, sim, zebra):
    barcodes = aliquots(client, tech, 96)
    job_id = queue(client, tech, barcodes).json["id"]
    sim.paper_out_after(40)

    worker(app, zebra).run_once()

    job = get(client, tech, job_id)
    assert job["state"] == "failed"
    assert (job["labels_printed"], job["labels_unconfirmed"], job["labels_remaining"]) == (
        40,
        0,
        56,
    )
    assert "paper out" in job["error"] and "41-96 never printed" in job["error"]
    assert [lab["status"] for lab in job["labels"]] == ["printed"] * 40 + ["not_printed"] * 56
    assert printed_barcodes(sim) == barcodes[:40]
    fail = job_events(app, job_id)[-1]
    assert fail.action == "print_job.fail" and "paper out" in fail.reason

    # The rest as a new job; while the paper is out it waits, with the reason on the job.
    r = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
    assert r.status_code == 201, r.json
    rest = r.json
    assert rest["resume_of"] == job_id and rest["reprint_of"] is None
    assert [lab["barcode"] for lab in rest["labels"]] == barcodes[40:]
    assert not any(lab["reprint"] for lab in rest["labels"])
    again = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
    assert again.status_code == 409 and again.json["error"] == "already_resumed"

    worker(app, zebra).run_once()
    waiting = get(client, tech, rest["id"])
    assert waiting["state"] == "queued" and "paper out" in waiting["error"]
    assert len(sim.printed) == 40

    sim.clear_fault()
    worker(app, zebra).run_once()

    assert get(client, tech, rest["id"])["state"] == "sent"
    printed = printed_barcodes(sim)
    assert sorted(printed) == sorted(barcodes) and len(printed) == 96  # each exactly once
    assert printed == barcodes  # and in order
    assert not any("REPRINT" in label.texts for label in sim.printed)
    assert [e.action for e in job_events(app, rest["id"])] == [
        "print_job.resume",
        "print_job.wait",
        "print_job.send",
        "print_job.print",
    ]


def test_head_open_printer_gets_nothing_and_job_waits(app, client, tech, sim, zebra):
    barcodes = [register(client, tech)["barcode"]]
    job_id = queue(client, tech, barcodes).json["id"]
    sim.head_open(True)

    w = worker(app, zebra)
    w.run_once()
    w.run_once()

    job = get(client, tech, job_id)
    assert job["state"] == "queued" and job["labels_printed"] == 0
    assert job["error"].startswith("printer not ready:") and "no answer" in job["error"]
    assert b"^XA" not in bytes(sim.raw) and sim.formats_received == 0
    # The reason is recorded once, not once per poll.
    assert [e.action for e in job_events(app, job_id)] == ["print_job.queue", "print_job.wait"]

    sim.head_open(False)
    w.run_once()
    job = get(client, tech, job_id)
    assert (job["state"], job["error"]) == ("sent", None)
    assert printed_barcodes(sim) == barcodes


def test_missing_printer_port_leaves_job_queued(app, client, runner, tech):
    add_printer(runner, "GONE", "/dev/nonexistent-printer")
    job_id = queue(client, tech, [register(client, tech)["barcode"]], printer="GONE").json["id"]

    worker(app, "GONE").run_once()

    job = get(client, tech, job_id)
    assert job["state"] == "queued"
    assert "printer not ready" in job["error"] and "cannot open" in job["error"]


def test_unplugged_mid_job_is_failed_with_unknown_labels(app, client, tech, sim, zebra):
    barcodes = aliquots(client, tech, 20)
    job_id = queue(client, tech, barcodes).json["id"]
    sim.unplug_after(5)

    worker(app, zebra).run_once()

    job = get(client, tech, job_id)
    assert job["state"] == "failed"
    assert job["labels_printed"] + job["labels_unconfirmed"] <= 20
    assert job["labels_unconfirmed"] > 0 and "check the printer" in job["error"]
    # Labels that may have printed are never resent silently: resume prints only the rest.
    r = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
    known = job["labels_printed"] + job["labels_unconfirmed"]
    if known < 20:
        assert r.status_code == 201
        assert [lab["barcode"] for lab in r.json["labels"]] == barcodes[known:]
    else:
        assert r.status_code == 422 and r.json["error"] == "nothing_to_resume"


def test_reprint_needs_reason_says_reprint_and_links(app, client, tech, sim, zebra):
    barcodes = [register(client, tech)["barcode"] for _ in range(2)]
    job_id = queue(client, tech, barcodes).json["id"]
    worker(app, zebra).run_once()

    assert (
        client.post(f"/api/print-jobs/{job_id}/reprint", json={}, headers=tech).status_code == 400
    )
    blank = client.post(f"/api/print-jobs/{job_id}/reprint", json={"reason": "  "}, headers=tech)
    assert blank.status_code == 422 and blank.json["error"] == "reason_required"

    r = client.post(
        f"/api/print-jobs/{job_id}/reprint",
        json={"reason": "label smudged by ethanol", "barcodes": [barcodes[1]]},
        headers=tech,
    )
    assert r.status_code == 201, r.json
    assert r.json["reprint_of"] == job_id and r.json["reason"] == "label smudged by ethanol"
    assert [(lab["barcode"], lab["reprint"]) for lab in r.json["labels"]] == [(barcodes[1], True)]

    worker(app, zebra).run_once()

    assert printed_barcodes(sim) == [*barcodes, barcodes[1]]
    assert "REPRINT" in sim.printed[-1].texts
    assert "REPRINT" not in sim.printed[0].texts
    ev = job_events(app, r.json["id"])[0]
    assert ev.action == "print_job.reprint" and ev.reason == "label smudged by ethanol"
    assert f'"reprint_of":{job_id}' in ev.after


def test_reprint_refuses_jobs_that_never_printed(client, tech, zebra):
    job_id = queue(client, tech, [register(client, tech)["barcode"]]).json["id"]
    r = client.post(f"/api/print-jobs/{job_id}/reprint", json={"reason": "x"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "not_reprintable"


def test_void_a_queued_job(app, client, tech, sim, zebra):
    job_id = queue(client, tech, [register(client, tech)["barcode"]]).json["id"]
    assert client.post(f"/api/print-jobs/{job_id}/void", json={}, headers=tech).status_code == 400

    r = client.post(
        f"/api/print-jobs/{job_id}/void", json={"reason": "wrong sample picked"}, headers=tech
    )
    assert r.status_code == 200 and r.json["state"] == "voided"
    worker(app, zebra).run_once()
    assert sim.formats_received == 0
    ev = job_events(app, job_id)[-1]
    assert (ev.action, ev.reason) == ("print_job.void", "wrong sample picked")

    again = client.post(f"/api/print-jobs/{job_id}/void", json={"reason": "x"}, headers=tech)
    assert again.status_code == 422 and again.json["error"] == "not_voidable"


def test_bad_requests_queue_nothing(app, client, auth, tech, zebra):
    mine = register(client, tech)["barcode"]
    helix = auth("helix_tech")
    before = len(client.get("/api/print-jobs", headers=tech).json["jobs"])

    r = queue(client, tech, [mine], printer="NOPE")
    assert r.status_code == 404 and r.json["error"] == "unknown_printer"
    r = queue(client, tech, [mine, "S26-999999-Z"])
    assert r.status_code == 404 and r.json["error"] == "unknown_barcode"
    # A centre sample does not exist for a client organisation's technician.
    r = queue(client, helix, [mine])
    assert r.status_code == 404 and r.json["error"] == "unknown_barcode"
    r = queue(client, tech, [mine, mine])
    assert r.status_code == 422 and r.json["error"] == "duplicate_barcode"
    r = queue(client, tech, [mine], template="no-such-stock")
    assert r.status_code == 422 and r.json["error"] == "unknown_template"
    r = queue(client, tech, [mine], template="cryovial-300")
    assert r.status_code == 422 and r.json["error"] == "template_dpi_mismatch"
    r = queue(client, auth("helix_viewer"), [mine])
    assert r.status_code == 403
    assert client.get("/api/print-jobs", headers=auth("helix_viewer")).status_code == 403
    r = client.post("/api/labels", json={"barcodes": [], "printer": "Z1"}, headers=tech)
    assert r.status_code == 400

    after = len(client.get("/api/print-jobs", headers=tech).json["jobs"])
    assert after == before


def test_label_that_does_not_fit_is_refused_with_the_reason(app, client, runner, tech, sim):
    add_printer(runner, "Z300", sim.port, dpi=300)
    # The room's long name is too wide for a cryovial label, at 300 dpi as at 203.
    r = queue(client, tech, ["RM-C1"], printer="Z300", template="cryovial")
    assert r.status_code == 422, r.json
    assert r.json["error"] == "label_does_not_fit" and r.json["field"] == "title"
    assert "title: text 'Cleanroom C1 (rented suite)'" in r.json["message"]
    assert client.get("/api/print-jobs?printer=Z300", headers=tech).json["jobs"] == []
    # The demo's AAV9 vial fits a 2 mL tube label at 300 dpi as it does at 203.
    vial = client.get("/api/samples?lot=AAV9-2611-001&limit=1", headers=tech).json["samples"][0]
    r = queue(
        client,
        tech,
        [vial["barcode"]],
        printer="Z300",
        template="tube-2ml",
        stock_override="cryovial stock out; the vial's label checked on 2 mL tube stock",
    )
    assert r.status_code == 201 and r.json["template"] == "tube-2ml-300", r.json


def test_other_org_job_is_404_and_list_filters(app, client, auth, tech, sim, zebra):
    job_id = queue(client, tech, [register(client, tech)["barcode"]]).json["id"]
    helix = auth("helix_tech")
    assert client.get(f"/api/print-jobs/{job_id}", headers=helix).status_code == 404
    r = client.post(f"/api/print-jobs/{job_id}/void", json={"reason": "x"}, headers=helix)
    assert r.status_code == 404
    listed = client.get("/api/print-jobs?printer=Z1&state=queued", headers=tech).json["jobs"]
    assert [j["id"] for j in listed] == [job_id]
    assert client.get("/api/print-jobs?state=printing", headers=tech).status_code == 400
    assert job_row(app, job_id).state == "queued"


def test_printer_addresses_are_shown_to_centre_lab_staff_only(client, runner, auth):
    add_printer(runner, "ZNET", "socket://10.20.30.40:9100", station="BENCH-QC")
    for user in ("tech1", "qa1", "admin"):
        printers = client.get("/api/printers", headers=auth(user)).json["printers"]
        znet = next(p for p in printers if p["name"] == "ZNET")
        assert znet["url"] == "socket://10.20.30.40:9100" and znet["baud"] == 9600
    for user in ("helix_viewer", "nova_viewer", "helix_tech"):
        r = client.get("/api/printers", headers=auth(user))
        assert r.status_code == 200
        assert "10.20.30.40" not in r.get_data(as_text=True)
        znet = next(p for p in r.json["printers"] if p["name"] == "ZNET")
        # Enough to choose a printer: its name, bench and resolution.
        assert (znet["station"], znet["dpi"], znet["active"]) == ("BENCH-QC", 203, True)
        assert not {"url", "baud", "flow"} & znet.keys()
