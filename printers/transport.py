"""Move bytes to and from a printer over any pyserial URL; no ZPL knowledge beyond framing."""

from __future__ import annotations

import math
import time
from typing import Literal, TypedDict

import serial

try:
    import termios
except ImportError:  # not POSIX: pyserial raises only its own and OS errors there
    termios = None  # type: ignore[assignment]

from printers.errors import PrinterError, PrinterUnreachable
from printers.status import count_frames

__all__ = ["Flow", "LinkOptions", "SerialTransport", "WriteTimeout", "link_seconds"]

Flow = Literal["xonxoff", "rtscts", "none"]


class LinkOptions(TypedDict, total=False):
    """How the serial line is set (SerialTransport's keywords, passed through by ZplPrinter)."""

    baud: int
    flow: Flow
    timeout: float


BITS_PER_BYTE = 10  # 8N1: start bit + 8 data bits + stop bit
# Reads poll at this interval so a deadline is honoured without reconfiguring the port each time.
_READ_POLL_S = 0.02


# tcdrain/tcflush on a vanished device raise termios.error, which is not an OSError.
_IO_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError) + (
    (termios.error,) if termios is not None else ()
)


class WriteTimeout(PrinterError):
    """The port did not take the bytes in time (flow control held, or the link is dead)."""


def link_seconds(n_bytes: int, baud: int) -> float:
    """Return the time n_bytes take on a serial link at baud (10 bits per byte)."""
    return n_bytes * BITS_PER_BYTE / baud


class SerialTransport:
    """A byte pipe to one printer: device path, socket://host:9100 or loop://."""

    def __init__(
        self,
        url: str,
        baud: int = 9600,
        flow: Flow = "xonxoff",
        timeout: float = 2.0,
        write_margin: float = 1.0,
    ) -> None:
        if flow not in ("xonxoff", "rtscts", "none"):
            raise ValueError(f"flow must be xonxoff, rtscts or none, not {flow!r}")
        self.url = url
        self.baud = baud
        self.flow = flow
        self.timeout = timeout
        self.write_margin = write_margin
        self._port: serial.SerialBase | None = None
        self._write_timeout: float | None = None
        # When the bytes written so far will have crossed the link: OS and pty buffers accept
        # kilobytes at once, so a reply to a query cannot come before they are through.
        self._drained_at = 0.0

    @property
    def is_open(self) -> bool:
        """Tell whether the port is open."""
        return self._port is not None and self._port.is_open

    def open(self) -> None:
        """Open the port (8N1, chosen flow control); raise PrinterUnreachable if it cannot."""
        if self.is_open:
            return
        try:
            self._port = serial.serial_for_url(
                self.url,
                baudrate=self.baud,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                xonxoff=self.flow == "xonxoff",
                rtscts=self.flow == "rtscts",
                timeout=_READ_POLL_S,
                write_timeout=self.write_timeout_for(4096),
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port = None
            raise PrinterUnreachable(f"cannot open printer port {self.url}: {exc}") from exc
        self._write_timeout = self._port.write_timeout

    def close(self) -> None:
        """Close the port; errors on close are ignored (the device may already be gone)."""
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def write_timeout_for(self, n_bytes: int, backlog_s: float = 0.0) -> float:
        """Return the write timeout for n_bytes behind backlog_s of queued link time.

        1.5x the link time (10 bits per byte at baud) plus a fixed margin.
        """
        return 1.5 * (backlog_s + link_seconds(n_bytes, self.baud)) + self.write_margin

    def _require(self) -> serial.SerialBase:
        if not self.is_open:
            self.open()
        assert self._port is not None
        return self._port

    def write(self, data: bytes) -> None:
        """Write all of data; raise WriteTimeout or PrinterUnreachable (port gone, EIO)."""
        port = self._require()
        # A write may wait for everything still in flight (a pty or USB adapter buffers
        # kilobytes and wakes the writer only when nearly empty), so the timeout covers that
        # backlog plus these bytes. Rounded up to 0.5 s: each change reconfigures the port.
        wanted = self.write_timeout_for(len(data), self.in_flight_seconds())
        wanted = math.ceil(wanted * 2) / 2
        try:
            if self._write_timeout != wanted:
                # Reconfiguring a port that was just unplugged fails (EIO) like a write does.
                port.write_timeout = wanted
                self._write_timeout = wanted
            port.write(data)
        except serial.SerialTimeoutException as exc:
            raise WriteTimeout(
                f"printer at {self.url} did not take {len(data)} bytes within "
                f"{self._write_timeout:.1f} s (flow control held or link dead)"
            ) from exc
        except _IO_ERRORS as exc:
            self.close()
            raise PrinterUnreachable(
                f"printer at {self.url} went away while writing: {exc}"
            ) from exc
        now = time.monotonic()
        self._drained_at = max(self._drained_at, now) + link_seconds(len(data), self.baud)
        try:
            port.flush()
        except _IO_ERRORS as exc:
            self.close()
            # Every byte was handed over before the device vanished: the caller counts it sent.
            err = PrinterUnreachable(f"printer at {self.url} went away after a write: {exc}")
            err.wrote_all = True
            raise err from exc

    def in_flight_seconds(self) -> float:
        """Return how long the bytes already written still need to cross the link."""
        return max(0.0, self._drained_at - time.monotonic())

    def query(self, command: bytes, frames: int, timeout: float | None = None) -> bytes:
        """Send command and collect the reply until it holds `frames` STX..ETX strings.

        The timeout runs from when the command can reach the printer, i.e. after the bytes
        still in flight. Return what arrived by the deadline (b"" for silence).
        """
        port = self._require()
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait + self.in_flight_seconds()
        try:
            # Drop late replies to an earlier query so they cannot be read as this one's.
            port.reset_input_buffer()
        except _IO_ERRORS as exc:
            self.close()
            raise PrinterUnreachable(f"printer at {self.url} went away: {exc}") from exc
        self.write(command)
        reply = bytearray()
        while time.monotonic() < deadline:
            try:
                chunk = port.read(max(1, port.in_waiting))
            except _IO_ERRORS as exc:
                self.close()
                raise PrinterUnreachable(
                    f"printer at {self.url} went away while reading: {exc}"
                ) from exc
            if chunk:
                reply += chunk
                if count_frames(bytes(reply)) >= frames:
                    # Each frame ends ETX CR LF; take the trailing CR LF if it is already here.
                    if port.in_waiting:
                        reply += port.read(port.in_waiting)
                    break
        return bytes(reply)
