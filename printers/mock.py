"""A ZPL label printer simulated on a pseudo-terminal, for tests and demos.

The simulator owns the master side of a pty; clients open `sim.port` (the slave device) with
pyserial like any serial printer. It parses ^XA...^XZ formats, stores ^DF formats, expands
^XF recalls, answers ~HS and ~HI, honours ~JA, and records what it "printed".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import re
import select
import signal
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field

from printers.status import format_host_status

__all__ = ["PrintedLabel", "PrinterSimulator", "main"]


@dataclass(frozen=True)
class PrintedLabel:
    """One label the simulator printed: its text lines and barcode payloads, decoded."""

    texts: tuple[str, ...]
    barcodes: tuple[tuple[str, str], ...]
    format_name: str | None = None

    @property
    def barcode(self) -> str | None:
        """Return the data of the first barcode on the label."""
        return self.barcodes[0][1] if self.barcodes else None


@dataclass
class _Field:
    kind: str = "text"
    hex_indicator: bytes | None = None
    fn: int | None = None
    data: bytes | None = None
    block: bool = False  # ^FB: \& breaks the line, \\ is a backslash


def _format_key(name: str) -> str:
    """Return a stored format's name without device and extension (R:CV203.ZPL -> CV203)."""
    name = name.strip().upper()
    if len(name) > 2 and name[1] == ":":
        name = name[2:]
    return name.removesuffix(".ZPL")


def _block_lines(text: str) -> list[str]:
    """Split ^FB field data into its lines (after ^FH decoding, as a printer does)."""
    lines, cur, i = [], [], 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair == "\\&":
            lines.append("".join(cur))
            cur = []
            i += 2
        elif pair == "\\\\":
            cur.append("\\")
            i += 2
        else:
            cur.append(text[i])
            i += 1
    lines.append("".join(cur))
    return lines


@dataclass
class _Format:
    name: str | None = None  # ^DF target
    recall: str | None = None  # ^XF source
    quantity: int = 1
    fields: list[_Field] = field(default_factory=list)


def _decode_fh(data: bytes, indicator: bytes | None) -> bytes:
    if indicator is None:
        return data
    pattern = re.escape(indicator) + rb"([0-9A-Fa-f]{2})"
    return re.sub(pattern, lambda m: bytes([int(m.group(1), 16)]), data)


def _parse_format(body: bytes) -> _Format:
    """Parse the commands between ^XA and ^XZ into fields (enough ZPL for our labels)."""
    fmt = _Format()
    current = _Field()
    for token in body.split(b"^")[1:]:
        cmd = token[:2].upper()
        args = token[2:]
        if cmd == b"FD":
            current.data = args
        elif cmd == b"FS":
            if current.data is not None or current.fn is not None:
                fmt.fields.append(current)
            current = _Field()
        elif cmd == b"FH":
            indicator = args.strip()[:1]
            current.hex_indicator = indicator or b"_"
        elif cmd == b"FN":
            digits = re.match(rb"\s*(\d+)", args)
            current.fn = int(digits.group(1)) if digits else None
        elif cmd == b"BC":
            current.kind = "code128"
        elif cmd == b"BX":
            current.kind = "datamatrix"
        elif cmd == b"FB":
            current.block = True
        elif cmd == b"DF":
            fmt.name = args.strip().decode("ascii", "replace")
        elif cmd == b"XF":
            fmt.recall = args.strip().decode("ascii", "replace")
        elif cmd == b"PQ":
            digits = re.match(rb"\s*(\d+)", args)
            fmt.quantity = int(digits.group(1)) if digits else 1
    return fmt


