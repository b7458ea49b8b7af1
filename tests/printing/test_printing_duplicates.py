"""One original label per sample: a second one is a reprint (with a reason, marked REPRINT)."""

from __future__ import annotations

from helpers import register
from printing_util import add_printer, job_events, printed_barcodes, queue, worker

from printers.mock import PrinterSimulator


def job_ids(client, headers) -> list[int]:  # noqa: ANN001
    return [j["id"] for j in client.get("/api/print-jobs", headers=headers).json["jobs"]]


def test_a_sample_queued_twice_is_refused_and_names_the_job(app, client, tech):
    barcode = register(client, tech)["barcode"]
    first = queue(client, tech, [barcode], printer="ZEBRA-B1")
    assert first.status_code == 201, first.json
    job_id = first.json["id"]

    again = queue(client, tech, [barcode], printer="ZEBRA-B1")

    assert again.status_code == 409, again.json
    assert again.json["error"] == "already_printed"
    assert again.json["job"] == job_id and again.json["barcode"] == barcode
    assert f"print job {job_id}" in again.json["message"]
    assert "reprint" in again.json["message"] and "reason" in again.json["message"]
    assert job_ids(client, tech) == [job_id]
    assert [e.action for e in job_events(app, job_id)] == ["print_job.queue"]


def test_whole_request_is_refused_when_one_sample_has_a_label(client, tech):
    fresh, taken = (register(client, tech)["barcode"] for _ in range(2))
    job_id = queue(client, tech, [taken], printer="ZEBRA-B1").json["id"]

    r = queue(client, tech, [fresh, taken], printer="ZEBRA-B1")

    assert r.status_code == 409 and r.json["error"] == "already_printed"
    assert r.json["conflicts"] == [
        {"barcode": taken, "job": job_id, "state": "queued", "status": "pending"}
    ]
    assert job_ids(client, tech) == [job_id]  # nothing queued for the fresh one either


def test_a_printed_label_is_reprinted_not_queued_again(app, client, runner, tech, sim):
    add_printer(runner, "Z1", sim.port)
    barcode = register(client, tech)["barcode"]
    job_id = queue(client, tech, [barcode], copies=2).json["id"]  # copies: the intended way
    worker(app, "Z1").run_once()
    assert printed_barcodes(sim) == [barcode, barcode]

    r = queue(client, tech, [barcode])
    assert r.status_code == 409 and r.json["error"] == "already_printed"
    # The message is read at the bench too: it says what to do, the body names the job.
    assert f"reprint job {job_id} with a reason" in r.json["message"] and r.json["job"] == job_id
    assert r.json["conflicts"][0]["status"] == "printed"

    r = client.post(
        f"/api/print-jobs/{job_id}/reprint", json={"reason": "label torn"}, headers=tech
    )
    assert r.status_code == 201
    worker(app, "Z1").run_once()
    assert printed_barcodes(sim) == [barcode] * 4
    assert [("REPRINT" in lab.texts) for lab in sim.printed] == [False, False, True, True]
    # While the reprint waits, and after it printed, a new original is still refused.
    assert queue(client, tech, [barcode]).status_code == 409


def test_a_voided_job_frees_its_labels(client, tech):
    barcode = register(client, tech)["barcode"]
    job_id = queue(client, tech, [barcode], printer="ZEBRA-B1").json["id"]
    r = client.post(
        f"/api/print-jobs/{job_id}/void", json={"reason": "wrong printer"}, headers=tech
    )
    assert r.status_code == 200

    assert queue(client, tech, [barcode], printer="ZEBRA-B1").status_code == 201


def test_lot_and_box_labels_are_not_restricted(client, tech):
    for code in ("AAV9-2611-001", "BOX-0002"):
        for _ in range(2):
            r = queue(client, tech, [code], printer="ZEBRA-B1")
            assert r.status_code == 201, r.json


