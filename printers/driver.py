"""ZPL printer driver: status before sending, stream a batch, learn exactly what printed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Unpack

from printers.errors import PrinterNotReady, PrinterUnreachable, StatusParseError
from printers.status import (
    PrinterInfo,
    PrinterStatus,
    latest_reply,
    parse_host_identification,
    parse_host_status,
)
from printers.transport import LinkOptions, SerialTransport, WriteTimeout

__all__ = ["BatchOutcome", "ZplPrinter"]

HOST_STATUS = b"~HS"
HOST_IDENTIFICATION = b"~HI"
CANCEL_ALL = b"~JA"


@dataclass(frozen=True)
class BatchOutcome:
    """What happened to a batch. printed counts labels the printer confirmed it printed.

    sent: labels whose bytes fully left the port. cancelled: sent labels removed from the
    printer's buffer with ~JA, confirmed by a later ~HS (they will never print).
    unconfirmed: sent labels whose fate is unknown (an operator must check the printer).
    code: None on success, else not_ready, unreachable, fault, stalled, no_answer,
    write_timeout or disconnected.
    """

    total: int
    sent: int
    printed: int
    error: str | None = None
    code: str | None = None
    cancelled: int = 0
    unconfirmed: int = 0
    status: PrinterStatus | None = None
    bytes_sent: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Tell whether every label of the batch printed."""
        return self.error is None and self.printed == self.total


