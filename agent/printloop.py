"""The bench's print loop over HTTP: claim a job from the server, print it, report the outcome."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from printers.claim import CLAIM_LEASE_S, NOT_READY_CODES, Claim, new_worker_id, print_claim

__all__ = ["Call", "HttpBackend", "agent_print_loop", "agent_print_once"]

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
    return {"job": claim.job_id, **print_claim(claim, backend, url=url, timeout=timeout)}


def agent_print_loop(
    call: Call,
    stop: threading.Event,
    *,
    station: str,
    worker: str | None = None,
    url_map: dict[str, str] | None = None,
    poll_s: float = 2.0,
) -> None:
    """Print the station's jobs until stop is set (the station agent's print_worker hook)."""
    worker = worker or new_worker_id(f"agent:{station}")
    while not stop.is_set():
        try:
            done = agent_print_once(
                call, station=station, worker=worker, url_map=url_map, stop=stop
            )
        except OSError as exc:
            log.warning("print claim for %s failed: %s", station, exc)
            done = None
        except Exception:  # noqa: BLE001 - the agent must keep scanning and printing
            log.exception("print step for %s failed", station)
            done = None
        if done is None or done.get("code") in NOT_READY_CODES:
            stop.wait(poll_s)
