"""The station agent prints its bench's label jobs: server (real HTTP) -> agent -> pty printer."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from printing_util import aliquots, job_events, printed_barcodes

from agent.station import StationAgent, station_cli
from printers.mock import PrinterSimulator

STATION = "BENCH-B1"  # the demo printer ZEBRA-B1 belongs to this bench


@pytest.fixture
def printer():  # noqa: ANN201
    sim = PrinterSimulator()
    sim.start()
    yield sim
    sim.stop()


def _wait_job(client, headers, job_id: int, states: set[str], timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/print-jobs/{job_id}", headers=headers).json
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {job['state']}")


def test_agent_claims_prints_and_reports_its_benchs_jobs(app, client, auth, server, printer):
    tech = auth("tech1")
    tubes = aliquots(client, tech, 5)
    r = client.post("/api/labels", json={"barcodes": tubes, "printer": "ZEBRA-B1"}, headers=tech)
    assert r.status_code == 201, r.json
    job_id = r.json["id"]
    token = auth("admin", STATION)["Authorization"].split()[-1]
    agent = StationAgent(server.url, token, STATION)
    agent.print_worker = agent.printer_worker({"ZEBRA-B1": printer.port})
    agent.start()
    try:
        job = _wait_job(client, tech, job_id, {"sent", "failed"})
    finally:
        agent.stop()
    assert job["state"] == "sent" and job["labels_printed"] == 5
    assert printed_barcodes(printer) == tubes
    actions = [e.action for e in job_events(app, job_id)]
    assert actions[0] == "print_job.queue" and "print_job.print" in actions


def test_agent_does_not_send_while_the_printer_is_silent(app, client, auth, server, printer):
    tech = auth("tech1")
    tubes = aliquots(client, tech, 2)
    job_id = client.post(
        "/api/labels", json={"barcodes": tubes, "printer": "ZEBRA-B1"}, headers=tech
    ).json["id"]
    printer.head_open(True)
    token = auth("admin", STATION)["Authorization"].split()[-1]
    agent = StationAgent(server.url, token, STATION)
    agent.print_worker = agent.printer_worker({"ZEBRA-B1": printer.port})
    agent.start()
    try:
        job = _wait_job(client, tech, job_id, {"queued"})
        deadline = time.monotonic() + 10
        while "not ready" not in (job.get("error") or "") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/api/print-jobs/{job_id}", headers=tech).json
        assert job["state"] == "queued" and "not ready" in job["error"]
        assert printer.printed == []
        printer.head_open(False)  # closed again: the waiting job prints, once
        job = _wait_job(client, tech, job_id, {"sent", "failed"})
    finally:
        agent.stop()
    assert job["state"] == "sent" and printed_barcodes(printer) == tubes


def test_printer_option_needs_name_equals_url():
    result = CliRunner().invoke(
        station_cli,
        ["run", STATION, "--server", "http://127.0.0.1:1", "--token", "t", "--printer", "ZEBRA-B1"],
    )
    assert result.exit_code == 2 and "NAME=URL" in result.output
