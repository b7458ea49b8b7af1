"""Read a barcode scanner on a serial port (any pyserial URL) in a thread that never dies.

The thread opens the port, reads, frames (`scanners.framing.Framer`) and hands each `Scan` to
`on_scan`. When the port goes away (cable pulled, USB re-enumerated, socket dropped) it closes,
retries with bounded exponential backoff and carries on; a failing `on_scan` is logged and
counted, never fatal. `stop()` wakes the thread and joins it within a bounded time.

While a local device path (``/dev/ttyACM0``) is absent the thread watches for it every
``backoff_min_s`` instead of backing off: a scanner plugged back in is open again within that
time, which keeps short the moment in which a scan is lost because nobody reads the port yet
(pyserial also empties the input when it opens a port). `on_port` hears every open, reopen and
loss (`PortEvent`) so the program around the reader can tell the operator.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import serial

from scanners.framing import Framer, Scan

__all__ = ["PortEvent", "ReaderStats", "ScannerGroup", "ScannerReader"]

log = logging.getLogger(__name__)

# What losing a device looks like from pyserial: its own error, or the OS error underneath.
_PORT_ERRORS = (serial.SerialException, OSError)


@dataclass(frozen=True, slots=True)
class ReaderStats:
    """A snapshot of a reader's counters."""

    scans: int = 0  # frames handed to on_scan, error scans included
    errors: int = 0  # of those, scans with an error (too long, invalid UTF-8, empty, ...)
    reconnects: int = 0  # successful reopenings after the port was lost
    io_errors: int = 0  # failed opens and reads
    callback_errors: int = 0  # exceptions raised by on_scan
    bytes: int = 0
    noise: int = 0  # bytes of line noise dropped (never handed to on_scan)


@dataclass(frozen=True, slots=True)
class PortEvent:
    """The scanner's port was opened (first time or again) or lost."""

    reader: str  # the reader's name
    url: str
    kind: str  # "open", "open again" or "lost"
    at: float  # time.time() when it happened
    error: str | None = None  # why it was lost


