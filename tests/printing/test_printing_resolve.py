"""After a printer fault: the operator resolves labels of unknown outcome; the rest print once."""

from __future__ import annotations

import json
import os

import pytest
from helpers import page_csrf, register, sign_in, verify
from printing_util import add_printer, aliquots, job_events, printed_barcodes, queue, worker

from printers.mock import PrinterSimulator


def get(client, headers, job_id):  # noqa: ANN001, ANN201
    r = client.get(f"/api/print-jobs/{job_id}", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def resolve(client, headers, job_id, **body):  # noqa: ANN001, ANN003, ANN201
    return client.post(f"/api/print-jobs/{job_id}/resolve", json=body, headers=headers)


def failed_job(client, tech, bench, *, copies=2, printed=1, unknown=3):  # noqa: ANN001, ANN201
    """Queue 3 tubes x copies on ZEBRA-B1 and report, as the bench's worker, a fault mid-job."""
    tubes = [register(client, tech)["barcode"] for _ in range(3)]
    job = client.post(
        "/api/labels",
        json={"barcodes": tubes, "printer": "ZEBRA-B1", "copies": copies},
        headers=tech,
    ).json
    assert client.post("/api/print-jobs/claim", json={"worker": "w"}, headers=bench).json["job"]
    r = client.post(f"/api/print-jobs/{job['id']}/start", json={"worker": "w"}, headers=bench)
    assert r.status_code == 200
    outcome = {
        "worker": "w",
        "sent": printed + unknown,
        "printed": printed,
        "unconfirmed": unknown,
        "error": "printer vanished (unplugged?)",
        "code": "io_error",
    }
    r = client.post(f"/api/print-jobs/{job['id']}/outcome", json=outcome, headers=bench)
    assert r.status_code == 200 and r.json["state"] == "failed", r.json
    return job["id"], tubes


@pytest.fixture
def tech(auth):  # noqa: ANN001, ANN201
    return auth("tech1")


@pytest.fixture
def bench(auth):  # noqa: ANN001, ANN201
    return auth("tech1", "BENCH-B1")


def test_unplugged_mid_job_scan_back_then_the_rest_print_once_as_originals(
    app, client, runner, tech, tmp_path
):
    # The printer's path is a stable link (as a udev rule gives a bench PC): replugged, the
    # printer comes back under it.
    link = tmp_path / "zebra"
    # Throttled to a serial line's pace, so the unplug comes while labels are on the way.
    first = PrinterSimulator(baud=115200).start()
    os.symlink(first.port, link)
    add_printer(runner, "Z1", str(link))
    barcodes = aliquots(client, tech, 12)
    job_id = queue(client, tech, barcodes).json["id"]
    first.unplug_after(5)
    worker(app, "Z1").run_once()
    came_out = printed_barcodes(first)  # what the operator finds in the printer's tray
    first.stop()

    job = get(client, tech, job_id)
    assert job["state"] == "failed" and job["labels_unconfirmed"] > 0, job
    unknown = [lab["barcode"] for lab in job["labels"] if lab["status"] == "unknown"]
    printed = [lab["barcode"] for lab in job["labels"] if lab["status"] == "printed"]
    # Nothing can be resumed while some labels may or may not have printed.
    if job["labels_printed"] + job["labels_unconfirmed"] == 12:
        r = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
        assert r.status_code == 422 and r.json["error"] == "nothing_to_resume"

    # The operator scans back the labels of unknown outcome found in the tray.
    scanned = [b for b in came_out if b in unknown]
    r = resolve(client, tech, job_id, scanned=[b.lower() for b in scanned], reason="tray checked")
    assert r.status_code == 200, r.json
    statuses = {lab["barcode"]: lab["status"] for lab in r.json["labels"]}
    assert {b for b in barcodes if statuses[b] == "printed"} == set(printed) | set(scanned)
    never = [b for b in barcodes if statuses[b] == "not_printed"]
    assert scanned and never  # some came out, some did not: both kinds get resolved
    assert set(never) == set(barcodes) - set(came_out)
    assert r.json["labels_unconfirmed"] == 0 and r.json["error"].startswith("outcome resolved")
    ev = job_events(app, job_id)[-1]
    assert (ev.action, ev.actor, ev.reason) == ("print_job.resolve", "tech1", "tray checked")
    after = json.loads(ev.after)
    assert (after["method"], after["printed"]) == ("scan", scanned)
    assert after["not_printed"] == [b for b in unknown if b not in scanned]
    # Resolved once: there is nothing unknown left to resolve.
    again = resolve(client, tech, job_id, printed=0)
    assert again.status_code == 422 and again.json["error"] == "nothing_to_resolve"

    # Plugged back in; the labels that never printed print as originals, each once.
    with PrinterSimulator() as second:
        os.unlink(link)
        os.symlink(second.port, link)
        r = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
        assert r.status_code == 201, r.json
        assert [lab["barcode"] for lab in r.json["labels"]] == never
        assert not any(lab["reprint"] for lab in r.json["labels"])
        worker(app, "Z1").run_once()
        assert printed_barcodes(second) == never
        assert not any("REPRINT" in label.texts for label in second.printed)
    assert sorted(came_out + never) == sorted(barcodes)  # every tube labelled exactly once
    assert verify(app).ok


def test_scan_back_matches_label_by_label_and_refuses_what_it_cannot_place(
    app, client, tech, bench
):
    job_id, (a, b, c) = failed_job(client, tech, bench)
    # Labels: 1 A printed; 2 A, 3 B, 4 B unknown; 5 C, 6 C never printed.
    job = get(client, tech, job_id)
    assert [lab["status"] for lab in job["labels"]] == ["printed"] + ["unknown"] * 3 + [
        "not_printed"
    ] * 2
    for body, code, status in (
        ({}, "resolve_how", 400),
        ({"scanned": [a], "printed": 1}, "resolve_how", 400),
        ({"scanned": ["BOX-0001"]}, "not_in_job", 422),
        ({"scanned": [c]}, "not_unknown", 422),
        ({"scanned": [a, a]}, "scanned_too_often", 422),
        ({"printed": 4}, "bad_count", 422),
        ({"printed": -1}, None, 400),
    ):
        r = resolve(client, tech, job_id, **body)
        assert r.status_code == status, (body, r.json)
        if code:
            assert r.json["error"] == code, (body, r.json)
    assert [e.action for e in job_events(app, job_id)][-1] == "print_job.fail"  # nothing written


def test_resolved_printed_is_an_original_printed_and_the_rest_resume_without_reprint(
    app, client, auth, tech, bench
):
    job_id, (a, b, c) = failed_job(client, tech, bench)
    nova = client.post(
        f"/api/print-jobs/{job_id}/resolve", json={"printed": 0}, headers=auth("nova_viewer")
    )
    assert nova.status_code in (403, 404)
    r = resolve(client, tech, job_id, scanned=[b.lower(), a])
    assert r.status_code == 200, r.json
    assert [(lab["barcode"], lab["status"]) for lab in r.json["labels"]] == [
        (a, "printed"),
        (a, "printed"),
        (b, "printed"),
        (b, "not_printed"),
        (c, "not_printed"),
        (c, "not_printed"),
    ]
    assert (r.json["labels_printed"], r.json["labels_unconfirmed"]) == (3, 0)
    ev = job_events(app, job_id)[-1]
    after = json.loads(ev.after)
    assert ev.action == "print_job.resolve" and after["labels"] == {
        "2": True,
        "3": True,
        "4": False,
    }
    assert (after["printed"], after["not_printed"]) == ([a, b], [b])

    rest = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
    assert rest.status_code == 201, rest.json
    assert [(lab["barcode"], lab["reprint"]) for lab in rest.json["labels"]] == [
        (b, False),
        (c, False),
        (c, False),
    ]
    assert job_events(app, rest.json["id"])[0].action == "print_job.resume"
    # Never a silent duplicate: a tube resolved printed gets another label only as a reprint.
    dup = client.post("/api/labels", json={"barcodes": [a], "printer": "ZEBRA-B1"}, headers=tech)
    assert dup.status_code == 409 and dup.json["error"] == "already_printed"
    no_reason = client.post(f"/api/print-jobs/{job_id}/reprint", json={"barcodes": [a]})
    assert no_reason.status_code in (400, 401)
    rep = client.post(
        f"/api/print-jobs/{job_id}/reprint",
        json={"barcodes": [a], "reason": "found torn in the tray"},
        headers=tech,
    )
    assert rep.status_code == 201 and all(lab["reprint"] for lab in rep.json["labels"])
    assert verify(app).ok


def test_resume_before_resolving_then_resume_again_for_the_labels_resolved_not_printed(
    app, client, tech, bench
):
    job_id, (a, b, c) = failed_job(client, tech, bench)
    first = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
    assert [lab["barcode"] for lab in first.json["labels"]] == [c, c]
    again = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
    assert again.status_code == 409 and again.json["error"] == "already_resumed"
    # By count: none of the three came out (the tray was empty).
    r = resolve(client, tech, job_id, printed=0)
    assert r.status_code == 200 and json.loads(job_events(app, job_id)[-1].after)["method"] == (
        "count"
    )
    second = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
    assert second.status_code == 201, second.json
    assert [(lab["barcode"], lab["reprint"]) for lab in second.json["labels"]] == [
        (a, False),
        (b, False),
        (b, False),
    ]
    third = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
    assert third.status_code == 409 and third.json["error"] == "already_resumed"


def test_a_late_worker_report_cannot_overwrite_what_the_operator_found(app, client, tech, bench):
    job_id, _ = failed_job(client, tech, bench)
    assert resolve(client, tech, job_id, printed=2).status_code == 200
    late = {"worker": "w", "sent": 6, "printed": 6}
    r = client.post(f"/api/print-jobs/{job_id}/outcome", json=late, headers=bench)
    assert r.status_code == 409
    job = get(client, tech, job_id)
    assert (job["labels_printed"], job["state"]) == (3, "failed")


def test_the_print_queue_page_resolves_by_scan_and_by_count(app, client, tech, bench):
    job_id, (a, b, c) = failed_job(client, tech, bench)
    sign_in(client, "tech1")
    page = client.get("/print-queue").get_data(as_text=True)
    assert f'id="resolve-{job_id}"' in page and "3 label(s) of unknown outcome" in page
    token = page_csrf(client)
    bad = client.post(
        f"/print-queue/{job_id}/resolve",
        data={"csrf_token": token, "how": "scan", "scanned": "S26-999999-X\n"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "is not a label of job" in bad
    ok = client.post(
        f"/print-queue/{job_id}/resolve",
        data={"csrf_token": token, "how": "scan", "scanned": f"{a}\r\n\r\n{b}\r\n"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "2 of 3 printed; 1 never printed: resume the job to print them" in ok
    assert f'id="resolve-{job_id}"' not in ok  # resolved: the form is gone
    assert "that never printed" in ok  # and the resume button is offered
    job = get(client, tech, job_id)
    assert [lab["status"] for lab in job["labels"]][1:4] == ["printed", "printed", "not_printed"]


def test_the_page_resolves_by_count(app, client, tech, bench):
    job_id, _ = failed_job(client, tech, bench)
    sign_in(client, "tech1")
    token = page_csrf(client)
    r = client.post(
        f"/print-queue/{job_id}/resolve",
        data={"csrf_token": token, "how": "count", "printed": "x"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "a number" in r
    r = client.post(
        f"/print-queue/{job_id}/resolve",
        data={"csrf_token": token, "how": "count", "printed": "1"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "1 of 3 printed; 2 never printed" in r
    assert get(client, tech, job_id)["labels_printed"] == 2
