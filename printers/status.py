"""Parse ZPL host status (~HS) and host identification (~HI) replies. Pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from printers.errors import StatusParseError

__all__ = [
    "PrinterInfo",
    "PrinterStatus",
    "count_frames",
    "format_host_status",
    "parse_host_identification",
    "parse_host_status",
    "split_frames",
]

STX = 0x02
ETX = 0x03
_FRAME_RE = re.compile(rb"\x02([^\x02\x03]*)\x03")
_BAUD_CODES = {
    0: 110,
    1: 300,
    2: 600,
    3: 1200,
    4: 2400,
    5: 4800,
    6: 9600,
    7: 19200,
    8: 28800,
    9: 38400,
    10: 57600,
    11: 14400,
}
_DPMM_TO_DPI = {6: 152, 8: 203, 12: 300, 24: 600}


def split_frames(data: bytes) -> list[bytes]:
    """Return the payloads of every complete <STX>...<ETX> frame in data."""
    return _FRAME_RE.findall(data)


def latest_reply(data: bytes, frames: int = 3) -> bytes:
    """Return the last whole reply of `frames` frames in data.

    A late answer to an earlier request may arrive just before the answer to this one; both are
    then in data, the newer last.
    """
    found = list(_FRAME_RE.finditer(data))
    if len(found) > frames and len(found) % frames == 0:
        return data[found[-frames].start() :]
    return data


def count_frames(data: bytes) -> int:
    """Count complete <STX>...<ETX> frames in data (to know when a reply is whole)."""
    return len(_FRAME_RE.findall(data))


def _fields(payload: bytes, which: str, minimum: int) -> list[str]:
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        raise StatusParseError(f"~HS {which} is not ASCII: {payload!r}") from None
    parts = [p.strip() for p in text.split(",")]
    # Firmware versions append fields; only a shortfall is an error.
    if len(parts) < minimum:
        raise StatusParseError(
            f"~HS {which} has {len(parts)} fields, expected at least {minimum}: {text!r}"
        )
    return parts


def _int(value: str, which: str, name: str) -> int:
    if not value.isdigit():
        raise StatusParseError(f"~HS {which} field {name} is not a number: {value!r}")
    return int(value)


def _flag(value: str, which: str, name: str) -> bool:
    if value not in ("0", "1"):
        raise StatusParseError(f"~HS {which} flag {name} is not 0 or 1: {value!r}")
    return value == "1"


@dataclass(frozen=True)
class PrinterStatus:
    """The printer's state as reported by ~HS."""

    interface_settings: int
    paper_out: bool
    paused: bool
    label_length_dots: int
    formats_in_buffer: int
    buffer_full: bool
    diagnostic_mode: bool
    partial_format: bool
    corrupt_ram: bool
    under_temperature: bool
    over_temperature: bool
    function_settings: int
    head_open: bool
    ribbon_out: bool
    thermal_transfer: bool
    print_mode: int
    print_width_mode: int
    label_waiting: bool
    labels_remaining: int
    graphics_stored: int
    password: str
    static_ram: bool

    @property
    def problems(self) -> list[str]:
        """List the conditions that stop the printer printing, in words."""
        named = [
            (self.paper_out, "paper out"),
            (self.head_open, "head open"),
            (self.ribbon_out, "ribbon out"),
            (self.paused, "paused"),
            (self.buffer_full, "receive buffer full"),
            (self.corrupt_ram, "configuration lost (corrupt RAM)"),
            (self.under_temperature, "head under temperature"),
            (self.over_temperature, "head over temperature"),
        ]
        return [text for on, text in named if on]

    @property
    def ready(self) -> bool:
        """Tell whether the printer can print now."""
        return not self.problems

    @property
    def reason(self) -> str:
        """Describe why the printer is not ready ("" when it is)."""
        return ", ".join(self.problems)

    @property
    def idle(self) -> bool:
        """Tell whether everything received has been printed."""
        return self.formats_in_buffer == 0 and self.labels_remaining == 0

    @property
    def baud(self) -> int | None:
        """Return the serial baud rate encoded in the interface settings, if known."""
        code = (self.interface_settings & 0x07) | ((self.interface_settings >> 5) & 0x08)
        return _BAUD_CODES.get(code)


