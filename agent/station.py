"""The station agent: posts every scan of a bench's serial scanners, prints the bench's labels.

How it orders, retries and prints: docs/agent.md.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import sys
import threading
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from agent.printloop import agent_print_loop
from printers.claim import STATUS_EVERY_S
from scanners import PortEvent, Scan, ScannerGroup, ScannerReader

__all__ = [
    "PostResult",
    "StationAgent",
    "format_result",
    "main",
    "port_line",
    "shown",
    "station_cli",
    "suffix_hint",
]

log = logging.getLogger(__name__)

# Statuses after which the same request may succeed later: busy/conflict, rate limit, server.
_RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class PostResult:
    """What became of one scan."""

    scan: Scan
    scan_id: str
    status: int | None  # HTTP status of the final answer (None: given up at stop)
    body: dict[str, Any] | None  # the server's JSON answer
    attempts: int
    read_at: float  # time.monotonic() when the reader handed the scan over
    answered_at: float  # time.monotonic() when the answer arrived
    # What to tell the operator beside the server's answer (e.g. the scanner's suffix is not
    # the agent's, so scans read quickly run together).
    hint: str | None = None
    late: bool = False  # read while the server did not answer: sent once it was back
    read_clock: float = 0.0  # time.time() when read, for the operator's "sent late" line


@dataclass
class _Waiting:
    """A scan read and not yet answered."""

    scan: Scan
    scan_id: str
    read_at: float
    read_clock: float
    hint: str | None = None
    late: bool = False


class StationAgent:
    """Read a bench's scanners and post each scan to POST /api/scans, retrying safely."""

    def __init__(
        self,
        server: str,
        token: str,
        station: str,
        scanners: Sequence[str] = (),
        *,
        suffix: str = "CR",
        baud: int = 9600,
        timeout_s: float = 10.0,
        backoff_min_s: float = 0.2,
        backoff_max_s: float = 5.0,
        on_result: Callable[[PostResult], None] | None = None,
        print_worker: Callable[[threading.Event], None] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        """Configure the agent; nothing runs until `start()`.

        print_worker: claims and prints this bench's label jobs (run in a thread until stop);
        `printer_worker()` builds one from local printer URLs. say: where the lines for the
        operator go (scanner open/lost, server down, sent late, suffix hints); the log by
        default, stdout under `station run`.
        """
        self.server = server.rstrip("/")
        self.token = token
        self.station = station
        self.timeout_s = timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = max(backoff_max_s, backoff_min_s)
        self.on_result = on_result or self._log_result
        self.print_worker = print_worker
        self.say = say or _log_line
        self.suffix = suffix.upper()
        self.group = ScannerGroup(
            ScannerReader(
                url,
                self._make_on_scan(i),
                suffix=suffix,
                baud=baud,
                name=url,
                on_port=self._port_event,
            )
            for i, url in enumerate(scanners)
        )
        self._queue: queue.Queue[_Waiting | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.posted = 0
        self.retries = 0
        # Set while the server does not answer: scans read meanwhile are sent late.
        self._down = threading.Event()
        self._waiting = 0  # scans read and not yet answered (the sender's one included)
        self._count_lock = threading.Lock()
        self._hinted: set[str] = set()  # readers whose suffix hint was said

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> StationAgent:
        """Start the sender, the readers and (if given) the print worker."""
        self._stop.clear()
        sender = threading.Thread(target=self._send_loop, name="station-agent:sender", daemon=True)
        sender.start()
        self._threads = [sender]
        if self.print_worker is not None:
            pw = threading.Thread(
                target=self.print_worker,
                args=(self._stop,),
                name="station-agent:print",
                daemon=True,
            )
            pw.start()
            self._threads.append(pw)
        self.group.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading, give up pending retries, and join the threads."""
        self.group.stop(timeout)
        self._stop.set()
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def wait_connected(self, timeout: float) -> bool:
        """Block until every scanner port is open or timeout passes."""
        deadline = time.monotonic() + timeout
        return all(
            r.wait_connected(max(0.0, deadline - time.monotonic())) for r in self.group.readers
        )

    def __enter__(self) -> StationAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, scan: Scan, reader: str = "x", hint: str | None = None) -> str:
        """Queue a scan as if a reader had read it (used by the readers); return its scan_id."""
        scan_id = f"{self.station}-{reader}-{uuid.uuid4().hex}"
        item = _Waiting(scan, scan_id, time.monotonic(), time.time(), hint)
        with self._count_lock:
            self._waiting += 1
            waiting = self._waiting
        if self._down.is_set():
            item.late = True
            self.say(f"server down, {_scans(waiting)} waiting; last read: {_what(scan)}")
        self._queue.put(item)
        return scan_id

    # -- reading and sending --------------------------------------------------------------------

    def _make_on_scan(self, index: int) -> Callable[[Scan], None]:
        def on_scan(scan: Scan) -> None:
            hint = self._suffix_hint(self.group.readers[index])
            # The id is fixed when the scan is read: every retry of it carries the same one.
            self.submit(scan, f"r{index}", hint)

        return on_scan

    def _suffix_hint(self, reader: ScannerReader) -> str | None:
        heard = reader.heard_suffix
        if heard is None:
            return None
        hint = suffix_hint(reader.url, heard, self.suffix)
        if reader.name not in self._hinted:
            self._hinted.add(reader.name)
            self.say(hint)
        return hint

    def _port_event(self, event: PortEvent) -> None:
        if event.kind == "open again":
            # Its suffix may have been reprogrammed while it was out: say the hint afresh.
            self._hinted.discard(event.reader)
        self.say(port_line(event))

    def _send_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                self._report_unsent(item)
                return
            try:
                result = self._post_until_answered(item)
            except Exception:  # noqa: BLE001 - one bad scan must not stop the bench
                log.exception("station agent: could not post scan %s", shown(item.scan.data))
                self._answered()
                continue
            self._answered()
            if result.late and result.status is not None:
                self.say(
                    f"sent late: {_what(item.scan)} (read at {_clock(item.read_clock)}, "
                    f"answered at {_clock(time.time())})"
                )
            try:
                self.on_result(result)
            except Exception:  # noqa: BLE001
                log.exception("station agent: on_result failed for %s", item.scan_id)

    def _answered(self) -> None:
        with self._count_lock:
            self._waiting -= 1

    def _report_unsent(self, first: _Waiting | None) -> None:
        """Report every scan still waiting as not sent: the operator must scan it again."""
        pending = [first]
        while True:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for item in pending:
            if item is None:
                continue
            log.warning("station agent: stopping; scan %s was never sent", shown(item.scan.data))
            result = PostResult(
                item.scan,
                item.scan_id,
                None,
                None,
                0,
                item.read_at,
                time.monotonic(),
                item.hint,
                item.late,
                item.read_clock,
            )
            try:
                self.on_result(result)
            except Exception:  # noqa: BLE001
                log.exception("station agent: on_result failed for %s", item.scan_id)

    def _payload(self, scan: Scan, scan_id: str) -> bytes:
        body: dict[str, Any] = {
            "station": self.station,
            "scan_id": scan_id,
            "data": scan.data[:512],
            "symbology": scan.symbology,
            "device": f"scanner:{scan.source}" if scan.source else None,
        }
        if scan.error:
            body["error"] = scan.error[:100]
        return json.dumps(body).encode()

    def _post_until_answered(self, item: _Waiting) -> PostResult:
        scan, scan_id = item.scan, item.scan_id
        payload = self._payload(scan, scan_id)
        delay = self.backoff_min_s
        attempts = 0

        def result(status: int | None, body: dict[str, Any] | None) -> PostResult:
            return PostResult(
                scan,
                scan_id,
                status,
                body,
                attempts,
                item.read_at,
                time.monotonic(),
                item.hint,
                item.late,
                item.read_clock,
            )

        while True:
            attempts += 1
            status, body, err = self._post(payload)
            if status is not None and status not in _RETRY_STATUSES:
                self.posted += 1
                if self._down.is_set():
                    self._down.clear()
                    self.say(f"server {self.server} answers again at {_clock(time.time())}")
                return result(status, body)
            self.retries += 1
            what = f"HTTP {status}" if status is not None else err
            if attempts == 1:
                item.late = True
                if not self._down.is_set():
                    # Said once per outage, naming the scans (not internal ids) the bench waits on.
                    self._down.set()
                    self.say(
                        f"server down ({what}), {_scans(self._waiting)} waiting: "
                        f"{_what(scan)} will be sent when it answers"
                    )
            log.debug("station agent: %s not answered (%s); retrying", scan_id, what)
            if self._stop.wait(delay):
                return result(None, None)
            delay = min(delay * 2, self.backoff_max_s)

    def _request(self, method: str, path: str, data: bytes | None) -> urllib.request.Request:
        """Build an authenticated JSON request to the server's API."""
        return urllib.request.Request(
            f"{self.server}{path}",
            data=data,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.token}",
            },
        )

    def _post(self, payload: bytes) -> tuple[int | None, dict[str, Any] | None, str | None]:
        req = self._request("POST", "/api/scans", payload)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                return resp.status, _json(resp.read()), None
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _json(exc.read()), None
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
            # No answer (refused, reset, cut mid-reply, timed out): the scan may or may not
            # have been processed, which is why the retry carries the same scan_id.
            return None, None, str(getattr(exc, "reason", exc)) or type(exc).__name__

    def call(self, method: str, path: str, body: dict | None) -> tuple[int, dict | None]:
        """Call the server's API; answer (status, json) and raise OSError only when unreachable."""
        req = self._request(method, path, None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                return resp.status, _json(resp.read())
        except urllib.error.HTTPError as exc:
            # A refusal is an answer, not an outage (HTTPError is also an OSError).
            with exc:
                return exc.code, _json(exc.read())
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError) as exc:
            raise OSError(f"server {self.server} did not answer: {exc}") from exc

    def printer_worker(
        self, printers: dict[str, str], status_every_s: float = STATUS_EVERY_S
    ) -> Callable[[threading.Event], None]:
        """Return a print worker for this bench's printers (name -> local pyserial URL).

        Idle printers are asked ~HS every status_every_s seconds; the server hears the answer.
        """

        def work(stop: threading.Event) -> None:
            agent_print_loop(
                self.call,
                stop,
                station=self.station,
                url_map=printers,
                status_every_s=status_every_s,
            )

        return work

    def station_status(self) -> tuple[int | None, dict[str, Any] | None]:
        """Return (HTTP status, JSON) of GET /api/stations/<station>; (None, None) if no answer."""
        url = f"{self.server}/api/stations/{urllib.parse.quote(self.station, safe='')}"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                return resp.status, _json(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _json(exc.read()) or {"error": exc.code, "message": exc.reason}
        except (urllib.error.URLError, OSError, TimeoutError):
            return None, None

    @staticmethod
    def _log_result(result: PostResult) -> None:
        click.echo(format_result(result), err=False)


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def shown(text: object, limit: int = 60) -> str:
    r"""Return text safe to print on the bench's terminal: control characters as escapes.

    A scan is data from a device: ESC, BEL, backspace or CR in it must never move the cursor,
    ring, or overwrite what the agent printed ("REFUSED"). Control and format characters
    (C0, DEL, C1, bidi overrides, line separators) show as ``\x1b`` / ``\u202e``; a backslash
    shows doubled so the escapes cannot be faked. Longer text is cut at `limit` characters.
    """
    text = "" if text is None else str(text)
    cut = len(text) > limit
    out = []
    for ch in text[:limit]:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out) + ("..." if cut else "")


