"""One claimed print job through the driver: status, start, send once, report what printed.

Shared by the server's print worker (reports to the database) and the station agent (reports
over HTTP); like the rest of `printers`, it never imports lims.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from printers.driver import BatchOutcome, ZplPrinter
from printers.errors import PrinterError, PrinterNotReady

__all__ = [
    "CLAIM_LEASE_S",
    "NOT_READY_CODES",
    "Backend",
    "Claim",
    "new_worker_id",
    "not_ready_text",
    "poll_status",
    "port_claim",
    "print_claim",
]

log = logging.getLogger(__name__)

# How long a claimed, still queued job is held: long enough to ask the printer for its status
# (~HS). The server leases claims for this long; the agent's start retries are sized on it.
CLAIM_LEASE_S = 30.0
# Outcome codes that mean nothing was sent: the job stays queued for a later poll.
NOT_READY_CODES = ("not_ready", "unreachable")
# How often an idle printer is asked for its status (~HS) by whoever drives it.
STATUS_EVERY_S = 30.0

_port_locks: dict[str, threading.Lock] = {}
_port_locks_guard = threading.Lock()


@contextmanager
def port_claim(url: str) -> Iterator[None]:
    """Hold a printer's port for one job or one status poll; the other waits.

    A ~HS sent between a job's labels would be answered in the middle of its own polling and
    its reply read as the job's; one lock per port URL in this process keeps them apart.
    """
    with _port_locks_guard:
        lock = _port_locks.setdefault(url, threading.Lock())
    with lock:
        yield


@dataclass(frozen=True)
class Claim:
    """A claimed job with everything a worker needs to print it, and nothing from the DB."""

    job_id: int
    printer: str
    url: str
    baud: int
    flow: str
    format_bytes: bytes | None
    labels: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form sent to a station agent (bytes in base64)."""
        return {
            "id": self.job_id,
            "printer": {
                "name": self.printer,
                "url": self.url,
                "baud": self.baud,
                "flow": self.flow,
            },
            "format_b64": base64.b64encode(self.format_bytes).decode()
            if self.format_bytes
            else None,
            "labels_b64": [base64.b64encode(b).decode() for b in self.labels],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Claim:
        """Rebuild a claim from its JSON form."""
        fmt = data.get("format_b64")
        return cls(
            job_id=int(data["id"]),
            printer=data["printer"]["name"],
            url=data["printer"]["url"],
            baud=int(data["printer"]["baud"]),
            flow=data["printer"]["flow"],
            format_bytes=base64.b64decode(fmt) if fmt else None,
            labels=tuple(base64.b64decode(b) for b in data["labels_b64"]),
        )


class Backend(Protocol):
    """Where a worker reports: the database (local worker) or the server's API (agent)."""

    def start(self, job_id: int) -> bool:
        """Mark the job sending; tell whether it may be sent."""
        ...

    def outcome(self, job_id: int, body: dict[str, Any]) -> None:
        """Report the outcome (body: the BatchOutcome fields of the server's OutcomeIn)."""
        ...


def _outcome_body(o: BatchOutcome) -> dict[str, Any]:
    return {
        "sent": o.sent,
        "printed": o.printed,
        "unconfirmed": o.unconfirmed,
        "cancelled": o.cancelled,
        "error": o.error,
        "code": o.code,
        **_printer_said(o),
    }


def _printer_said(o: BatchOutcome) -> dict[str, Any]:
    """Return what the printer said to ~HS, for the print queue page to show."""
    if o.status is not None:
        return {
            "printer_ready": o.status.ready,
            "printer_status": o.status.reason or "ready",
            "printer_answered": True,
        }
    if o.code is None:
        return {"printer_ready": True, "printer_status": "ready", "printer_answered": True}
    # No ~HS reply at all: silent, unplugged or the port would not open.
    return {
        "printer_ready": False,
        "printer_status": (o.error or o.code)[:500],
        "printer_answered": False,
    }


def print_claim(
    claim: Claim,
    backend: Backend,
    *,
    url: str | None = None,
    timeout: float = 2.0,
    stall_timeout: float = 15.0,
) -> dict[str, Any]:
    """Check the printer, mark the job sending, send it once, report what printed.

    Return the outcome body that was reported. Nothing here retries a send.
    """
    target = url or claim.url
    with port_claim(target):
        return _print_claim(claim, backend, target, timeout, stall_timeout)


def _print_claim(
    claim: Claim, backend: Backend, target: str, timeout: float, stall_timeout: float
) -> dict[str, Any]:
    dev = ZplPrinter(
        target,
        baud=claim.baud,
        flow=claim.flow,
        timeout=timeout,  # type: ignore[arg-type]
        stall_timeout=stall_timeout,
    )
    try:
        try:
            dev.require_ready()
        except PrinterError as err:
            body = {
                "sent": 0,
                "printed": 0,
                "unconfirmed": 0,
                "cancelled": 0,
                "error": not_ready_text(str(err)),
                "code": "not_ready",
                "printer_ready": False,
                "printer_status": str(err)[:500],
                "printer_answered": getattr(err, "status", None) is not None,
            }
            log.info(
                "job %s: %s at %s: %s; left queued",
                claim.job_id,
                claim.printer,
                target,
                body["error"],
            )
            backend.outcome(claim.job_id, body)
            return body
        if not backend.start(claim.job_id):
            log.info("job %s: no longer claimable (voided or taken); not sent", claim.job_id)
            return {"sent": 0, "printed": 0, "error": "not started", "code": "not_started"}
        log.info(
            "job %s: sending %d labels to %s at %s",
            claim.job_id,
            len(claim.labels),
            claim.printer,
            target,
        )
        try:
            result = dev.print_batch(claim.format_bytes, claim.labels)
            body = _outcome_body(result)
        except Exception as exc:  # noqa: BLE001 - whatever broke, bytes may have left: no retry
            log.exception("job %s: driver error while sending", claim.job_id)
            body = {
                "sent": len(claim.labels),
                "printed": 0,
                "unconfirmed": len(claim.labels),
                "cancelled": 0,
                "error": f"worker error while sending: {exc}",
                "code": "worker_error",
            }
        backend.outcome(claim.job_id, body)
        if body["error"]:
            log.warning("job %s on %s: %s", claim.job_id, claim.printer, body["error"])
        else:
            log.info(
                "job %s on %s: %d labels printed", claim.job_id, claim.printer, body["printed"]
            )
        return body
    finally:
        dev.close()


def poll_status(
    url: str, *, baud: int = 9600, flow: str = "xonxoff", timeout: float = 2.0
) -> dict[str, Any]:
    """Ask an idle printer ~HS (waiting for a job on its port to finish); say what it answered.

    Return {"answered", "ready", "status"}: status is "ready", what stops it ("paper out"),
    or why there was no answer (silent, port missing, unplugged).
    """
    with port_claim(url):
        dev = ZplPrinter(url, baud=baud, flow=flow, timeout=timeout)  # type: ignore[arg-type]
        try:
            st = dev.status()
        except PrinterNotReady as err:
            return {"answered": False, "ready": False, "status": str(err)[:500]}
        except PrinterError as err:  # port missing or gone, unintelligible reply
            return {"answered": False, "ready": False, "status": str(err)[:500]}
        finally:
            dev.close()
    if not st.ready:
        return {"answered": True, "ready": False, "status": st.reason[:500]}
    if st.formats_in_buffer:
        # Idle, yet holding formats: labels from earlier that a job would print first.
        return {
            "answered": True,
            "ready": False,
            "status": f"holds {st.formats_in_buffer} unprinted formats from earlier",
        }
    return {"answered": True, "ready": True, "status": "ready"}


def not_ready_text(error: str | None) -> str:
    """Return the reason a job waits, worded as the printer not being ready."""
    text = error or "no status from the printer"
    return text if text.startswith("printer not ready") else f"printer not ready: {text}"


def new_worker_id(kind: str = "worker") -> str:
    """Return a name for a worker that is unique across hosts and restarts."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
