"""What the station agent tells the operator: scanner open/lost, server down, late, escapes."""

from __future__ import annotations

import queue
import re
import socket
import threading
import time

import pytest
from conftest import Server
from test_station_agent import STATION, WAIT_S, Results, token_of

from agent.station import PostResult, StationAgent, format_result, shown
from scanners import Scan
from scanners.sim import ScannerSimulator

CLOCK = r"\d\d:\d\d:\d\d"
# What the terminal acts on: C0 controls (ESC, BEL, BS, CR ...), DEL and the C1 block.
TERMINAL_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class Lines:
    """Collect the agent's lines for the operator; wait for one matching a pattern."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._cond:
            self.lines.append(line)
            self._cond.notify_all()

    def wait_for(self, pattern: str) -> str:
        deadline = time.monotonic() + WAIT_S
        with self._cond:
            while True:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no line like {pattern!r} in {self.lines}")
                self._cond.wait(left)


def free_url() -> tuple[str, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}", port


def start_agent(url: str, token: str, sim: ScannerSimulator, **kw: object) -> StationAgent:
    agent = StationAgent(
        url, token, STATION, [sim.port], backoff_min_s=0.05, backoff_max_s=0.2, timeout_s=5, **kw
    )
    agent.start()
    assert agent.wait_connected(5)
    return agent


def test_control_characters_in_scan_data_never_reach_the_terminal() -> None:
    # A label (or a hostile one) carrying cursor moves, a bell and backspaces over the verdict.
    data = "S26\x1b[2K\rACCEPTED\x07\x08\x08\x08\x7f\x9b\u202eX\\x1b"
    line = format_result(
        PostResult(
            Scan(data),
            "id",
            200,
            {"outcome": "refused", "message": f"{data} is not a code", "station_state": None},
            1,
            0.0,
            0.0,
        )
    )
    assert line.startswith("REFUSED")
    assert not TERMINAL_CONTROL.search(line), repr(line)
    assert "S26\\x1b[2K\\x0dACCEPTED\\x07\\x08\\x08\\x08\\x7f\\x9b\\u202eX\\\\x1b" in line
    # Readable text (accents, GS1 data shown with its separators escaped) stays readable.
    assert shown("Étiquette\x1d21X") == "Étiquette\\x1d21X"
    assert shown("A" * 70).endswith("A...") and len(shown("A" * 70)) == 63


def test_a_scan_with_escape_sequences_is_refused_and_shown_escaped(auth, server) -> None:
    results = Results()
    with ScannerSimulator() as sim:
        agent = start_agent(server.url, token_of(auth("admin", STATION)), sim, on_result=results)
        try:
            sim.scan(b"S26-000001-Y\x1b[1A\x1b[2K\x07\x08\x08\x08OK")
            result = results.next()
        finally:
            agent.stop()
    line = format_result(result)
    assert line.startswith("REFUSED")
    assert not TERMINAL_CONTROL.search(line), repr(line)
    assert "\\x1b[1A\\x1b[2K\\x07\\x08" in line


def test_the_agent_says_when_a_scanner_is_open_lost_and_open_again() -> None:
    url, _ = free_url()  # no server needed: nothing is scanned
    lines = Lines()
    with ScannerSimulator() as sim:
        agent = start_agent(url, "t", sim, say=lines)
        try:
            opened = lines.wait_for(f"^scanner {re.escape(sim.port)} open at {CLOCK}")
            assert "a scanner beep with no line is a missed scan: scan it again" in opened
            sim.unplug()
            lost = lines.wait_for(f"^scanner {re.escape(sim.port)} LOST at {CLOCK}")
            assert "scans are not read until it is open again" in lost
            # While it is out, the scanner's scans go nowhere (the simulator cannot even send).
            with pytest.raises(OSError):
                sim.scan("S26-000001-Y")
            sim.replug()
            again = lines.wait_for(f"open again at {CLOCK}")
            assert again == (
                f"scanner {sim.port} open again at {again.split(' at ')[1][:8]}; scans sent "
                "while it was unplugged are lost: rescan the last tube if the bench did not "
                "show it"
            )
        finally:
            agent.stop()
    assert [line.split(" at ")[0].split()[-1] for line in lines.lines] == ["open", "LOST", "again"]


def test_server_down_lines_name_the_barcodes_and_scans_sent_late(app, auth) -> None:
    url, port = free_url()
    token = token_of(auth("admin", STATION))
    lines = Lines()
    results = Results()
    server = None
    with ScannerSimulator() as sim:
        agent = start_agent(url, token, sim, say=lines, on_result=results)
        try:
            sim.scan("BADGE-0002")
            down = lines.wait_for("^server down")
            assert re.match(
                r"server down \(.+\), 1 scan waiting: BADGE-0002 will be sent when it answers",
                down,
            ), down
            sim.scan("CMD:RECEIVE")
            assert (
                lines.wait_for("CMD:RECEIVE")
                == "server down, 2 scans waiting; last read: CMD:RECEIVE"
            )
            assert results.q.empty()
            server = Server(app, port=port)
            answered = [results.next(), results.next()]
        finally:
            agent.stop()
            if server is not None:
                server.stop()
    assert [r.scan.data for r in answered] == ["BADGE-0002", "CMD:RECEIVE"]
    assert all(r.status == 200 and r.late for r in answered)
    lines.wait_for("answers again")
    late = [line for line in lines.lines if line.startswith("sent late: ")]
    assert [line.split()[2] for line in late] == ["BADGE-0002", "CMD:RECEIVE"]
    assert all(re.search(f"read at {CLOCK}, answered at {CLOCK}", line) for line in late)
    # No line names the agent's internal scan ids.
    assert not [line for line in lines.lines if STATION + "-r0-" in line]


def test_a_tab_scanner_on_a_cr_agent_gets_a_hint_not_scan_again(auth, server) -> None:
    results = Results()
    lines = Lines()
    out: queue.Queue[str] = queue.Queue()
    with ScannerSimulator(suffix="TAB") as sim:
        agent = start_agent(
            server.url, token_of(auth("admin", STATION)), sim, on_result=results, say=lines
        )
        try:
            # One scan at a time works (the pause ends it) and tells the operator at once.
            sim.scan("BADGE-0002")
            assert results.next().body["action"] == "sign_in"
            hint = lines.wait_for("ends scans with TAB")
            assert hint == (
                f"your scanner {sim.port} ends scans with TAB, the agent reads CR: scans read "
                "quickly run together and are refused; start the agent with --suffix TAB "
                "(or program the scanner to send CR)"
            )
            # Two scans within the gap run together: refused, and the line says why.
            sim.write(sim.frame("CMD:RECEIVE") + sim.frame("S26-000001-Y"))
            fused = results.next()
            out.put(format_result(fused))
        finally:
            agent.stop()
    line = out.get_nowait()
    assert fused.body["outcome"] == "refused"
    assert line.startswith("REFUSED") and "start the agent with --suffix TAB" in line
    assert "\\x09" in line and "\t" not in line
    assert sum("ends scans with TAB" in x for x in lines.lines) == 1  # said once, not per scan