def suffix_hint(url: str, heard: str, configured: str) -> str:
    """Return the operator's hint when a scanner ends its scans otherwise than the agent reads."""
    return (
        f"your scanner {url} ends scans with {heard}, the agent reads {configured}: scans read "
        f"quickly run together and are refused; start the agent with --suffix {heard} "
        "(or program the scanner to send CR)"
    )


def port_line(event: PortEvent) -> str:
    """Return the operator's line for a scanner port opened, opened again or lost."""
    at = _clock(event.at)
    if event.kind == "open":
        return (
            f"scanner {event.url} open at {at}: each scan read shows one line here and on the "
            "bench; a scanner beep with no line is a missed scan: scan it again"
        )
    if event.kind == "open again":
        return (
            f"scanner {event.url} open again at {at}; scans sent while it was unplugged are "
            "lost: rescan the last tube if the bench did not show it"
        )
    return (
        f"scanner {event.url} LOST at {at} ({shown(event.error or 'unplugged', 80)}): "
        "scans are not read until it is open again"
    )


def _what(scan: Scan) -> str:
    return shown(scan.data) if scan.data else f"<{scan.error or 'empty'}>"


def _log_line(line: str) -> None:
    log.info("%s", line)


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _scans(n: int) -> str:
    return f"{n} scan" if n == 1 else f"{n} scans"


