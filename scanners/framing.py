"""Frame the byte stream of a serial barcode scanner into scans (pure: no I/O, no clock).

A scanner sends each read as ``[AIM identifier] data suffix``. The framer cuts the stream on the
configured suffix (CR, LF and CRLF are one family: any line end ends a scan) and falls back to an
inter-byte gap for scanners that send none; from one that has sent its suffix, a pause cuts a
scan short, and that comes back as an error, never as data. It drops line noise, strips the AIM
symbology identifier (``]C1``, ``]d2``, ...) into ``Scan.symbology`` and keeps GS (0x1D)
separators inside the data so GS1 element strings stay parseable.

Line noise is a byte that cannot begin a scan: a C0 control other than GS, RS and EOT, DEL, or a
byte that does not start a character of the scanner's encoding (in UTF-8: 0x80-0xBF, 0xC0,
0xC1, 0xF5-0xFF, or a lead byte without its continuation bytes). A glitch on plug-in or a noisy
RS-232 line sends such bytes, often within the inter-byte gap before a scan, so they land in the
scan's frame. The framer drops them from the start of a frame (and control bytes from its end)
and drops a frame made only of them; what it dropped waits in `take_noise()` for the reader to
log. Noise *inside* the data is not dropped: a scan with a bad byte in the middle comes back as
an error scan, since the bytes around it may be a different code. Dropping a leading byte can
never turn one valid code into another: a mangled first character leaves a code without its
first character, which the check character or the format refuses downstream.

It never raises on input: whatever arrives, bad frames come back as a ``Scan`` with ``error`` set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "GS",
    "GS1_SYMBOLOGIES",
    "SUFFIXES",
    "Framer",
    "Scan",
    "split_aim",
    "suffix_bytes",
]

GS = "\x1d"

# Terminators a scanner can be programmed to send after each read.
SUFFIXES: dict[str, bytes] = {
    "CR": b"\r",
    "LF": b"\n",
    "CRLF": b"\r\n",
    "TAB": b"\t",
}

# AIM identifiers whose data is a GS1 element string (FNC1 in first position is implied by them):
# GS1-128, GS1 DataMatrix, GS1 QR Code, GS1 DataBar, GS1 DotCode.
GS1_SYMBOLOGIES = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})

# Every C0 control byte and DEL: a frame made only of these is line noise (a glitch on plug-in,
# a stray NUL, XON/XOFF) and is dropped rather than turned into a scan.
_CONTROL = bytes(range(0x20)) + b"\x7f"
# Stripped from the ends of a frame. GS, RS and EOT are kept: they carry meaning in GS1 and in
# ISO/IEC 15434 envelopes (``[)>RS06GS...RS EOT``), where a trailing EOT is part of the data.
_EDGE_NOISE = bytes(b for b in _CONTROL if b not in (0x1D, 0x1E, 0x04))

# The line-end suffixes: whichever of them the agent is set to, CR, LF and CRLF all end a scan,
# so scanners programmed differently can share one bench (a CRLF leaves an empty frame: noise).
_LINE_ENDS = frozenset({b"\r", b"\n", b"\r\n"})
_LINE_END_RE = re.compile(rb"[\r\n]")

# Keep at most this many dropped noise runs for the reader to log (memory stays bounded).
_NOISE_KEEP = 32

# ``]`` + symbology code character + modifier character (ISO/IEC 15424).
_AIM_RE = re.compile(rb"\][A-Za-z][0-9A-Za-z]")


@dataclass(frozen=True, slots=True)
class Scan:
    """One framed read from a scanner."""

    data: str
    symbology: str | None = None
    raw: bytes = b""
    error: str | None = None
    # Which reader produced it; not part of identity so equal reads compare equal.
    source: str | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """Return True when the scan framed and decoded cleanly."""
        return self.error is None

    @property
    def is_gs1(self) -> bool:
        """Return True when the AIM identifier says the data is a GS1 element string."""
        return self.symbology in GS1_SYMBOLOGIES

    @property
    def text(self) -> str:
        """Return the data with its AIM identifier in front (the form `biip.parse` accepts)."""
        return (self.symbology or "") + self.data


def suffix_bytes(suffix: str | bytes) -> bytes:
    """Return the terminator bytes for a suffix name (CR, LF, CRLF, TAB, NONE) or raw bytes."""
    if isinstance(suffix, bytes):
        return suffix
    key = suffix.upper()
    if key in ("", "NONE"):
        return b""
    try:
        return SUFFIXES[key]
    except KeyError:
        raise ValueError(f"unknown suffix {suffix!r}; expected one of {sorted(SUFFIXES)}") from None


def split_aim(frame: bytes) -> tuple[str | None, bytes]:
    """Split a leading AIM identifier off a frame; return (identifier or None, rest)."""
    if _AIM_RE.match(frame):
        return frame[:3].decode("ascii"), frame[3:]
    return None, frame


class Framer:
    """Cut a scanner byte stream into `Scan`s on a suffix, with a gap fallback and a length cap."""

    def __init__(
        self,
        suffix: str | bytes = "CR",
        gap_s: float | None = 0.05,
        max_len: int = 512,
        *,
        aim: bool | None = None,
        encoding: str = "utf-8",
    ) -> None:
        """Configure the framer.

        suffix: CR, LF, CRLF, TAB (or raw bytes); gap_s: idle time after which `poll` ends a
        frame that has no suffix (None disables); max_len: longest frame in bytes, AIM
        identifier included, suffix excluded; aim: True requires an AIM identifier, False never
        strips one, None strips one when present; encoding: how the scanner encodes text.
        """
        term = suffix_bytes(suffix)
        if not term:
            raise ValueError("suffix must not be empty; use gap_s for scanners without a suffix")
        if max_len < 1:
            raise ValueError("max_len must be positive")
        if gap_s is not None and gap_s <= 0:
            raise ValueError("gap_s must be positive or None")
        self.suffix = term
        self._line_end = term in _LINE_ENDS
        self.gap_s = gap_s
        self.max_len = max_len
        self.aim = aim
        self.encoding = encoding
        self._buf = bytearray()
        # True while skipping the rest of an over-long frame (already reported) up to its suffix.
        self._discarding = False
        self._last: float | None = None
        # Once this scanner has ended a scan with the suffix, it is programmed to send one: a
        # frame ended by a pause is then a scan cut short (a serial server's hiccup, a slow
        # link), and must not act as a shorter code (BOX-0002 for BOX-0002:C4).
        self._suffix_seen = False
        self._noise: list[bytes] = []
        # The suffix this scanner really sends when it is not the configured one (a frame ended
        # by a pause with another terminator at its end): the agent tells the operator.
        self.heard_suffix: str | None = None

    def take_noise(self) -> list[bytes]:
        """Return the runs of line noise dropped since the last call, and forget them."""
        noise, self._noise = self._noise, []
        return noise

    def _drop_noise(self, noise: bytes) -> None:
        if noise and len(self._noise) < _NOISE_KEEP:
            self._noise.append(noise)

    def split_noise(self, frame: bytes) -> tuple[bytes, bytes]:
        """Split the line noise off the start of a frame; return (noise, the rest)."""
        i = 0
        n = len(frame)
        while i < n:
            b = frame[i]
            if b in _EDGE_NOISE:
                i += 1
                continue
            if b < 0x80 or self._starts_character(frame, i):
                break
            i += 1
        return frame[:i], frame[i:]

    def _starts_character(self, frame: bytes, i: int) -> bool:
        # A character of any common encoding is at most 4 bytes: one of the first 4 prefixes
        # decodes exactly when the byte at i begins a character.
        for width in range(1, 5):
            if i + width > len(frame):
                return False
            try:
                frame[i : i + width].decode(self.encoding)
            except UnicodeDecodeError:
                continue
            return True
        return False

    @property
    def pending(self) -> int:
        """Return how many bytes wait for a suffix or a gap."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (e.g. after the port was lost mid-scan)."""
        self._buf.clear()
        self._discarding = False
        self._last = None
        self._suffix_seen = False  # another scanner may be plugged in
        self._noise.clear()
        self.heard_suffix = None

    def feed(self, data: bytes, now: float) -> list[Scan]:
        """Add bytes received at time `now`; return the scans they complete.

        A late read is not a pause of the scanner (the reader thread may just have been slow),
        so `feed` never ends a frame by time; call `poll` when the line has been idle.
        """
        if not data:
            return []
        self._last = now
        out: list[Scan] = []
        buf = self._buf
        buf += data
        term = self.suffix
        tlen = 1 if self._line_end else len(term)
        start = 0
        while True:
            if self._line_end:
                found = _LINE_END_RE.search(buf, start)
                end = found.start() if found else -1
            else:
                end = buf.find(term, start)
            if end < 0:
                break
            self._suffix_seen = True
            if self._discarding:
                # The suffix after an over-long frame: resynchronised, nothing to emit.
                self._discarding = False
            else:
                self._emit(bytes(buf[start:end]), out)
            start = end + tlen
        if start:
            del buf[:start]
        # Keep tlen-1 bytes beyond max_len: they may be the first half of a CRLF.
        if len(buf) > self.max_len + tlen - 1:
            if not self._discarding:
                out.append(Scan("", None, bytes(buf[: self.max_len]), "too long"))
                self._discarding = True
            # Memory stays bounded however long the line: keep only a possible partial suffix.
            del buf[: len(buf) - (tlen - 1)]
        return out

    def poll(self, now: float) -> list[Scan]:
        """Return the pending frame when the line has been idle for `gap_s`.

        From a scanner that sends no suffix this is its scan; from one that has sent its suffix
        before, it is a scan cut short, returned as an error (the operator scans again).
        """
        if self.gap_s is None or self._last is None or now - self._last < self.gap_s:
            return []
        if self._suffix_seen and self._buf and not self._discarding:
            frame = bytes(self._buf[: self.max_len])
            cut = []
            noise, rest = self.split_noise(frame)
            self._drop_noise(noise)
            if rest.translate(None, _CONTROL):  # not mere line noise
                cut.append(
                    Scan(
                        self._decode_lenient(rest.strip(_EDGE_NOISE)),
                        None,
                        frame,
                        "incomplete: the scanner stopped before the end of the scan",
                    )
                )
            self._buf.clear()
            self._discarding = False
            self._last = None
            return cut
        return self.flush()

    def flush(self) -> list[Scan]:
        """End the pending frame now, as if its suffix had arrived."""
        out: list[Scan] = []
        if self._buf and not self._discarding:
            self._note_other_suffix(bytes(self._buf))
            self._emit(bytes(self._buf), out)
        self._buf.clear()
        # An idle line also ends an over-long frame: the next byte starts a fresh scan.
        self._discarding = False
        self._last = None
        return out

    def _note_other_suffix(self, frame: bytes) -> None:
        # Only a frame ended by a pause can end in another scanner's terminator.
        if self._line_end:
            other = "TAB" if frame.endswith(b"\t") else None
        elif frame.endswith(b"\r\n"):
            other = "CRLF"
        elif frame.endswith((b"\r", b"\n")):
            other = "CR" if frame.endswith(b"\r") else "LF"
        else:
            other = None
        if other is not None:
            self.heard_suffix = other

    def _emit(self, frame: bytes, out: list[Scan]) -> None:
        if len(frame) > self.max_len:
            out.append(Scan("", None, frame[: self.max_len], "too long"))
            return
        noise, body = self.split_noise(frame)
        if not body.translate(None, _CONTROL):
            self._drop_noise(frame)  # empty or pure line noise: not a scan
            return
        self._drop_noise(noise)
        body = body.strip(_EDGE_NOISE)
        symbology: str | None = None
        if self.aim is not False:
            symbology, body = split_aim(body)
            if symbology is None and self.aim:
                out.append(Scan(self._decode_lenient(body), None, frame, "missing AIM identifier"))
                return
        if not body:
            out.append(Scan("", symbology, frame, "empty"))
            return
        try:
            text = body.decode(self.encoding)
        except UnicodeDecodeError:
            label = "UTF-8" if self.encoding.replace("-", "").lower() == "utf8" else self.encoding
            out.append(Scan(self._decode_lenient(body), symbology, frame, f"invalid {label}"))
            return
        out.append(Scan(text, symbology, frame))

    def _decode_lenient(self, body: bytes) -> str:
        return body.decode(self.encoding, errors="replace")