class ZplPrinter:
    """A ZPL II label printer on a pyserial URL (device path, socket://host:9100, loop://)."""

    def __init__(
        self,
        url: str,
        *,
        poll_interval: float = 0.05,
        stall_timeout: float = 15.0,
        **link: Unpack[LinkOptions],
    ) -> None:
        self.transport = SerialTransport(url, **link)
        # Status replies are awaited as long as the line's own timeout.
        self.timeout = self.transport.timeout
        self.poll_interval = poll_interval
        self.stall_timeout = stall_timeout

    @property
    def url(self) -> str:
        """Return the pyserial URL of the printer."""
        return self.transport.url

    def open(self) -> None:
        """Open the port; raise PrinterUnreachable if it cannot be opened."""
        self.transport.open()

    def close(self) -> None:
        """Close the port."""
        self.transport.close()

    def __enter__(self) -> ZplPrinter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query_status(self) -> PrinterStatus | None:
        reply = self.transport.query(HOST_STATUS, frames=3, timeout=self.timeout)
        if not reply:
            return None
        return parse_host_status(latest_reply(reply))

    def status(self) -> PrinterStatus:
        """Ask ~HS; raise PrinterNotReady when the printer stays silent (faulted)."""
        st = self._query_status()
        if st is None:
            raise PrinterNotReady(
                f"no answer to ~HS from {self.url} within {self.timeout:.1f} s: the printer is "
                "faulted (head open, media out) or not listening"
            )
        return st

    def require_ready(self) -> PrinterStatus:
        """Return the status if the printer can print now, else raise PrinterNotReady."""
        st = self.status()
        if not st.ready:
            raise PrinterNotReady(f"printer not ready: {st.reason}", st)
        if st.formats_in_buffer:
            raise PrinterNotReady(
                f"printer still holds {st.formats_in_buffer} unprinted formats from earlier", st
            )
        return st

    def identify(self) -> PrinterInfo:
        """Ask ~HI for model, firmware, resolution and memory."""
        reply = self.transport.query(HOST_IDENTIFICATION, frames=1, timeout=self.timeout)
        if not reply:
            raise PrinterNotReady(f"no answer to ~HI from {self.url} within {self.timeout:.1f} s")
        return parse_host_identification(reply)

    def cancel_all(self) -> None:
        """Send ~JA: the printer drops every format it has not printed yet."""
        self.transport.write(CANCEL_ALL)

    def print_batch(self, format_bytes: bytes | None, labels: Sequence[bytes]) -> BatchOutcome:
        """Send a stored format (optional) and labels; return exactly what printed.

        Nothing is sent unless ~HS says ready. Labels stream back to back; the printer is
        polled afterwards until it has printed everything or reports a fault, in which case
        the unprinted rest is cancelled (~JA). Nothing is ever resent.
        """
        start = time.monotonic()
        total = len(labels)
        acc = _Progress(total=total, start=start)

        try:
            self.transport.open()
            acc.bytes_sent += len(HOST_STATUS)
            st = self._query_status()
        except PrinterUnreachable as exc:
            return acc.outcome(str(exc), "unreachable")
        except StatusParseError as exc:
            return acc.outcome(f"unintelligible ~HS reply, nothing sent: {exc}", "not_ready")
        if st is None:
            return acc.outcome(
                f"printer not ready: no answer to ~HS within {self.timeout:.1f} s "
                "(head open or faulted); nothing sent",
                "not_ready",
            )
        acc.status = st
        if not st.ready or st.formats_in_buffer:
            why = st.reason or f"{st.formats_in_buffer} formats from an earlier job still queued"
            return acc.outcome(f"printer not ready: {why}; nothing sent", "not_ready")

        in_label = False
        try:
            if format_bytes:
                self.transport.write(format_bytes)
                acc.bytes_sent += len(format_bytes)
            for label in labels:
                in_label = True
                self.transport.write(label)
                acc.bytes_sent += len(label)
                acc.sent += 1
                in_label = False
        except PrinterUnreachable as exc:
            if exc.wrote_all and in_label:
                acc.sent += 1
            # A label cut off mid-write has no ^XZ and cannot print; every whole one might have.
            acc.unconfirmed = acc.sent
            return acc.outcome(
                f"printer disconnected after {acc.sent} of {total} labels were sent: {exc}; "
                f"{acc.printed} confirmed printed, {acc.sent} unconfirmed: check the printer "
                "before reprinting",
                "disconnected",
            )
        except WriteTimeout as exc:
            # The label being written may sit half-received in the printer; ~JA drops it too.
            return self._stop(
                acc, f"write timed out after {acc.sent} labels: {exc}", "write_timeout"
            )
        return self._await_printing(acc)

    def _await_printing(self, acc: _Progress) -> BatchOutcome:
        last_change = time.monotonic()
        last_remaining: int | None = None
        # Re-poll soon, then back off: the last label is usually done within milliseconds of
        # the first poll, and a fixed interval would add its whole length to every batch.
        delay = 0.005
        while True:
            try:
                acc.bytes_sent += len(HOST_STATUS)
                st = self._query_status()
                if st is None:
                    # One late reply is not a fault: asking for the status again prints nothing.
                    acc.bytes_sent += len(HOST_STATUS)
                    st = self._query_status()
            except PrinterUnreachable as exc:
                acc.unconfirmed = acc.sent - acc.printed
                return acc.outcome(
                    f"printer disconnected after sending: {exc}; "
                    f"{acc.printed} labels confirmed printed",
                    "disconnected",
                )
            except StatusParseError as exc:
                return self._stop(acc, f"unintelligible ~HS reply: {exc}", "no_answer")
            if st is None:
                return self._stop(
                    acc,
                    f"the printer answered no status request (~HS) twice within "
                    f"{self.timeout:g} s: it may be faulted (head open, media out) or off",
                    "no_answer",
                )
            acc.status = st
            remaining = st.formats_in_buffer
            acc.printed = max(acc.printed, acc.sent - remaining)
            if not st.ready:
                return self._stop(acc, f"printer fault: {st.reason}", "fault", st)
            if st.idle:
                acc.printed = acc.sent
                return acc.outcome(None, None)
            now = time.monotonic()
            if remaining != last_remaining:
                last_remaining, last_change = remaining, now
            elif now - last_change > self.stall_timeout:
                return self._stop(
                    acc,
                    f"printer made no progress for {self.stall_timeout:.0f} s "
                    f"with {remaining} labels queued",
                    "stalled",
                    st,
                )
            time.sleep(delay)
            delay = min(self.poll_interval, delay * 2)

    def _stop(
        self, acc: _Progress, why: str, code: str, st: PrinterStatus | None = None
    ) -> BatchOutcome:
        """Cancel what has not printed (~JA) and return the outcome at the known point."""
        if st is not None:
            acc.printed = acc.sent - st.formats_in_buffer
        try:
            acc.bytes_sent += len(CANCEL_ALL) + len(HOST_STATUS)
            self.cancel_all()
            after = self._query_status()
        except (PrinterUnreachable, WriteTimeout, StatusParseError) as exc:
            acc.unconfirmed = acc.sent - acc.printed
            return acc.outcome(f"{why}; cancelling failed: {exc}", code)
        if after is not None and after.formats_in_buffer == 0 and st is not None:
            acc.cancelled = acc.sent - acc.printed
            acc.status = after
            return acc.outcome(
                f"{why}; {acc.printed} of {acc.total} printed, {acc.cancelled} cancelled",
                code,
            )
        # Without a status from the moment of the fault, the count is only a lower bound.
        acc.unconfirmed = acc.sent - acc.printed
        if after is not None:
            acc.status = after
        return acc.outcome(
            f"{why}; {acc.printed} confirmed printed, {acc.unconfirmed} unconfirmed "
            "(cancel sent with ~JA; check the printer before reprinting)",
            code,
        )


@dataclass
class _Progress:
    total: int
    start: float
    sent: int = 0
    printed: int = 0
    cancelled: int = 0
    unconfirmed: int = 0
    bytes_sent: int = 0
    status: PrinterStatus | None = None

    def outcome(self, error: str | None, code: str | None) -> BatchOutcome:
        return BatchOutcome(
            total=self.total,
            sent=self.sent,
            printed=self.printed,
            error=error,
            code=code,
            cancelled=self.cancelled,
            unconfirmed=self.unconfirmed,
            status=self.status,
            bytes_sent=self.bytes_sent,
            elapsed_s=time.monotonic() - self.start,
        )