def format_result(result: PostResult) -> str:
    """Return the one-line log of a scan's outcome (scan data and messages escaped)."""
    body = result.body or {}
    data = _what(result.scan)
    if result.status is None:
        return f"NOT SENT  {data}  (the agent stopped before the server answered: scan again)"
    if result.status != 200:
        return (
            f"ERROR {result.status}  {data}  "
            f"{shown(body.get('error'))}: {shown(body.get('message'), 200)}"
        )
    outcome = str(body.get("outcome", "?")).upper()
    prompt = (body.get("station_state") or {}).get("prompt")
    replay = " (replayed)" if body.get("replayed") else ""
    line = f"{shown(outcome, 20):<9} {data}  {shown(body.get('message', ''), 200)}{replay}"
    if result.hint and outcome != "ACCEPTED":
        # Scanning again cannot help while the scanner and the agent disagree on the suffix.
        line = f"{line}  | {result.hint}"
    return f"{line}  | next: {shown(prompt, 200)}" if prompt else line


@click.group("station", help="Run a bench station agent (scanners -> server).")
def station_cli() -> None:
    """Group the station commands."""


@station_cli.command("run")
@click.argument("station")
@click.option("--server", required=True, help="LIMS base URL, e.g. http://127.0.0.1:5000")
@click.option(
    "--token",
    required=True,
    envvar="LIMS_STATION_TOKEN",
    help="bearer token; better set LIMS_STATION_TOKEN (ps shows arguments)",
)
@click.option("--scanner", "scanners", multiple=True, help="pyserial URL of a scanner (repeat)")
@click.option(
    "--suffix",
    default="CR",
    show_default=True,
    type=click.Choice(["CR", "LF", "CRLF", "TAB"], case_sensitive=False),
    help="CR, LF or CRLF (any line end ends a scan), TAB",
)
@click.option("--baud", default=9600, show_default=True, type=int)
@click.option(
    "--printer",
    "printers",
    multiple=True,
    help="NAME=URL: print this bench's jobs for printer NAME on a local pyserial URL (repeat)",
)
@click.option(
    "--status-every",
    default=STATUS_EVERY_S,
    show_default=True,
    type=click.FloatRange(min=1.0),
    help="seconds between status polls (~HS) of an idle printer, reported to the server",
)
def station_run(
    station: str,
    server: str,
    token: str,
    scanners: tuple[str, ...],
    suffix: str,
    baud: int,
    printers: tuple[str, ...],
    status_every: float,
) -> None:
    """Read the bench's scanners (and print its label jobs) until Ctrl-C."""
    run(station, server, token, scanners, suffix, baud, printers, status_every)


