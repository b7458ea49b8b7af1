"""Simulate a serial barcode scanner on a pseudo-terminal (a real termios device for pyserial).

``ScannerSimulator().port`` is a symlink in a temp dir that points at the current ``/dev/pts/N``;
``unplug()`` tears the pty down (the reader sees an I/O error, as with a pulled USB cable) and
``replug()`` makes a new pty behind the same path, so a reader reopens the path it was given.

Run ``python -m scanners.sim --port-link /tmp/scanner0`` to type scans from stdin.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import select
import shutil
import sys
import tempfile
import time
import tty
from collections.abc import Sequence

from scanners.framing import suffix_bytes

__all__ = ["ScannerSimulator", "main"]

# Sentinel: "use the simulator's default" (None already means "no AIM identifier").
_DEFAULT = object()


class ScannerSimulator:
    """A scanner on a pty: type scans, noise, unplug and replug it."""

    def __init__(
        self,
        suffix: str | bytes = "CR",
        aim: str | None = None,
        *,
        port_link: str | None = None,
        write_timeout_s: float = 10.0,
    ) -> None:
        """Create the pty and its stable symlink (`port_link`, or one in a fresh temp dir)."""
        self.suffix = suffix_bytes(suffix)
        self.aim = aim
        self.write_timeout_s = write_timeout_s
        self._tmpdir: str | None = None
        if port_link is None:
            self._tmpdir = tempfile.mkdtemp(prefix="scanner-sim-")
            port_link = os.path.join(self._tmpdir, "scanner")
        self.port = os.path.abspath(port_link)
        self._master: int | None = None
        self._slave: int | None = None
        self.device: str | None = None
        self.plugs = 0
        self.replug()

    # -- plugging -----------------------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        """Return True while a pty is behind `port`."""
        return self._master is not None

    def replug(self) -> None:
        """Plug in (again): a new pty, and `port` now points at it."""
        self.unplug()
        master, slave = pty.openpty()
        # Raw: no CR->LF translation, no echo, no line buffering, 8-bit clean before pyserial
        # opens the slave and sets its own (also raw) attributes.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.device = os.ttyname(slave)
        # Swap the link atomically so a reader never sees a half-made path.
        tmp = f"{self.port}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self.device, tmp)
        os.replace(tmp, self.port)
        self.plugs += 1

    def unplug(self) -> None:
        """Pull the cable: close the pty (the reader's next read fails) and remove the path."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self.device = None

    def close(self) -> None:
        """Unplug and remove the temp dir."""
        self.unplug()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> ScannerSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- typing -------------------------------------------------------------------------------

    def frame(
        self, data: str | bytes, suffix: str | bytes | None = None, aim: object = _DEFAULT
    ) -> bytes:
        """Return the bytes the scanner sends for one read of `data`."""
        if aim is _DEFAULT:
            aim = self.aim
        body = data.encode("utf-8") if isinstance(data, str) else data
        prefix = aim.encode("ascii") if isinstance(aim, str) else b""
        term = self.suffix if suffix is None else suffix_bytes(suffix)
        return prefix + body + term

    def scan(
        self,
        data: str | bytes,
        suffix: str | bytes | None = None,
        aim: object = _DEFAULT,
        chars_per_s: float | None = None,
        split: int | Sequence[int] | None = None,
        pause_s: float = 0.002,
    ) -> bytes:
        """Type one scan; return the bytes sent.

        suffix overrides the simulator's ("NONE" sends none); aim is an AIM identifier such as
        "]C1" (None for none; default the simulator's); chars_per_s throttles byte by byte, like a
        slow line; split cuts it into that many writes (int) or at those offsets (list), with
        `pause_s` between them so the reader sees partial reads.
        """
        payload = self.frame(data, suffix, aim)
        if chars_per_s:
            delay = 1.0 / chars_per_s
            for i in range(len(payload)):
                self.write(payload[i : i + 1])
                time.sleep(delay)
            return payload
        for i, piece in enumerate(_pieces(payload, split)):
            if i and pause_s:
                time.sleep(pause_s)
            self.write(piece)
        return payload

    def noise(self, data: bytes) -> None:
        """Send bytes that are not a scan (NULs, control bytes, glitches)."""
        self.write(data)

    def write(self, data: bytes) -> None:
        """Write raw bytes to the line; raise TimeoutError when nobody drains it in time."""
        if self._master is None:
            raise OSError("scanner is unplugged")
        view = memoryview(data)
        deadline = time.monotonic() + self.write_timeout_s
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                # The pty buffer is full: wait for the reader to drain it, but not forever.
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("scanner line is full: is a reader attached?") from None
                select.select([], [self._master], [], min(left, 0.1))
                continue
            view = view[n:]


def _pieces(payload: bytes, split: int | Sequence[int] | None) -> list[bytes]:
    if not split:
        return [payload]
    if isinstance(split, int):
        n = max(1, min(split, len(payload)))
        cuts = [len(payload) * i // n for i in range(1, n)]
    else:
        cuts = sorted({c for c in split if 0 < c < len(payload)})
    bounds = [0, *cuts, len(payload)]
    return [payload[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def main(argv: Sequence[str] | None = None) -> int:
    """Type each stdin line as a scan on a simulated scanner (``:unplug``/``:replug`` too)."""
    parser = argparse.ArgumentParser(prog="python -m scanners.sim", description=main.__doc__)
    parser.add_argument("--port-link", help="stable path to create (default: a temp path)")
    parser.add_argument("--suffix", default="CR", help="CR, LF, CRLF, TAB or NONE")
    parser.add_argument("--aim", default=None, help="AIM identifier to prefix, e.g. ]C0")
    parser.add_argument("--cps", type=float, default=None, help="throttle to chars per second")
    args = parser.parse_args(argv)
    term = suffix_bytes(args.suffix)
    with ScannerSimulator(suffix=term, aim=args.aim, port_link=args.port_link) as sim:
        print(f"scanner on {sim.port} -> {sim.device}", file=sys.stderr, flush=True)
        for line in sys.stdin:
            text = line.rstrip("\r\n")
            try:
                if text == ":unplug":
                    sim.unplug()
                elif text == ":replug":
                    sim.replug()
                    print(f"replugged: {sim.port} -> {sim.device}", file=sys.stderr, flush=True)
                elif text:
                    # GS1 element strings can be typed with a visible stand-in for GS.
                    sim.scan(text.replace("<GS>", "\x1d"), suffix=term, chars_per_s=args.cps)
            except (OSError, TimeoutError) as exc:
                print(f"not sent: {exc}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
