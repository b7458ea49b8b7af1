"""The bench's print loop over HTTP: claim a job from the server, print it, report the outcome."""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from printers.claim import (
    CLAIM_LEASE_S,
    NOT_READY_CODES,
    STATUS_EVERY_S,
    Claim,
    new_worker_id,
    poll_status,
    print_claim,
)

__all__ = [
    "Call",
    "HttpBackend",
    "StatusPoller",
    "agent_print_loop",
    "agent_print_once",
    "report_printer_status",
]

log = logging.getLogger(__name__)

# call(method, path, body) -> (HTTP status, JSON body or None); raises OSError when unreachable.
Call = Callable[[str, str, dict | None], tuple[int, dict | None]]


class HttpBackend:
    """Report to the server's print-job API; start and outcome are retried until answered."""

    def __init__(
        self,
        call: Call,
        worker: str,
        retry_s: float = 1.0,
        give_up_s: float = 600.0,
        stop: threading.Event | None = None,
        start_give_up_s: float = 4 * CLAIM_LEASE_S,
    ) -> None:
        self.call = call
        self.worker = worker
        self.retry_s = retry_s
        self.give_up_s = give_up_s
        self.start_give_up_s = start_give_up_s
        self.stop = stop or threading.Event()

    def _post(self, path: str, payload: dict, give_up_s: float) -> tuple[int | None, dict | None]:
        """POST until the server answers (not a 5xx, not busy); (None, last reply) on giving up."""
        waited = 0.0
        while True:
            try:
                status, body = self.call("POST", path, payload)
            except OSError as exc:
                status, body = None, {"message": str(exc)}
            busy = status == 409 and (body or {}).get("error") == "conflict"
            if status is not None and status < 500 and not busy:
                return status, body
            if waited >= give_up_s or self.stop.wait(self.retry_s):
                return None, body
            waited += self.retry_s

    def start(self, job_id: int) -> bool:
        """Mark the job sending; tell whether it may be sent (only after a 200)."""
        # A lost reply or a server that is down is asked again: the server may have marked the
        # job sending already, and giving up would leave it to fail as 'outcome unknown'
        # although nothing printed. Asking again is safe (start is idempotent for one worker).
        status, body = self._post(
            f"/api/print-jobs/{job_id}/start", {"worker": self.worker}, self.start_give_up_s
        )
        if status is None:
            log.warning("job %s: could not start (%s); not sent", job_id, body)
        elif status != 200:
            log.info("job %s: server refused start (%s): %s", job_id, status, body)
        return status == 200

    def outcome(self, job_id: int, body: dict[str, Any]) -> None:
        """Report what happened to the job; retried for give_up_s (it is the only record)."""
        status, answer = self._post(
            f"/api/print-jobs/{job_id}/outcome", {"worker": self.worker, **body}, self.give_up_s
        )
        if status is None:
            log.error(
                "job %s: outcome NOT recorded (%s); it will show 'outcome unknown'", job_id, answer
            )
        elif status != 200:
            log.error("job %s: outcome refused (%s): %s", job_id, status, answer)


def agent_print_once(
    call: Call,
    *,
    station: str,
    worker: str,
    url_map: dict[str, str] | None = None,
    timeout: float = 2.0,
    stop: threading.Event | None = None,
) -> dict[str, Any] | None:
    """Claim one job of the station's printers over HTTP and print it; None when idle."""
    status, body = call("POST", "/api/print-jobs/claim", {"station": station, "worker": worker})
    if status != 200 or not body or body.get("job") is None:
        if status != 200:
            log.warning("claim for %s refused (%s): %s", station, status, body)
        return None
    claim = Claim.from_json(body["job"])
    url = (url_map or {}).get(claim.printer)
    backend = HttpBackend(call, worker, stop=stop)
    done = print_claim(claim, backend, url=url, timeout=timeout)
    return {"job": claim.job_id, "printer": claim.printer, **done}