class PrinterSimulator:
    """A Zebra-like printer on a pty: `sim.start(); open sim.port with pyserial; sim.stop()`."""

    def __init__(
        self,
        baud: int | None = None,
        model: str = "ZD421-203dpi",
        firmware: str = "V84.20.18Z",
        dpmm: int = 8,
        memory_kb: int = 8192,
        print_time: float = 0.0,
        silent_on_paper_out: bool = False,
        port_link: str | None = None,
    ) -> None:
        self.baud = baud
        # A stable path (a symlink to the pty) to give `printer add`: the pty's own name
        # (/dev/pts/N) changes with every start.
        self.port_link = os.path.abspath(port_link) if port_link else None
        self.device = ""
        self.model = model
        self.firmware = firmware
        self.dpmm = dpmm
        self.memory_kb = memory_kb
        self.print_time = print_time
        # Many Zebra firmwares answer ~HS with the paper-out flag; some stay silent instead.
        self.silent_on_paper_out = silent_on_paper_out
        self.port: str = ""
        self.raw = bytearray()
        self.errors: list[str] = []
        self.stored: dict[str, _Format] = {}
        self.formats_received = 0
        self.cancelled = 0
        self._printed: list[PrintedLabel] = []
        self._pending: deque[PrintedLabel] = deque()
        self._lock = threading.Condition()
        self._stream = b""
        self._format_buf = b""
        self._paper_out = False
        self._paper_left: int | None = None
        self._head_open = False
        self._paused = False
        self._unplug_after: int | None = None
        self._master = -1
        self._slave = -1
        self._running = False
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> PrinterSimulator:
        """Open the pty and start the receiving and printing threads."""
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.device = self.port = os.ttyname(self._slave)
        if self.port_link:
            # Swapped in atomically: a reader never sees a half-made path.
            tmp = f"{self.port_link}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.device, tmp)
            os.replace(tmp, self.port_link)
            self.port = self.port_link
        self._running = True
        self._threads = [
            threading.Thread(target=self._receive_loop, name="sim-receive", daemon=True),
            threading.Thread(target=self._print_loop, name="sim-print", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop the threads and close the pty."""
        with self._lock:
            self._running = False
            self._lock.notify_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2)
        self._close_fds()
        if self.port_link and os.path.islink(self.port_link):
            # Only our own link: another simulator may have taken the path since.
            if os.readlink(self.port_link) == self.device:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.port_link)

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    def __enter__(self) -> PrinterSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------

    def paper_out_after(self, n: int) -> None:
        """Print n more labels, then run out of paper (later formats wait in the buffer)."""
        with self._lock:
            self._paper_left = n
            if n <= 0:
                self._paper_out = True
            self._lock.notify_all()

    def clear_fault(self) -> None:
        """Reload paper and close the head: printing resumes with what is buffered."""
        with self._lock:
            self._paper_out = False
            self._paper_left = None
            self._head_open = False
            self._lock.notify_all()

    def head_open(self, is_open: bool = True) -> None:
        """Open or close the print head; with the head open the printer answers nothing."""
        with self._lock:
            self._head_open = is_open
            self._lock.notify_all()

    def pause(self, paused: bool = True) -> None:
        """Pause or resume printing (as the front-panel pause key does)."""
        with self._lock:
            self._paused = paused
            self._lock.notify_all()

    def unplug_after(self, n_formats: int) -> None:
        """Vanish (close the pty: the client gets EIO) once n_formats labels have arrived."""
        self._unplug_after = n_formats

    def unplug(self) -> None:
        """Vanish now, as a printer whose USB cable is pulled."""
        self.stop()

    # -- observation -----------------------------------------------------------------------

    @property
    def printed(self) -> list[PrintedLabel]:
        """Return the labels printed so far, in order."""
        with self._lock:
            return list(self._printed)

    @property
    def pending(self) -> int:
        """Return how many labels wait in the receive buffer."""
        with self._lock:
            return len(self._pending)

    def wait_printed(self, n: int, timeout: float = 5.0) -> bool:
        """Wait until at least n labels have printed; tell whether they did in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._printed) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    # -- receiving -------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        # Bytes are consumed no faster than the line carries them, so a writer sees the
        # kernel buffer drain at baud/10 bytes per second as on a real serial link.
        chunk = max(1, (self.baud or 0) // 1000) if self.baud else 4096
        next_time = time.monotonic()
        while self._running:
            try:
                readable, _, _ = select.select([self._master], [], [], 0.05)
            except (OSError, ValueError):
                break
            if not readable:
                continue
            try:
                data = os.read(self._master, chunk)
            except OSError:
                break
            if not data:
                continue
            if self.baud:
                now = time.monotonic()
                # Up to 20 ms of idle line time may be banked: sleep overshoot must not add up
                # over a long stream, yet a long idle spell must not allow a burst.
                next_time = max(next_time, now - 0.02) + len(data) * 10 / self.baud
                if next_time > now:
                    time.sleep(next_time - now)
            self.raw += data
            self._feed(data)
            if self._unplug_after is not None and self.formats_received >= self._unplug_after:
                with self._lock:
                    self._running = False
                    self._lock.notify_all()
                self._close_fds()
                break

    def _reply(self, data: bytes) -> None:
        if self.baud:
            time.sleep(len(data) * 10 / self.baud)
        try:
            os.write(self._master, data)
        except OSError as exc:
            self.errors.append(f"reply failed: {exc}")

    def _feed(self, data: bytes) -> None:
        self._stream += data
        while True:
            i = self._stream.find(b"~")
            if i < 0:
                self._format_bytes(self._stream)
                self._stream = b""
                return
            self._format_bytes(self._stream[:i])
            if len(self._stream) < i + 3:
                self._stream = self._stream[i:]
                return
            command = self._stream[i + 1 : i + 3].upper()
            self._stream = self._stream[i + 3 :]
            # Control commands act on arrival, even in the middle of a format, as on a Zebra.
            self._control(command)

    def _control(self, command: bytes) -> None:
        if command == b"HS":
            with self._lock:
                if self._head_open or (self._paper_out and self.silent_on_paper_out):
                    return
                reply = format_host_status(
                    paper_out=self._paper_out,
                    paused=self._paused,
                    formats_in_buffer=len(self._pending),
                )
            self._reply(reply)
        elif command == b"HI":
            if self._head_open:
                return
            ident = f"{self.model},{self.firmware},{self.dpmm},{self.memory_kb}KB"
            self._reply(b"\x02" + ident.encode("ascii") + b"\x03\r\n")
        elif command == b"JA":
            with self._lock:
                self.cancelled += len(self._pending)
                self._pending.clear()
                self._format_buf = b""
                self._lock.notify_all()
        else:
            self.errors.append(f"unsupported control command ~{command.decode('ascii', 'replace')}")

    def _format_bytes(self, data: bytes) -> None:
        if not data:
            return
        self._format_buf += data
        while True:
            upper = self._format_buf.upper()
            end = upper.find(b"^XZ")
            if end < 0:
                return
            start = upper.find(b"^XA")
            body = self._format_buf[start + 3 : end] if 0 <= start < end else b""
            if start < 0 or start > end:
                self.errors.append("^XZ without ^XA")
            self._format_buf = self._format_buf[end + 3 :]
            self._handle_format(_parse_format(body))

    def _handle_format(self, fmt: _Format) -> None:
        if fmt.name is not None:
            self.stored[_format_key(fmt.name)] = fmt
            return
        fields = fmt.fields
        if fmt.recall is not None:
            stored = self.stored.get(_format_key(fmt.recall))
            if stored is None:
                self.errors.append(f"recall of unknown format {fmt.recall}")
                return
            values = {
                f.fn: _decode_fh(f.data or b"", f.hex_indicator)
                for f in fmt.fields
                if f.fn is not None
            }
            fields = []
            for f in stored.fields:
                data = values.get(f.fn) if f.fn is not None else None
                if data is None and f.data is not None:
                    data = _decode_fh(f.data, f.hex_indicator)
                if data:
                    fields.append(_Field(f.kind, None, f.fn, data, f.block))
            fields += [f for f in fmt.fields if f.fn is None]
        texts, barcodes = [], []
        for f in fields:
            raw = _decode_fh(f.data or b"", f.hex_indicator)
            if not raw:
                continue
            text = raw.decode("utf-8", "replace")
            if f.kind == "text":
                texts.extend(_block_lines(text) if f.block else [text])
            else:
                barcodes.append((f.kind, text))
        label = PrintedLabel(tuple(texts), tuple(barcodes), fmt.recall)
        with self._lock:
            self.formats_received += 1
            for _ in range(max(1, fmt.quantity)):
                self._pending.append(label)
            self._lock.notify_all()

    # -- printing --------------------------------------------------------------------------

    def _can_print(self) -> bool:
        return not (self._paper_out or self._head_open or self._paused)

    def _print_loop(self) -> None:
        while True:
            with self._lock:
                while self._running and not (self._pending and self._can_print()):
                    self._lock.wait(0.1)
                if not self._running:
                    return
                label = self._pending[0]
            if self.print_time:
                time.sleep(self.print_time)
            with self._lock:
                # A ~JA or a fault during the print time means this label did not come out.
                if not self._pending or self._pending[0] is not label or not self._can_print():
                    continue
                self._pending.popleft()
                self._printed.append(label)
                if self._paper_left is not None:
                    self._paper_left -= 1
                    if self._paper_left <= 0:
                        self._paper_out = True
                        self._paper_left = None
                self._lock.notify_all()


def _stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Run a simulator until interrupted, printing its port path and each printed label."""
    parser = argparse.ArgumentParser(description="Simulated ZPL label printer on a pty")
    parser.add_argument("--baud", type=int, default=9600, help="throttle (0: unthrottled)")
    parser.add_argument("--print-time", type=float, default=0.2, help="seconds per label")
    parser.add_argument(
        "--port-link",
        help="stable path to create as a link to the pty (e.g. /tmp/zebra0), for `printer add`",
    )
    args = parser.parse_args(argv)
    sim = PrinterSimulator(
        baud=args.baud or None, print_time=args.print_time, port_link=args.port_link
    ).start()
    # Stopped by a service manager (SIGTERM) as by Ctrl-C: the link is removed either way.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    seen = 0
    try:
        print(sim.port, flush=True)
        while True:
            time.sleep(0.2)
            printed = sim.printed
            for label in printed[seen:]:
                print(f"printed: {label.barcode} | {' | '.join(label.texts)}", flush=True)
            seen = len(printed)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