def test_labels_a_failed_job_never_printed_go_elsewhere_once(app, client, runner, tech, sim):
    add_printer(runner, "Z1", sim.port)
    other = PrinterSimulator().start()
    try:
        add_printer(runner, "Z2", other.port)
        barcodes = [register(client, tech)["barcode"] for _ in range(4)]
        job_id = queue(client, tech, barcodes).json["id"]
        sim.paper_out_after(1)
        worker(app, "Z1").run_once()
        job = client.get(f"/api/print-jobs/{job_id}", headers=tech).json
        assert [lab["status"] for lab in job["labels"]] == ["printed"] + ["not_printed"] * 3

        # The printed one is refused; one that certainly never printed may go to another printer.
        r = queue(client, tech, [barcodes[0]], printer="Z2")
        assert r.status_code == 409 and r.json["conflicts"][0]["status"] == "printed"
        moved = queue(client, tech, [barcodes[3]], printer="Z2")
        assert moved.status_code == 201, moved.json
        # ...once: it is now waiting in that job.
        assert queue(client, tech, [barcodes[3]], printer="Z2").status_code == 409

        # Resume prints the rest on Z1, leaving out the one moved to Z2.
        rest = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
        assert rest.status_code == 201, rest.json
        assert [lab["barcode"] for lab in rest.json["labels"]] == barcodes[1:3]
        resume_event = job_events(app, rest.json["id"])[0]
        assert f'"skipped":[{{"barcode":"{barcodes[3]}","job":{moved.json["id"]}}}]' in (
            resume_event.after
        )
        sim.clear_fault()
        worker(app, "Z1").run_once()
        worker(app, "Z2").run_once()
        assert printed_barcodes(sim) == barcodes[:3]
        assert printed_barcodes(other) == [barcodes[3]]
    finally:
        other.stop()


def test_resume_with_every_label_taken_elsewhere_says_where(app, client, runner, tech, sim):
    add_printer(runner, "Z1", sim.port)
    barcodes = [register(client, tech)["barcode"] for _ in range(2)]
    job_id = queue(client, tech, barcodes).json["id"]
    sim.paper_out_after(1)
    worker(app, "Z1").run_once()
    moved = queue(client, tech, [barcodes[1]], printer="ZEBRA-B1")
    assert moved.status_code == 201, moved.json

    r = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)

    assert r.status_code == 422 and r.json["error"] == "nothing_to_resume"
    assert f"job {moved.json['id']}" in r.json["message"]


def test_resume_prints_the_missing_copy_of_a_partly_printed_sample(app, client, runner, tech, sim):
    add_printer(runner, "Z1", sim.port)
    barcode = register(client, tech)["barcode"]
    job_id = queue(client, tech, [barcode], copies=2).json["id"]
    sim.paper_out_after(1)
    worker(app, "Z1").run_once()

    r = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)

    # Its own printed first copy does not make the second copy a duplicate.
    assert r.status_code == 201, r.json
    assert [lab["barcode"] for lab in r.json["labels"]] == [barcode]
    sim.clear_fault()
    worker(app, "Z1").run_once()
    assert printed_barcodes(sim) == [barcode, barcode]


def test_a_job_whose_last_label_emptied_the_roll_is_sent_not_failed(app, client, runner, tech, sim):
    add_printer(runner, "Z1", sim.port)
    barcodes = [register(client, tech)["barcode"] for _ in range(3)]
    job_id = queue(client, tech, barcodes).json["id"]
    sim.paper_out_after(3)  # the roll runs out with the third label
    worker(app, "Z1").run_once()
    job = client.get(f"/api/print-jobs/{job_id}", headers=tech).json
    assert printed_barcodes(sim) == barcodes
    # Done, with the printer's state for the next job; nothing invites a reprint.
    assert job["state"] == "sent" and job["labels_printed"] == 3
    assert job["error"].startswith("all 3 printed; then the printer reported:")
    assert "paper out" in job["error"]
    assert [lab["status"] for lab in job["labels"]] == ["printed"] * 3
    assert [e.action for e in job_events(app, job_id)][-1] == "print_job.print"