class ScannerReader:
    """Read scans from one serial scanner in a background thread."""

    def __init__(
        self,
        url: str,
        on_scan: Callable[[Scan], None],
        suffix: str | bytes = "CR",
        baud: int = 9600,
        gap_s: float | None = 0.05,
        max_len: int = 512,
        name: str | None = None,
        *,
        aim: bool | None = None,
        encoding: str = "utf-8",
        backoff_min_s: float = 0.05,
        backoff_max_s: float = 2.0,
        serial_options: dict[str, Any] | None = None,
        on_port: Callable[[PortEvent], None] | None = None,
    ) -> None:
        """Configure a reader for `url`; nothing is opened until `start()`."""
        self.url = url
        self.on_scan = on_scan
        self.on_port = on_port
        # A device node or a link to one (not a URL such as socket:// or loop://).
        self._device_path = url if url.startswith("/") else None
        self.baud = baud
        self.name = name or url
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = max(backoff_max_s, backoff_min_s)
        self.serial_options = dict(serial_options or {})
        self._framer = Framer(suffix, gap_s, max_len, aim=aim, encoding=encoding)
        # Short reads keep the gap fallback and stop() responsive; cancel_read() wakes us sooner.
        self._read_timeout = min(gap_s / 2, 0.05) if gap_s else 0.05
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: serial.SerialBase | None = None
        self._port_lock = threading.Lock()
        self._connected = threading.Event()
        self._ever_connected = False
        self._counts = {f: 0 for f in ReaderStats.__dataclass_fields__}
        self.last_error: str | None = None

    # -- public -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Return True while the port is open."""
        return self._connected.is_set()

    @property
    def heard_suffix(self) -> str | None:
        """Return the suffix the scanner sends when it differs from the configured one."""
        return self._framer.heard_suffix

    @property
    def running(self) -> bool:
        """Return True while the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stats(self) -> ReaderStats:
        """Return a snapshot of the counters."""
        return ReaderStats(**self._counts)

    @property
    def scans(self) -> int:
        """Return how many scans were handed to on_scan."""
        return self._counts["scans"]

    @property
    def errors(self) -> int:
        """Return how many of those scans carried an error."""
        return self._counts["errors"]

    @property
    def reconnects(self) -> int:
        """Return how many times the port was reopened after being lost."""
        return self._counts["reconnects"]

    def start(self) -> ScannerReader:
        """Start the reader thread (idempotent)."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"scanner-reader:{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop the thread and close the port; return True when it ended within `timeout`."""
        self._stop.set()
        self._wake()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning("scanner %s: reader thread did not stop within %.1fs", self.name, timeout)
            return False
        self._thread = None
        return True

    def wait_connected(self, timeout: float) -> bool:
        """Block until the port is open or `timeout` passes; return whether it is open."""
        return self._connected.wait(timeout)

    def __enter__(self) -> ScannerReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.backoff_min_s
        while not self._stop.is_set():
            try:
                if self._port is None:
                    if self._device_path is not None and not os.path.exists(self._device_path):
                        self._absent()
                        self._stop.wait(self.backoff_min_s)
                        continue
                    if not self._open():
                        # Bounded exponential backoff: quick after a blip, gentle while absent.
                        self._stop.wait(delay)
                        delay = min(delay * 2, self.backoff_max_s)
                        continue
                    delay = self.backoff_min_s
                self._read_once()
            except _PORT_ERRORS as exc:
                self._lost(exc)
            except Exception:
                # A bug must not silently kill scanning at the bench: log it, reset, carry on.
                log.exception("scanner %s: unexpected error in reader loop", self.name)
                self._lost(None)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max_s)
        self._close()

    def _absent(self) -> None:
        """Note once that the device is not there; nothing is retried until it appears."""
        if self.last_error is None:
            self._count("io_errors")
            self.last_error = f"{self._device_path} is not there (unplugged or not yet attached)"
            log.warning("scanner %s: cannot open %s: not there", self.name, self.url)

    def _open(self) -> bool:
        try:
            port = serial.serial_for_url(
                self.url, baudrate=self.baud, timeout=self._read_timeout, **self.serial_options
            )
        except (*_PORT_ERRORS, ValueError) as exc:
            self._count("io_errors")
            # Log the first failure loudly, the retries quietly: an absent scanner is not news.
            level = logging.WARNING if self.last_error is None else logging.DEBUG
            self.last_error = str(exc)
            log.log(level, "scanner %s: cannot open %s: %s", self.name, self.url, exc)
            return False
        with self._port_lock:
            self._port = port
        if self._stop.is_set():
            self._close()
            return False
        self._framer.reset()
        again = self._ever_connected
        if again:
            self._count("reconnects")
            log.info("scanner %s: reconnected to %s", self.name, self.url)
        else:
            log.info("scanner %s: connected to %s", self.name, self.url)
        self._ever_connected = True
        self.last_error = None
        self._connected.set()
        self._tell(PortEvent(self.name, self.url, "open again" if again else "open", time.time()))
        return True

    def _tell(self, event: PortEvent) -> None:
        if self.on_port is None:
            return
        try:
            self.on_port(event)
        except Exception:
            log.exception("scanner %s: on_port failed for %s", self.name, event.kind)

    def _read_once(self) -> None:
        port = self._port
        assert port is not None
        data = port.read(port.in_waiting or 1)
        now = time.monotonic()
        if data:
            waiting = port.in_waiting
            if waiting:
                data += port.read(waiting)
            self._count("bytes", len(data))
            scans = self._framer.feed(data, now)
        else:
            # The read timed out: the line is idle, so a suffix-less scan may be complete.
            scans = self._framer.poll(now)
        for noise in self._framer.take_noise():
            self._count("noise", len(noise))
            log.info(
                "scanner %s: dropped %d byte(s) of line noise, not a scan: %s",
                self.name,
                len(noise),
                repr(noise)[2:-1][:80],
            )
        for scan in scans:
            self._deliver(scan)

    def _deliver(self, scan: Scan) -> None:
        scan = replace(scan, source=self.name)
        self._count("scans")
        if scan.error:
            self._count("errors")
            log.warning("scanner %s: %s (%d bytes)", self.name, scan.error, len(scan.raw))
        try:
            self.on_scan(scan)
        except Exception:
            self._count("callback_errors")
            log.exception("scanner %s: on_scan failed for %r", self.name, scan.data[:64])

    def _lost(self, exc: BaseException | None) -> None:
        if exc is not None:
            self._count("io_errors")
            self.last_error = str(exc)
            log.warning("scanner %s: lost %s: %s", self.name, self.url, exc)
        # A scan cut in half by the unplug must not be glued to the first one after replug.
        self._framer.reset()
        was_open = self._connected.is_set()
        self._close()
        if was_open:
            why = self.last_error if exc is not None else "reader error"
            self._tell(PortEvent(self.name, self.url, "lost", time.time(), why))

    def _close(self) -> None:
        self._connected.clear()
        with self._port_lock:
            port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _wake(self) -> None:
        with self._port_lock:
            port = self._port
            if port is not None and hasattr(port, "cancel_read"):
                with contextlib.suppress(Exception):
                    port.cancel_read()

    def _count(self, key: str, n: int = 1) -> None:
        # Only the reader thread writes counters; readers of stats tolerate a torn snapshot.
        self._counts[key] += n


class ScannerGroup:
    """Several scanner readers of one station, started and stopped together."""

    def __init__(self, readers: Iterable[ScannerReader] = ()) -> None:
        """Group the given readers."""
        self.readers: list[ScannerReader] = list(readers)
        self._running = False

    def add(self, reader: ScannerReader) -> ScannerReader:
        """Add a reader (started at once if the group is running)."""
        self.readers.append(reader)
        if self._running:
            reader.start()
        return reader

    def start(self) -> ScannerGroup:
        """Start every reader."""
        self._running = True
        for reader in self.readers:
            reader.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop every reader within `timeout` overall; return True when all ended."""
        self._running = False
        # Signal them all first so they wind down in parallel, then join each.
        for reader in self.readers:
            reader._stop.set()
            reader._wake()
        deadline = time.monotonic() + timeout
        return all([r.stop(max(0.0, deadline - time.monotonic())) for r in self.readers])

    @property
    def stats(self) -> dict[str, ReaderStats]:
        """Return each reader's counters by name."""
        return {r.name: r.stats for r in self.readers}

    def __enter__(self) -> ScannerGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
