"""Workers: the station agent's HTTP claim protocol, a crashed worker, the CLI, python app.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import printing_util as pu
from conftest import checkpoint_config
from helpers import register
from sqlmodel import select

from agent.printloop import agent_print_once
from lims import create_app, printing
from lims.accounts import users
from lims.db import new_session
from lims.models import Printer
from printers.mock import PrinterSimulator

ROOT = Path(__file__).resolve().parents[2]


def http_call(client, headers):  # noqa: ANN001, ANN201
    """The agent's call(method, path, body) over the app's real WSGI stack."""

    def call(method: str, path: str, body: dict | None) -> tuple[int, dict | None]:
        r = client.open(path, method=method, json=body, headers=headers)
        return r.status_code, r.get_json(silent=True)

    return call


def test_agent_claims_its_bench_jobs_over_http(app, client, auth, sim):
    tech = auth("tech1")
    bench = auth("tech1", "BENCH-B1")
    barcodes = [register(client, tech)["barcode"] for _ in range(3)]
    job_id = client.post(
        "/api/labels", json={"barcodes": barcodes, "printer": "ZEBRA-B1"}, headers=tech
    ).json["id"]
    call = http_call(client, bench)

    # Another bench's token cannot take this bench's work.
    r = client.post(
        "/api/print-jobs/claim", json={"station": "BENCH-QC", "worker": "w"}, headers=bench
    )
    assert r.status_code == 403 and r.json["error"] == "wrong_station"

    done = agent_print_once(
        call, station="BENCH-B1", worker="agent-1", url_map={"ZEBRA-B1": sim.port}, timeout=0.5
    )

    assert done["job"] == job_id and done["error"] is None and done["printed"] == 3
    assert pu.printed_barcodes(sim) == barcodes
    job = client.get(f"/api/print-jobs/{job_id}", headers=tech).json
    assert (job["state"], job["labels_printed"], job["claimed_by"]) == ("sent", 3, "agent-1")
    events = pu.job_events(app, job_id)
    assert [e.action for e in events] == ["print_job.queue", "print_job.send", "print_job.print"]
    assert events[-1].station == "BENCH-B1" and events[-1].actor == "tech1"
    # Nothing left: the claim says so.
    assert agent_print_once(call, station="BENCH-B1", worker="agent-1") is None


def test_claim_protocol_refuses_what_would_break_the_record(app, client, auth, sim):
    tech = auth("tech1")
    bench = auth("tech1", "BENCH-B1")
    barcode = register(client, tech)["barcode"]
    job_id = client.post(
        "/api/labels", json={"barcodes": [barcode], "printer": "ZEBRA-B1"}, headers=tech
    ).json["id"]

    r = client.post("/api/print-jobs/claim", json={"worker": "a"}, headers=bench)
    assert r.status_code == 200
    claim = r.json["job"]
    assert claim["id"] == job_id and claim["printer"]["url"] == "demo-sim"
    # One label goes whole: no stored format for a job of one (printers.zpl.render_batch).
    assert claim["format_b64"] is None and len(claim["labels_b64"]) == 1
    # While leased to worker a, nobody else gets a job of that printer.
    r = client.post("/api/print-jobs/claim", json={"worker": "b"}, headers=bench)
    assert r.json == {"job": None}
    r = client.post(f"/api/print-jobs/{job_id}/start", json={"worker": "b"}, headers=bench)
    assert r.status_code == 409 and r.json["error"] == "claim_lost"
    outcome = {"worker": "a", "sent": 1, "printed": 1}
    r = client.post(f"/api/print-jobs/{job_id}/outcome", json=outcome, headers=bench)
    assert r.status_code == 409 and r.json["error"] == "not_started"

    for _ in range(2):  # a retried start is answered the same
        r = client.post(f"/api/print-jobs/{job_id}/start", json={"worker": "a"}, headers=bench)
        assert r.status_code == 200 and r.json["state"] == "sending"
    r = client.post(f"/api/print-jobs/{job_id}/void", json={"reason": "too late"}, headers=tech)
    assert r.status_code == 422 and r.json["error"] == "not_voidable"
    bad = {"worker": "a", "sent": 1, "printed": 2}
    r = client.post(f"/api/print-jobs/{job_id}/outcome", json=bad, headers=bench)
    assert r.status_code == 400 and r.json["error"] == "bad_outcome"
    for _ in range(2):  # a retried outcome is answered the same, recorded once
        r = client.post(f"/api/print-jobs/{job_id}/outcome", json=outcome, headers=bench)
        assert r.status_code == 200 and r.json["state"] == "sent"
    assert [e.action for e in pu.job_events(app, job_id)] == [
        "print_job.queue",
        "print_job.send",
        "print_job.print",
    ]
    viewer = auth("helix_viewer")
    r = client.post(
        "/api/print-jobs/claim", json={"worker": "v", "station": "BENCH-B1"}, headers=viewer
    )
    assert r.status_code == 403


def test_agent_leaves_job_queued_when_printer_is_silent(app, client, auth, sim):
    tech = auth("tech1")
    barcode = register(client, tech)["barcode"]
    job_id = client.post(
        "/api/labels", json={"barcodes": [barcode], "printer": "ZEBRA-B1"}, headers=tech
    ).json["id"]
    sim.head_open(True)

    done = agent_print_once(
        http_call(client, auth("tech1", "BENCH-B1")),
        station="BENCH-B1",
        worker="agent-1",
        url_map={"ZEBRA-B1": sim.port},
        timeout=0.5,
    )

    assert done["code"] == "not_ready" and done["sent"] == 0
    job = pu.job_row(app, job_id)
    assert job.state == "queued" and job.claimed_by is None
    assert job.error.startswith("printer not ready")
    assert sim.formats_received == 0


def test_crashed_worker_sending_job_is_failed_never_resent(app, client, runner, auth, db_url):
    # A throttled printer (9600 baud): the 96 labels take seconds, long enough to kill mid-way.
    slow = PrinterSimulator(baud=9600).start()
    try:
        pu.add_printer(runner, "SLOW", slow.port)
        tech = auth("tech1")
        barcodes = pu.aliquots(client, tech, 96)
        job_id = client.post(
            "/api/labels", json={"barcodes": barcodes, "printer": "SLOW"}, headers=tech
        ).json["id"]
        env = {**os.environ, "LIMS_DATABASE_URL": db_url, "LIMS_SECRET_KEY": "t"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "app",
                "print-worker",
                "--once",
                "--printer",
                "SLOW",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and slow.formats_received < 5:
                time.sleep(0.05)
            assert pu.job_row(app, job_id).state == "sending"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        # Bytes already in the pty's buffer still arrive; wait until the line is quiet.
        received, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.0:
            if slow.formats_received != received:
                received, quiet_since = slow.formats_received, time.monotonic()
            time.sleep(0.05)
        assert 5 <= received <= 96

        # Before the lease ends nobody touches it; a worker pass does not send it.
        pu.worker(app, "SLOW").run_once()
        assert pu.job_row(app, job_id).state == "sending"
        # An operator asking to reprint it is told why not yet, and from when.
        r = client.post(
            f"/api/print-jobs/{job_id}/reprint", json={"reason": "stuck?"}, headers=tech
        )
        assert r.status_code == 422 and r.json["error"] == "not_reprintable"
        due = f"{pu.job_row(app, job_id).lease_until:%H:%M} UTC"
        assert "If that worker stopped" in r.json["message"] and due in r.json["message"]
        # Once the lease has run out, the next claim fails it as 'outcome unknown'.
        lease_end = pu.job_row(app, job_id).lease_until
        with new_session(app.extensions["lims"]["engine"]) as db:
            pid = db.exec(select(Printer.id).where(Printer.name == "SLOW")).one()
            printing.reap_expired(
                db, [pid], users.system_actor(db), now=lease_end + timedelta(seconds=1)
            )
            db.commit()
        pu.worker(app, "SLOW").run_once()

        job = client.get(f"/api/print-jobs/{job_id}", headers=tech).json
        assert job["state"] == "failed"
        assert job["error"].startswith(printing.OUTCOME_UNKNOWN)
        assert job["labels_unconfirmed"] == 96 - job["labels_printed"]
        assert {lab["status"] for lab in job["labels"]} <= {"printed", "unknown"}
        time.sleep(0.5)
        assert slow.formats_received == received  # never resent
        assert pu.printed_barcodes(slow) == barcodes[: len(slow.printed)]  # no duplicates
        r = client.post(f"/api/print-jobs/{job_id}/resume", json={}, headers=tech)
        assert r.status_code == 422 and r.json["error"] == "nothing_to_resume"
        r = client.post(
            f"/api/print-jobs/{job_id}/reprint",
            json={"reason": "worker crashed; checked the printer"},
            headers=tech,
        )
        assert r.status_code == 201 and all(lab["reprint"] for lab in r.json["labels"])
        assert pu.job_events(app, job_id)[-1].action == "print_job.fail"
    finally:
        slow.stop()


def test_cli_print_worker_once(app, client, runner, auth, sim):
    pu.add_printer(runner, "Z1", sim.port)
    tech = auth("tech1")
    barcode = register(client, tech)["barcode"]
    job_id = client.post(
        "/api/labels", json={"barcodes": [barcode], "printer": "Z1"}, headers=tech
    ).json["id"]

    res = runner.invoke(args=["print-worker", "--once", "--printer", "Z1"])

    assert res.exit_code == 0, res.output
    assert f"job {job_id} on Z1: 1 labels printed" in res.output
    assert pu.printed_barcodes(sim) == [barcode]


def test_cli_print_worker_says_what_it_could_not_do(app, client, runner, auth, sim):
    pu.add_printer(runner, "Z1", sim.port)
    res = runner.invoke(args=["print-worker", "--once", "--printer", "Z1", "--printer", "Z9"])
    assert res.exit_code == 1
    assert "no active printer Z9; active printers: " in res.output and "Z1" in res.output
    res = runner.invoke(args=["print-worker", "--poll", "0"])
    assert res.exit_code == 2 and "--poll" in res.output

    tech = auth("tech1")
    job_id = pu.queue(client, tech, [register(client, tech)["barcode"]]).json["id"]
    sim.head_open(True)
    res = runner.invoke(args=["print-worker", "--once", "--printer", "Z1"])
    # A cron job or a script sees that the label is still to print.
    assert res.exit_code == 1, res.output
    assert f"job {job_id} on Z1: printer not ready" in res.output
    assert "1 of 1 jobs did not print" in res.output
    assert pu.job_row(app, job_id).state == "queued"

    # A running worker whose printer list names one that is gone (switched off, renamed)
    # keeps serving the others.
    sim.head_open(False)
    reports = pu.worker(app, "Z1", "GONE").run_once()
    assert [(r.job_id, r.outcome["error"]) for r in reports] == [(job_id, None)]
    assert pu.job_row(app, job_id).state == "sent"


def test_python_app_runs_worker_with_demo_simulator(db_url, tmp_path):
    demo = create_app(
        {
            "DATABASE_URL": db_url,
            "TESTING": True,
            "SECRET_KEY": "t",
            "RUN_DEVICE_WORKER": True,
            **checkpoint_config(tmp_path),
        }
    )
    run = demo.extensions["lims"]["print_worker"]
    try:
        sim = run["worker"].simulators["ZEBRA-B1"]
        with new_session(demo.extensions["lims"]["engine"]) as db:
            printer = db.exec(select(Printer).where(Printer.name == "ZEBRA-B1")).one()
            assert printer.url == "demo-sim"  # mapped at runtime, never rewritten
            secret, _ = users.create_token(db, username="tech1", actor=users.system_actor(db))
            db.commit()
        client = demo.test_client()
        tech = {"Authorization": f"Bearer {secret}"}
        barcode = register(client, tech)["barcode"]
        job_id = client.post(
            "/api/labels", json={"barcodes": [barcode], "printer": "ZEBRA-B1"}, headers=tech
        ).json["id"]
        assert sim.wait_printed(1, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pu.job_row(demo, job_id).state != "sent":
            time.sleep(0.05)
        assert pu.job_row(demo, job_id).state == "sent"
        assert pu.printed_barcodes(sim) == [barcode]
    finally:
        run["stop"].set()
        run["thread"].join(timeout=20)
        run["worker"].close()
        demo.extensions["lims"]["engine"].dispose()
    assert not any(
        t.name.startswith("print-worker") and t.is_alive() for t in threading.enumerate()
    )


def _sample_of(app, org: str) -> str:  # noqa: ANN001
    from lims.models import Organisation, Sample

    with new_session(app.extensions["lims"]["engine"]) as db:
        org_id = db.exec(select(Organisation.id).where(Organisation.name == org)).one()
        return db.exec(select(Sample.barcode).where(Sample.org_id == org_id)).first()


def test_only_the_centre_and_the_job_station_drive_a_job(app, client, auth):
    tech = auth("tech1")
    bench = auth("tech1", "BENCH-B1")
    nova_job = client.post(
        "/api/labels",
        json={"barcodes": [_sample_of(app, "novacell")], "printer": "ZEBRA-B1"},
        headers=tech,
    ).json["id"]
    r = client.post("/api/print-jobs/claim", json={"worker": "agent-b1-7f3a"}, headers=bench)
    assert r.json["job"]["id"] == nova_job
    report = {"worker": "agent-b1-7f3a", "sent": 0, "printed": 0, "error": "paper out"}

    # Another organisation's job does not exist for a client technician, whatever it posts.
    helix = auth("helix_tech")
    for path, body in (("start", {"worker": "agent-b1-7f3a"}), ("outcome", report)):
        r = client.post(f"/api/print-jobs/{nova_job}/{path}", json=body, headers=helix)
        assert r.status_code == 404 and r.json["error"] == "unknown_print_job", r.json
    # Another bench's token cannot drive this bench's job.
    other_bench = auth("tech1", "BENCH-QC")
    for path, body in (("start", {"worker": "agent-b1-7f3a"}), ("outcome", report)):
        r = client.post(f"/api/print-jobs/{nova_job}/{path}", json=body, headers=other_bench)
        assert r.status_code == 403 and r.json["error"] == "wrong_station", r.json
    # A wrong worker id is refused without being told the right one.
    r = client.post(f"/api/print-jobs/{nova_job}/start", json={"worker": "guess"}, headers=tech)
    assert r.status_code == 409 and r.json["error"] == "claim_lost"
    assert "agent-b1-7f3a" not in r.get_data(as_text=True)
    r = client.post(
        f"/api/print-jobs/{nova_job}/start", json={"worker": "agent-b1-7f3a"}, headers=bench
    )
    assert r.status_code == 200 and r.json["state"] == "sending"
    r = client.post(
        f"/api/print-jobs/{nova_job}/outcome", json={**report, "worker": "guess"}, headers=tech
    )
    assert r.status_code == 409 and "agent-b1-7f3a" not in r.get_data(as_text=True)
    assert pu.job_row(app, nova_job).state == "sending"
    assert [e.action for e in pu.job_events(app, nova_job)] == ["print_job.queue", "print_job.send"]

    # A client organisation's own job is still the centre's printer's business.
    helix_job = client.post(
        "/api/labels",
        json={"barcodes": [_sample_of(app, "helix-bio")], "printer": "ZEBRA-B1"},
        headers=helix,
    )
    assert helix_job.status_code == 201, helix_job.json
    r = client.post(
        "/api/print-jobs/claim", json={"worker": "h", "station": "BENCH-B1"}, headers=helix
    )
    assert r.status_code == 403 and r.json["error"] == "centre_only"
    r = client.post(
        f"/api/print-jobs/{helix_job.json['id']}/start", json={"worker": "h"}, headers=helix
    )
    assert r.status_code == 403 and r.json["error"] == "centre_only"
    assert pu.job_row(app, helix_job.json["id"]).claimed_by is None


def test_agent_asks_again_when_the_start_reply_is_lost(app, client, auth, sim):
    tech = auth("tech1")
    barcodes = [register(client, tech)["barcode"] for _ in range(2)]
    job_id = client.post(
        "/api/labels", json={"barcodes": barcodes, "printer": "ZEBRA-B1"}, headers=tech
    ).json["id"]
    real = http_call(client, auth("tech1", "BENCH-B1"))
    starts: list[int] = []

    def lossy(method: str, path: str, body: dict | None) -> tuple[int, dict | None]:
        answer = real(method, path, body)
        if path.endswith("/start"):
            starts.append(answer[0])
            if len(starts) == 1:
                # The server committed 'sending'; its reply never reached the agent.
                raise ConnectionResetError("connection reset by peer")
        return answer

    done = agent_print_once(
        lossy, station="BENCH-B1", worker="agent-1", url_map={"ZEBRA-B1": sim.port}, timeout=0.5
    )

    assert starts == [200, 200]
    assert done["job"] == job_id and done["error"] is None and done["printed"] == 2
    assert pu.printed_barcodes(sim) == barcodes  # printed once, not left to fail as unknown
    assert pu.job_row(app, job_id).state == "sent"
    assert [e.action for e in pu.job_events(app, job_id)] == [
        "print_job.queue",
        "print_job.send",
        "print_job.print",
    ]


def test_agent_gives_up_start_on_a_refusal_without_sending(app, client, auth, sim):
    tech = auth("tech1")
    job_id = client.post(
        "/api/labels",
        json={"barcodes": [register(client, tech)["barcode"]], "printer": "ZEBRA-B1"},
        headers=tech,
    ).json["id"]
    real = http_call(client, auth("tech1", "BENCH-B1"))
    calls: list[str] = []

    def unreachable_then_voided(method: str, path: str, body: dict | None):  # noqa: ANN202
        calls.append(path)
        if path.endswith("/start"):
            if calls.count(path) == 1:
                raise ConnectionRefusedError("server restarting")
            # Meanwhile the operator voided the job: the retry is refused and nothing is sent.
            client.post(
                f"/api/print-jobs/{job_id}/void", json={"reason": "not needed"}, headers=tech
            )
        return real(method, path, body)

    done = agent_print_once(
        unreachable_then_voided,
        station="BENCH-B1",
        worker="agent-1",
        url_map={"ZEBRA-B1": sim.port},
        timeout=0.5,
    )

    assert done["code"] == "not_started"
    assert calls.count(f"/api/print-jobs/{job_id}/start") == 2
    assert sim.formats_received == 0 and pu.job_row(app, job_id).state == "voided"


def test_agent_reports_the_outcome_again_when_the_server_is_briefly_down(app, client, auth, sim):
    tech = auth("tech1")
    barcode = register(client, tech)["barcode"]
    job_id = pu.queue(client, tech, [barcode], printer="ZEBRA-B1").json["id"]
    real = http_call(client, auth("tech1", "BENCH-B1"))
    outcomes: list[int | None] = []

    def down_once(method: str, path: str, body: dict | None) -> tuple[int, dict | None]:
        if path.endswith("/outcome") and not outcomes:
            outcomes.append(None)
            raise ConnectionRefusedError("server restarting")
        answer = real(method, path, body)
        if path.endswith("/outcome"):
            outcomes.append(answer[0])
        return answer

    done = agent_print_once(
        down_once, station="BENCH-B1", worker="agent-1", url_map={"ZEBRA-B1": sim.port}
    )

    assert outcomes == [None, 200]
    assert done["job"] == job_id and done["printed"] == 1
    assert pu.printed_barcodes(sim) == [barcode]
    # The label printed once and the record says so, not 'outcome unknown'.
    assert pu.job_row(app, job_id).state == "sent"
    assert [e.action for e in pu.job_events(app, job_id)][-1] == "print_job.print"


def test_the_apps_own_worker_leaves_a_bench_printer_to_its_agent(app, client, auth, sim):
    # python app.py prints the demo printers itself; once the bench's agent prints ZEBRA-B1,
    # every later job must go to the agent's printer, not alternate with a hidden simulator.
    tech = auth("tech1")
    local = printing.PrintWorker(app.extensions["lims"]["engine"], simulate_demo=False)
    app.extensions["lims"]["print_worker"] = {"worker": local}
    barcodes = [register(client, tech)["barcode"] for _ in range(2)]
    job_ids = [pu.queue(client, tech, [b], printer="ZEBRA-B1").json["id"] for b in barcodes]
    call = http_call(client, auth("tech1", "BENCH-B1"))
    first = agent_print_once(
        call, station="BENCH-B1", worker="agent-1", url_map={"ZEBRA-B1": sim.port}
    )
    assert first["job"] == job_ids[0]
    with new_session(app.extensions["lims"]["engine"]) as db:
        zebra = printing.get_printer(db, "ZEBRA-B1")
    assert local.step(zebra) is None  # the queued job is left for the agent
    second = agent_print_once(
        call, station="BENCH-B1", worker="agent-1", url_map={"ZEBRA-B1": sim.port}
    )
    assert second["job"] == job_ids[1]
    assert pu.printed_barcodes(sim) == barcodes
    assert [pu.job_row(app, j).state for j in job_ids] == ["sent", "sent"]
