"""End to end: simulated scanner (pty) -> station agent -> real HTTP server -> custody event."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Server
from helpers import move, register, verify

from agent.station import PostResult, StationAgent, format_result
from lims import audit
from lims.db import new_session
from scanners.sim import ScannerSimulator

STATION = "BENCH-B1"
ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 20.0


class LosingProxy:
    """A TCP proxy that forwards each request and, while `drop` > 0, loses the reply.

    It stands for a network that fails after the server committed: the agent never sees the
    answer and must retry with the same scan_id.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop = 0
        self.forwarded = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request = _read_request(conn)
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as up:
                    up.sendall(request)
                    reply = b""
                    while chunk := up.recv(65536):
                        reply += chunk
                self.forwarded += 1
                if self.drop > 0:
                    self.drop -= 1
                    continue  # close without a reply
                conn.sendall(reply)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        body += conn.recv(65536)
    # Ask the server to close after replying, so the proxy can read to EOF.
    head = b"\r\n".join(
        line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")
    )
    return head + b"\r\nConnection: close\r\n\r\n" + body


@pytest.fixture
def sim():  # noqa: ANN201
    with ScannerSimulator() as s:
        yield s


class Results:
    """Collect the agent's answers; wait for the next one."""

    def __init__(self) -> None:
        self.q: queue.Queue[PostResult] = queue.Queue()

    def __call__(self, result: PostResult) -> None:
        self.q.put(result)

    def next(self) -> PostResult:
        return self.q.get(timeout=WAIT_S)


def make_agent(url: str, token: str, sim: ScannerSimulator, results: Results) -> StationAgent:
    agent = StationAgent(
        url,
        token,
        STATION,
        [sim.port],
        backoff_min_s=0.05,
        backoff_max_s=0.2,
        timeout_s=5,
        on_result=results,
    )
    agent.start()
    assert agent.wait_connected(5), "the agent did not open the simulated scanner"
    return agent


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split()[1]


def scan_and_wait(sim: ScannerSimulator, results: Results, data: str) -> dict:
    return scan_result(sim, results, data).body


def scan_result(sim: ScannerSimulator, results: Results, data: str) -> PostResult:
    sim.scan(data)
    result = results.next()
    assert result.status == 200, result
    assert result.scan.data == data
    return result


def test_scanner_to_agent_to_server_to_audited_custody_event(app, client, auth, server, sim):
    tech = auth("tech1")
    tubes = [register(client, tech)["barcode"] for _ in range(2)]
    results = Results()
    agent = make_agent(server.url, token_of(auth("admin", STATION)), sim, results)
    try:
        assert scan_and_wait(sim, results, "BADGE-0002")["action"] == "sign_in"
        assert scan_and_wait(sim, results, "CMD:RECEIVE")["station_state"]["mode"] == "receive"
        for b in tubes:
            body = scan_and_wait(sim, results, b)
            assert body["outcome"] == "accepted" and body["sample"]["state"] == "received"
        bad = scan_result(sim, results, tubes[0][:-1] + ("A" if tubes[0][-1] != "A" else "B"))
        assert bad.body["code"] == "bad_check_character"
        assert format_result(bad).startswith("REFUSED")
    finally:
        agent.stop()
    with new_session(app.extensions["lims"]["engine"]) as db:
        evs = audit.query(db, entity_ids=tubes, action="sample.receive")
        assert [e.actor for e in evs] == ["tech1", "tech1"]
        assert all(e.station == STATION and f"scanner:{sim.port}" in e.device for e in evs)
    assert verify(app).ok
    log = client.get(f"/api/scans?station={STATION}", headers=tech).json["scans"]
    assert [(s["data"], s["outcome"]) for s in log][1:3] == [
        (tubes[1], "accepted"),
        (tubes[0], "accepted"),
    ]


def test_agent_survives_scanner_unplug_and_server_restart(app, client, auth, sim):
    tech = auth("tech1")
    tube = register(client, tech)["barcode"]
    server = Server(app)
    results = Results()
    agent = make_agent(server.url, token_of(auth("admin", STATION)), sim, results)
    try:
        scan_and_wait(sim, results, "BADGE-0002")
        # The cable is pulled and plugged back in: the reader reopens the same path.
        sim.unplug()
        time.sleep(0.2)
        sim.replug()
        reader = agent.group.readers[0]
        deadline = time.monotonic() + WAIT_S
        while reader.reconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.reconnects >= 1 and reader.wait_connected(5)
        assert scan_and_wait(sim, results, "CMD:RECEIVE")["outcome"] == "accepted"
        # The server goes down; a tube scanned meanwhile waits and is retried.
        server.stop()
        retries = agent.retries
        sim.scan(tube)
        deadline = time.monotonic() + WAIT_S
        while agent.retries < retries + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert agent.retries >= retries + 2
        assert results.q.empty()
        server = Server(app, port=server.port)
        result = results.next()
        assert result.status == 200 and result.body["outcome"] == "accepted", result
        assert result.attempts >= 3
    finally:
        agent.stop()
        server.stop()
    with new_session(app.extensions["lims"]["engine"]) as db:
        assert len(audit.query(db, entity_ids=[tube], action="sample.receive")) == 1
    assert verify(app).ok