def _printer_map(specs: Sequence[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        name, sep, url = spec.partition("=")
        if not sep or not name or not url:
            raise click.UsageError(f"--printer takes NAME=URL (e.g. ZEBRA-B1=/dev/ttyUSB0): {spec}")
        out[name] = url
    return out


def run(
    station: str,
    server: str,
    token: str,
    scanners: Sequence[str],
    suffix: str,
    baud: int,
    printers: Sequence[str] = (),
    status_every_s: float = STATUS_EVERY_S,
) -> None:
    """Run the agent in the foreground until interrupted."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    if not scanners and not printers:
        raise click.UsageError("give at least one --scanner URL (e.g. /dev/ttyACM0) or --printer")
    printer_urls = _printer_map(printers)
    agent = StationAgent(server, token, station, scanners, suffix=suffix, baud=baud, say=click.echo)
    if printer_urls:
        agent.print_worker = agent.printer_worker(printer_urls, status_every_s)
    status, state = agent.station_status()
    if status in (401, 403, 404):
        # The server refused (token unknown or revoked, no such station): every scan would be
        # refused the same way, so say so now instead of at the first tube.
        raise click.ClickException(
            f"station {station} refused by {server}: "
            f"{(state or {}).get('message') or f'HTTP {status}'}"
        )
    if state is not None and "prompt" in state:
        click.echo(f"station {station}: {shown(state['prompt'], 200)}")
    else:
        # Down, restarting behind a proxy (502/503) or busy: scans wait and are retried.
        what = "does not answer yet" if status is None else f"answers HTTP {status} for now"
        click.echo(f"server {server} {what}; scans will wait and be retried")
    if scanners:
        click.echo(f"reading {', '.join(scanners)} (suffix {suffix})")
    for name, url in printer_urls.items():
        click.echo(f"printing {station}'s jobs for {name} on {url}")
    click.echo("Ctrl-C to stop")
    agent.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        agent.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run `station run ...` without Flask: python -m agent.station run BENCH-B1 ..."""
    station_cli.main(args=list(argv) if argv is not None else None, prog_name="station-agent")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