def parse_host_status(data: bytes) -> PrinterStatus:
    """Parse a ~HS reply (three <STX>...<ETX><CR><LF> strings) into a PrinterStatus."""
    frames = split_frames(data)
    if len(frames) != 3:
        raise StatusParseError(
            f"~HS reply must hold 3 <STX>...<ETX> strings, found {len(frames)}: {data[:120]!r}"
        )
    s1 = _fields(frames[0], "string 1", 12)
    s2 = _fields(frames[1], "string 2", 11)
    s3 = _fields(frames[2], "string 3", 2)
    one, two = "string 1", "string 2"
    return PrinterStatus(
        interface_settings=_int(s1[0], one, "aaa"),
        paper_out=_flag(s1[1], one, "paper out"),
        paused=_flag(s1[2], one, "pause"),
        label_length_dots=_int(s1[3], one, "label length"),
        formats_in_buffer=_int(s1[4], one, "formats in buffer"),
        buffer_full=_flag(s1[5], one, "buffer full"),
        diagnostic_mode=_flag(s1[6], one, "diagnostic mode"),
        partial_format=_flag(s1[7], one, "partial format"),
        corrupt_ram=_flag(s1[9], one, "corrupt RAM"),
        under_temperature=_flag(s1[10], one, "under temperature"),
        over_temperature=_flag(s1[11], one, "over temperature"),
        function_settings=_int(s2[0], two, "mmm"),
        head_open=_flag(s2[2], two, "head up"),
        ribbon_out=_flag(s2[3], two, "ribbon out"),
        thermal_transfer=_flag(s2[4], two, "thermal transfer"),
        print_mode=_int(s2[5], two, "print mode"),
        print_width_mode=_int(s2[6], two, "print width mode"),
        label_waiting=_flag(s2[7], two, "label waiting"),
        labels_remaining=_int(s2[8], two, "labels remaining"),
        graphics_stored=_int(s2[10], two, "graphic images"),
        password=s3[0],
        static_ram=_flag(s3[1], "string 3", "static RAM"),
    )


@dataclass(frozen=True)
class PrinterInfo:
    """The printer's identity as reported by ~HI."""

    model: str
    firmware: str
    dpmm: int
    memory_kb: int
    options: str

    @property
    def dpi(self) -> int:
        """Return the print resolution in dots per inch."""
        return _DPMM_TO_DPI.get(self.dpmm, round(self.dpmm * 25.4))


def parse_host_identification(data: bytes) -> PrinterInfo:
    """Parse a ~HI reply (<STX>model,firmware,dpmm,memory[,options]<ETX>) into PrinterInfo."""
    frames = split_frames(data)
    if len(frames) != 1:
        raise StatusParseError(
            f"~HI reply must hold 1 <STX>...<ETX> string, found {len(frames)}: {data[:120]!r}"
        )
    try:
        parts = [p.strip() for p in frames[0].decode("ascii").split(",")]
    except UnicodeDecodeError:
        raise StatusParseError(f"~HI reply is not ASCII: {frames[0]!r}") from None
    if len(parts) < 4:
        raise StatusParseError(f"~HI reply has {len(parts)} fields, expected 4 or 5: {parts}")
    model, firmware, dpmm, memory = parts[:4]
    if not model:
        raise StatusParseError("~HI reply has an empty model")
    if not dpmm.isdigit():
        raise StatusParseError(f"~HI dots per millimetre is not a number: {dpmm!r}")
    m = re.fullmatch(r"(\d+)\s*(KB|MB)?", memory, re.IGNORECASE)
    if not m:
        raise StatusParseError(f"~HI memory is not a size: {memory!r}")
    kb = int(m.group(1)) * (1024 if (m.group(2) or "").upper() == "MB" else 1)
    return PrinterInfo(model, firmware, int(dpmm), kb, ",".join(parts[4:]))


def format_host_status(
    *,
    paper_out: bool = False,
    paused: bool = False,
    head_open: bool = False,
    ribbon_out: bool = False,
    buffer_full: bool = False,
    formats_in_buffer: int = 0,
    labels_remaining: int = 0,
    label_length_dots: int = 102,
    interface_settings: int = 0b000011110,
) -> bytes:
    """Build a ~HS reply as a Zebra sends it (for simulators and tests)."""

    def b(flag: bool) -> str:
        return "1" if flag else "0"

    s1 = (
        f"{interface_settings:03d},{b(paper_out)},{b(paused)},{label_length_dots:04d},"
        f"{formats_in_buffer:03d},{b(buffer_full)},0,0,000,0,0,0"
    )
    s2 = f"001,0,{b(head_open)},{b(ribbon_out)},0,2,6,0,{labels_remaining:08d},1,000"
    s3 = "1234,0"
    return b"".join(b"\x02" + s.encode("ascii") + b"\x03\r\n" for s in (s1, s2, s3))