def test_a_lost_reply_is_retried_with_the_same_scan_id_and_never_doubles(
    app, client, auth, server, sim
):
    tech = auth("tech1")
    tube = register(client, tech)["barcode"]
    proxy = LosingProxy(server.port)
    results = Results()
    agent = make_agent(proxy.url, token_of(auth("admin", STATION)), sim, results)
    try:
        scan_and_wait(sim, results, "BADGE-0002")
        scan_and_wait(sim, results, "CMD:RECEIVE")
        proxy.drop = 1  # the server will commit the receipt, the agent will not hear of it
        sim.scan(tube)
        result = results.next()
        assert result.attempts == 2
        assert result.body["outcome"] == "accepted" and result.body["replayed"] is True
        assert result.body["sample"]["state"] == "received"
    finally:
        agent.stop()
        proxy.close()
    with new_session(app.extensions["lims"]["engine"]) as db:
        assert len(audit.query(db, entity_ids=[tube], action="sample.receive")) == 1
    log = client.get(f"/api/scans?station={STATION}", headers=tech).json["scans"]
    assert [s["scan_id"] for s in log].count(result.scan_id) == 1


def test_scans_the_reader_could_not_frame_are_posted_as_refusals(app, client, auth, server, sim):
    results = Results()
    agent = make_agent(server.url, token_of(auth("admin", STATION)), sim, results)
    try:
        sim.scan(b"B\xff\xfeOX")  # not UTF-8 (inside the data: not line noise before it)
        result = results.next()
    finally:
        agent.stop()
    assert result.status == 200
    assert (result.body["outcome"], result.body["code"]) == ("refused", "scanner_error")
    assert json.dumps(result.body)  # the lenient text made it through as valid JSON


def test_a_scan_cut_short_by_a_pause_never_acts_as_a_shorter_code(app, client, auth, server, sim):
    # Storing into BOX-0002:C4, the scanner (or a serial server) pauses after 'BOX-0002':
    # the half must not become the store target, or the tube lands in A1 instead of C4.
    tech = auth("tech1")
    tube = register(client, tech)["barcode"]
    assert move(client, tech, tube, "receive", condition="ok").status_code == 200
    results = Results()
    agent = make_agent(server.url, token_of(auth("admin", STATION)), sim, results)
    try:
        assert scan_and_wait(sim, results, "BADGE-0002")["action"] == "sign_in"
        assert scan_and_wait(sim, results, "CMD:STORE")["station_state"]["mode"] == "store"
        sim.scan("BOX-0002:C4", split=[8], pause_s=0.2)
        cut, rest = results.next(), results.next()
        assert (cut.body["outcome"], cut.body["code"]) == ("refused", "scanner_error")
        assert "incomplete" in cut.body["message"]
        assert rest.body["outcome"] == "refused"
        bench = client.get(f"/api/stations/{STATION}", headers=tech).json
        assert bench["mode"] == "store" and bench["target"] is None
        # Scanned again whole, it works: the tube goes to C4.
        assert scan_and_wait(sim, results, "BOX-0002:C4")["outcome"] == "accepted"
        body = scan_and_wait(sim, results, tube)
        assert body["outcome"] == "accepted", body
        assert (body["sample"]["location"], body["sample"]["position"]) == ("BOX-0002", "C4")
    finally:
        agent.stop()


def test_scans_still_waiting_when_the_agent_stops_are_each_reported_not_sent(auth, sim):
    # The server is gone (nothing listens on this port): three scans wait in the agent.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}"
    results = Results()
    agent = make_agent(gone, token_of(auth("admin", STATION)), sim, results)
    try:
        for code in ("BADGE-0002", "CMD:RECEIVE", "S26-000001-Y"):
            sim.scan(code)
        deadline = time.monotonic() + WAIT_S
        while agent.retries < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the reader hands the other two to the queue
    finally:
        agent.stop()
    reported = [results.next() for _ in range(3)]
    assert [r.scan.data for r in reported] == ["BADGE-0002", "CMD:RECEIVE", "S26-000001-Y"]
    assert all(r.status is None for r in reported)
    assert all(format_result(r).startswith("NOT SENT") for r in reported)


def test_station_run_stops_at_once_when_the_server_refuses_its_token_or_bench(auth, server, sim):
    good = token_of(auth("admin", STATION))
    for station, token, said in (
        (STATION, "not-a-token", "unknown or revoked"),
        ("BENCH-NOPE", good, "BENCH-NOPE"),
    ):
        try:
            res = subprocess.run(
                [sys.executable, "-m", "agent.station", "run", station]
                + ["--server", server.url, "--scanner", sim.port],
                env={**os.environ, "LIMS_STATION_TOKEN": token},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"station run {station} kept running although the server refused it")
        # A refusal now, not a bench that reads tubes only to refuse every one of them.
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"station {station} refused by {server.url}" in res.stderr and said in res.stderr


def test_station_run_waits_for_a_server_that_is_only_unavailable(sim):
    """A proxy answering 503 while the LIMS restarts is not a refusal: the agent keeps running."""
    import http.server

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'{"error": "unavailable", "message": "restarting"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.station", "run", STATION]
        + ["--server", url, "--scanner", sim.port],
        env={**os.environ, "LIMS_STATION_TOKEN": "any"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = proc.stdout.readline()  # bounded: the agent writes this line or exits
        assert first.startswith(f"server {url} answers HTTP 503 for now"), first
        time.sleep(0.5)
        assert proc.poll() is None  # still running, ready to retry scans
    finally:
        proc.terminate()
        proc.wait(10)
        srv.shutdown()
        srv.server_close()
