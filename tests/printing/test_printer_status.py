"""Idle printers are asked for their status (~HS): by the in-process worker, and by a station
agent that reports it over HTTP. The queue page and the printer list show it with its age."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta

from helpers import register, sign_in
from printer_sim_util import sample_contents
from printing_util import add_printer, queue, worker
from sqlmodel import col, select
from test_printing_worker import http_call

from agent.printloop import StatusPoller, agent_print_loop
from lims.db import new_session
from lims.models import AuditEvent
from lims.printing.models import PrinterCheck
from printers.claim import Claim, poll_status, print_claim
from printers.mock import PrinterSimulator
from printers.zpl import get_template, render_batch


def _feed(app) -> dict:  # noqa: ANN001
    web = app.test_client()
    sign_in(web, "tech1")
    return {p["name"]: p["status"] for p in web.get("/print-queue.json").json["printers"]}


def _listed(client, headers) -> dict:  # noqa: ANN001
    printers = client.get("/api/printers", headers=headers).json["printers"]
    return {p["name"]: p["status"] for p in printers}


def _status_events(app, name: str) -> list[AuditEvent]:  # noqa: ANN001
    with new_session(app.extensions["lims"]["engine"]) as db:
        return list(
            db.exec(
                select(AuditEvent)
                .where(AuditEvent.action == "printer.status", AuditEvent.entity_id == name)
                .order_by(AuditEvent.seq)
            ).all()
        )


def test_an_idle_printer_that_runs_out_of_paper_shows_it_without_a_job(
    app, client, runner, tech, sim
):
    add_printer(runner, "ZIDLE", sim.port)
    w = worker(app, "ZIDLE")
    assert _feed(app)["ZIDLE"] is None

    assert w.check_idle(force=True)["ZIDLE"] == {"answered": True, "ready": True, "status": "ready"}
    assert _feed(app)["ZIDLE"]["state"] == "ready"

    sim.paper_out_after(0)  # nobody printed anything: the roll ran out on the shelf
    w.check_idle(force=True)
    st = _feed(app)["ZIDLE"]
    assert st["state"] == "not_ready" and st["ready"] is False
    assert re.fullmatch(r"paper out, \d+ s ago", st["text"]), st["text"]
    assert _listed(client, tech)["ZIDLE"]["text"] == st["text"]
    web = app.test_client()
    sign_in(web, "tech1")
    assert re.search(
        r'data-printer-status="ZIDLE"[^>]*>paper out, \d+ s ago<', web.get("/print-queue").text
    )
    # The print form says it too, beside the printer's name.
    barcode = register(client, tech)["barcode"]
    assert re.search(
        r"ZIDLE · paper out, \d+ s ago</option>", web.get(f"/labels/preview/{barcode}").text
    )

    # Asked again and again: one row, one audit event per change, never per poll.
    w.check_idle(force=True)
    w.check_idle(force=True)
    with new_session(app.extensions["lims"]["engine"]) as db:
        rows = db.exec(select(PrinterCheck).order_by(col(PrinterCheck.id))).all()
    assert [(r.ready, r.summary) for r in rows] == [(True, "ready"), (False, "paper out")]
    events = _status_events(app, "ZIDLE")
    assert [json.loads(e.after)["state"] for e in events] == [
        "ready",
        "not_ready",
    ]
    assert events[-1].actor == "system" and "print-worker" in (events[-1].device or "")

    sim.clear_fault()
    w.check_idle(force=True)
    assert _feed(app)["ZIDLE"]["text"] == "ready"
    assert len(_status_events(app, "ZIDLE")) == 3


def test_an_unplugged_printer_shows_no_answer_since_when(app, runner, auth, tech):
    gone = PrinterSimulator().start()
    add_printer(runner, "ZGONE", gone.port)
    w = worker(app, "ZGONE")
    w.check_idle(force=True)
    assert _feed(app)["ZGONE"]["state"] == "ready"

    gone.unplug()  # the USB cable pulled: the port is gone
    said = w.check_idle(force=True)["ZGONE"]
    assert said["answered"] is False and said["ready"] is False
    st = _feed(app)["ZGONE"]
    assert st["state"] == "no_answer" and st["ready"] is False
    assert re.fullmatch(r"no answer since \d\d:\d\d UTC", st["text"]), st["text"]
    assert gone.port in _listed(app.test_client(), tech)["ZGONE"]["summary"]
    # Where the printer is plugged in is not for a client's eyes, nor is it in the words.
    viewer = _listed(app.test_client(), auth("helix_viewer"))["ZGONE"]
    assert viewer["summary"] == "no answer" and viewer["state"] == "no_answer"
    # Still gone at the next poll: the same state, its start unchanged.
    w.check_idle(force=True)
    assert _feed(app)["ZGONE"]["since"] == st["since"]


def test_a_status_nobody_refreshed_is_unknown_not_ready(app, runner, sim):
    add_printer(runner, "ZSTALE", sim.port)
    worker(app, "ZSTALE").check_idle(force=True)
    assert _feed(app)["ZSTALE"]["state"] == "ready"
    # The worker stopped 10 minutes ago (its last word is older than 3 poll intervals).
    with new_session(app.extensions["lims"]["engine"]) as db:
        row = db.exec(select(PrinterCheck)).one()
        row.checked_at = row.checked_at - timedelta(minutes=10, seconds=5)
        row.since = row.checked_at
        db.add(row)
        db.commit()
    st = _feed(app)["ZSTALE"]
    assert st["state"] == "unknown" and st["ready"] is False
    assert st["text"] == "not asked for 10 min (last: ready)"
    app.config["PRINTER_STATUS_EVERY_S"] = 600.0  # asked every 10 min: not stale yet
    assert _feed(app)["ZSTALE"]["state"] == "ready"


class _SlowStart:
    """A backend whose start waits until the test lets it go (the job holds the port)."""

    def __init__(self, during) -> None:  # noqa: ANN001
        self.during = during
        self.outcomes: list[dict] = []

    def start(self, job_id: int) -> bool:
        self.during()
        return True

    def outcome(self, job_id: int, body: dict) -> None:
        self.outcomes.append(body)


def test_a_status_poll_during_a_job_waits_for_the_job(sim):
    template = get_template("cryovial-203")
    batch = render_batch(sample_contents(3), template)
    claim = Claim(1, "Z", sim.port, 9600, "xonxoff", batch.format_bytes, batch.labels)
    polled: dict = {}

    def poll_in_the_middle() -> None:
        # Between the job's status check and its first label: a poll that did not wait would
        # put its ~HS here. Given a second to try, it must still be waiting.
        t = threading.Thread(target=lambda: polled.update(poll_status(sim.port, timeout=1.0)))
        t.start()
        t.join(1.0)
        polled["waited"] = t.is_alive()
        polled["thread"] = t

    backend = _SlowStart(poll_in_the_middle)
    body = print_claim(claim, backend, timeout=1.0)
    polled["thread"].join(5.0)
    assert body["printed"] == 3 and body["error"] is None
    assert polled["waited"] is True and polled["status"] == "ready"
    raw = bytes(sim.raw)
    first_label = raw.index(b"^XA")
    # Only the job's own ~HS came before its labels (asked before start, and again as the batch
    # begins); the poll's came after the job's last.
    assert raw[:first_label].count(b"~HS") == 2
    assert raw.endswith(b"~HS")
    assert len(sim.printed) == 3


def test_the_agents_loop_reports_its_idle_printers_status(app, client, auth, tech, sim):
    bench = auth("tech1", "BENCH-B1")
    posted = threading.Event()
    call = http_call(client, bench)

    def watching(method: str, path: str, body: dict | None):  # noqa: ANN202
        status, answer = call(method, path, body)
        if path == "/api/printers/ZEBRA-B1/status" and status == 200:
            posted.set()
        return status, answer

    stop = threading.Event()
    loop = threading.Thread(
        target=agent_print_loop,
        args=(watching, stop),
        kwargs={"station": "BENCH-B1", "url_map": {"ZEBRA-B1": sim.port}, "poll_s": 0.05},
    )
    loop.start()
    try:
        assert posted.wait(20)
    finally:
        stop.set()
        loop.join(10)
    st = _listed(client, tech)["ZEBRA-B1"]
    assert st["state"] == "ready"
    events = _status_events(app, "ZEBRA-B1")
    assert events and events[-1].station == "BENCH-B1" and events[-1].actor == "tech1"

    # Paper out at the bench: the next poll says it.
    sim.paper_out_after(0)
    poller = StatusPoller(
        call, station="BENCH-B1", worker="agent-1", url_map={"ZEBRA-B1": sim.port}
    )
    said = poller.poll_due(force=True)["ZEBRA-B1"]
    assert said["http"] == 200 and said["status"] == "paper out"
    assert _listed(client, tech)["ZEBRA-B1"]["state"] == "not_ready"
    # Not due again until the interval passed: no second ~HS, no second POST.
    assert poller.poll_due() == {}


def test_only_the_printers_own_station_may_report_its_status(app, client, auth, tech, sim):
    body = {"worker": "w", "answered": True, "ready": True, "status": "ready"}
    other = auth("qa1", "BENCH-QC")
    r = client.post("/api/printers/ZEBRA-B1/status", json=body, headers=other)
    assert r.status_code == 403 and r.json["error"] == "wrong_station"
    # A person's own token (no station) is not the agent that drives the printer.
    r = client.post("/api/printers/ZEBRA-B1/status", json=body, headers=tech)
    assert r.status_code == 403 and r.json["error"] == "station_token_required"
    bench = auth("tech1", "BENCH-B1")
    r = client.post("/api/printers/NOPE/status", json=body, headers=bench)
    assert r.status_code == 404
    r = client.post("/api/printers/ZEBRA-B1/status", json={"worker": "w"}, headers=bench)
    assert r.status_code in (400, 422)
    assert _listed(client, tech)["ZEBRA-B1"] is None  # nothing was kept
    no_answer = {"worker": "w", "answered": False, "status": "no answer to ~HS"}
    r = client.post("/api/printers/ZEBRA-B1/status", json=no_answer, headers=bench)
    assert r.status_code == 200 and r.json["status"]["state"] == "no_answer"
    assert r.json["status"]["text"].startswith("no answer since ")


def test_a_job_on_a_silent_printer_says_no_answer(app, client, runner, tech):
    silent = PrinterSimulator().start()
    try:
        add_printer(runner, "ZMUTE", silent.port)
        silent.head_open(True)  # a Zebra with its head open answers nothing
        queue(client, tech, [register(client, tech)["barcode"]], printer="ZMUTE")
        worker(app, "ZMUTE").run_once()
        assert _feed(app)["ZMUTE"]["state"] == "no_answer"
    finally:
        silent.stop()