def report_printer_status(
    call: Call,
    *,
    printer: str,
    url: str,
    worker: str,
    baud: int = 9600,
    flow: str = "xonxoff",
    timeout: float = 2.0,
) -> dict[str, Any]:
    """Ask an idle printer ~HS and tell the server what it said (or that it said nothing).

    Return what was reported, with the server's HTTP status under "http" (None: no server).
    """
    said = poll_status(url, baud=baud, flow=flow, timeout=timeout)
    path = f"/api/printers/{urllib.parse.quote(printer, safe='')}/status"
    try:
        status, body = call("POST", path, {"worker": worker, **said})
    except OSError as exc:
        # The next poll reports again; a status is never worth holding the print loop.
        log.warning("status of %s not reported: %s", printer, exc)
        status, body = None, None
    if status is not None and status != 200:
        log.warning("status of %s refused (%s): %s", printer, status, body)
    return {**said, "http": status}


class StatusPoller:
    """Ask the station's idle printers ~HS every every_s seconds and report it to the server.

    Which printers: those named on the command line (name -> URL), and every active printer
    GET /api/printers lists for the station (at the URL the server holds for it).
    """

    def __init__(
        self,
        call: Call,
        *,
        station: str,
        worker: str,
        url_map: dict[str, str] | None = None,
        every_s: float = STATUS_EVERY_S,
        timeout: float = 2.0,
    ) -> None:
        self.call = call
        self.station = station
        self.worker = worker
        self.url_map = dict(url_map or {})
        self.every_s = every_s
        self.timeout = timeout
        self.last: dict[str, float] = {}
        self._known: dict[str, dict[str, Any]] | None = None
        self._listed_at = 0.0

    def heard(self, printer: str) -> None:
        """Note that a job just reported this printer's status: the idle poll counts from now."""
        self.last[printer] = time.monotonic()

    def printers(self) -> dict[str, dict[str, Any]]:
        """Return this station's printers: name -> {url, baud, flow}."""
        out: dict[str, dict[str, Any]] = {
            name: {"url": url, "baud": 9600, "flow": "xonxoff"}
            for name, url in self.url_map.items()
        }
        try:
            status, body = self.call("GET", "/api/printers", None)
        except OSError:
            return out
        for p in (body or {}).get("printers", []) if status == 200 else []:
            if p.get("station") != self.station or not p.get("active"):
                continue
            url = self.url_map.get(p["name"]) or p.get("url")
            if url:
                out[p["name"]] = {
                    "url": url,
                    "baud": p.get("baud") or 9600,
                    "flow": p.get("flow") or "xonxoff",
                }
        return out

    def poll_due(self, *, force: bool = False) -> dict[str, dict[str, Any]]:
        """Ask each printer not heard from for every_s seconds; return name -> what was reported."""
        now = time.monotonic()
        if force or self._known is None or now - self._listed_at >= self.every_s:
            # The station's printers are listed again once a poll interval (one GET).
            self._known = self.printers()
            self._listed_at = now
        out = {}
        for name, p in self._known.items():
            if not force and now - self.last.get(name, -1e9) < self.every_s:
                continue
            out[name] = report_printer_status(
                self.call,
                printer=name,
                url=p["url"],
                worker=self.worker,
                baud=p["baud"],
                flow=p["flow"],
                timeout=self.timeout,
            )
            self.last[name] = time.monotonic()
        return out


def agent_print_loop(
    call: Call,
    stop: threading.Event,
    *,
    station: str,
    worker: str | None = None,
    url_map: dict[str, str] | None = None,
    poll_s: float = 2.0,
    status_every_s: float = STATUS_EVERY_S,
) -> None:
    """Print the station's jobs until stop is set (the station agent's print_worker hook).

    Between jobs, each printer not heard from for status_every_s is asked ~HS and the answer
    (or its silence) is reported to the server; the same loop, so never during a job.
    """
    worker = worker or new_worker_id(f"agent:{station}")
    poller = StatusPoller(
        call, station=station, worker=worker, url_map=url_map, every_s=status_every_s
    )
    while not stop.is_set():
        try:
            done = agent_print_once(
                call, station=station, worker=worker, url_map=url_map, stop=stop
            )
            if done is not None and done.get("printer"):
                poller.heard(done["printer"])
            if done is None:
                poller.poll_due()
        except OSError as exc:
            log.warning("print claim for %s failed: %s", station, exc)
            done = None
        except Exception:  # noqa: BLE001 - the agent must keep scanning and printing
            log.exception("print step for %s failed", station)
            done = None
        if done is None or done.get("code") in NOT_READY_CODES:
            stop.wait(poll_s)
