"""The print queue page: a failed batch is resumed, reprinted with a reason, or voided."""

from __future__ import annotations

from helpers import page_csrf, sign_in
from printing_util import add_printer, aliquots, job_row, printed_barcodes, worker

from printers.mock import PrinterSimulator


def test_failed_batch_resume_reprint_and_void_from_the_page(app, client, runner, auth):
    tech = auth("tech1")
    sim = PrinterSimulator()
    sim.start()
    try:
        add_printer(runner, "ZQ-WEB", sim.port)
        tubes = aliquots(client, tech, 5)
        sim.paper_out_after(2)
        job_id = client.post(
            "/api/labels", json={"barcodes": tubes, "printer": "ZQ-WEB"}, headers=tech
        ).json["id"]
        worker(app, "ZQ-WEB").run_once()
        assert (job_row(app, job_id).state, job_row(app, job_id).labels_printed) == ("failed", 2)

        web = app.test_client()
        sign_in(web, "tech1")
        queue = web.get("/print-queue").text
        assert (
            "Print the 3 that never printed" in queue and f"/print-queue/{job_id}/reprint" in queue
        )
        token = page_csrf(web)

        r = web.post(f"/print-queue/{job_id}/reprint", data={"csrf_token": token, "reason": ""})
        assert r.status_code == 302
        assert "give a reason" in web.get("/print-queue").text

        web.post(f"/print-queue/{job_id}/resume", data={"csrf_token": token})
        jobs = client.get("/api/print-jobs?printer=ZQ-WEB", headers=tech).json["jobs"]
        resumed_id = next(j["id"] for j in jobs if j["resume_of"] == job_id)
        resumed = client.get(f"/api/print-jobs/{resumed_id}", headers=tech).json
        assert [lab["barcode"] for lab in resumed["labels"]] == tubes[2:]
        assert not any(lab["reprint"] for lab in resumed["labels"])

        web.post(
            f"/print-queue/{resumed['id']}/void",
            data={"csrf_token": token, "reason": "stock swapped, print later"},
        )
        assert job_row(app, resumed["id"]).state == "voided"

        web.post(
            f"/print-queue/{job_id}/reprint",
            data={"csrf_token": token, "reason": "first two smudged"},
        )
        jobs = client.get("/api/print-jobs?printer=ZQ-WEB", headers=tech).json["jobs"]
        again_id = next(j["id"] for j in jobs if j["reprint_of"] == job_id)
        again = client.get(f"/api/print-jobs/{again_id}", headers=tech).json
        assert [lab["barcode"] for lab in again["labels"]] == tubes[:2]
        assert all(lab["reprint"] for lab in again["labels"])

        sim.clear_fault()
        worker(app, "ZQ-WEB").run_once()
        # Two printed, two reprinted (marked REPRINT); the voided three never printed.
        assert printed_barcodes(sim) == tubes[:2] + tubes[:2]
    finally:
        sim.stop()


def test_a_rack_of_labels_is_printed_from_the_samples_page(app, client, runner, auth):
    tech = auth("tech1")
    sim = PrinterSimulator()
    sim.start()
    try:
        add_printer(runner, "ZQ-RACK", sim.port)
        tubes = aliquots(client, tech, 12)
        web = app.test_client()
        sign_in(web, "tech1")
        listing = web.get("/samples?state=available").text
        assert 'name="barcodes"' in listing and "ZQ-RACK" in listing and "Print labels" in listing
        token = page_csrf(web)
        r = web.post(
            "/labels/print",
            data={
                "csrf_token": token,
                "barcodes": tubes,
                "printer": "ZQ-RACK",
                "template": "cryovial",
                "copies": "1",
                "back": "/samples",
            },
        )
        assert r.status_code == 302 and "/print-queue#job-" in r.location
        job_id = int(r.location.rsplit("-", 1)[1])
        assert job_row(app, job_id).labels_total == 12
        worker(app, "ZQ-RACK").run_once()
        assert job_row(app, job_id).state == "sent"
        assert printed_barcodes(sim) == tubes  # every label, in order, once

        # Nothing ticked, or an unknown printer: a clear message, nothing queued.
        before = len(client.get("/api/print-jobs?printer=ZQ-RACK", headers=tech).json["jobs"])
        web.post("/labels/print", data={"csrf_token": token, "printer": "ZQ-RACK"})
        assert "Tick the samples" in web.get("/samples").text
        web.post(
            "/labels/print", data={"csrf_token": token, "barcodes": tubes[:1], "printer": "NOPE"}
        )
        assert "Nothing was queued" in web.get("/samples").text
        after = len(client.get("/api/print-jobs?printer=ZQ-RACK", headers=tech).json["jobs"])
        assert after == before

        # The sample page prints its own label too.
        page = web.get(f"/samples/{tubes[0]}").text
        assert 'action="/labels/print"' in page
        viewer = app.test_client()
        sign_in(viewer, "helix_viewer")
        assert 'name="barcodes"' not in viewer.get("/samples").text
        r = viewer.post(
            "/labels/print",
            data={"csrf_token": page_csrf(viewer), "barcodes": tubes[:1], "printer": "ZQ-RACK"},
        )
        assert r.status_code in (403, 404)
    finally:
        sim.stop()
