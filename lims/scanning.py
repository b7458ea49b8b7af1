"""What a scanned string is by its shape (pure; the formats are listed in docs/bench.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import biip
from biip.gs1_messages import GS1Message

from lims.identifiers import check_sample_barcode, mod37_2
from lims.inputs import check_line

__all__ = [
    "COMMANDS",
    "CONDITIONS",
    "MAX_SCAN_LENGTH",
    "REASONS",
    "Parsed",
    "classify",
    "classify_strict",
    "printable",
]

# The framer caps frames at 512 bytes; no label of ours comes near it.
MAX_SCAN_LENGTH = 512
GS = "\x1d"
GS1_SYMBOLOGIES = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})

# Command code -> station mode (None: a command that is not a mode).
COMMANDS: dict[str, str | None] = {
    "RECEIVE": "receive",
    "QUARANTINE": "quarantine",
    "STORE": "store",
    "CHECKOUT": "check_out",
    "CHECKIN": "check_in",
    "HANDOVER": "hand_over",
    "DISPOSE": "dispose",
    # Supplier material: each GS1 barcode scanned is received as a material lot (quarantine).
    "RECEIVE-MATERIAL": "receive_material",
    # Materials into a vector lot: scan the lot's label, then each material (GS1 or ours).
    "USE-MATERIAL": "use_material",
    "DONE": None,  # end the task: clear mode, target and settings; the operator stays
    "LOGOUT": None,  # end the task and sign the operator off
    # Acknowledge the refusals on screen; at a stopped station, the first step of its release.
    "ACK": None,
}
# Preset codes printed on the bench sheet; anything else after CMD:REASON: is taken as written.
REASONS = {
    "EXPIRED": "expired",
    "DAMAGED": "container damaged",
    "CONTAMINATED": "contaminated",
    "QC-FAIL": "failed QC",
    "NOT-NEEDED": "no longer needed",
    "SPILLED": "spilled",
}
CONDITIONS = {
    "INTACT": "intact",
    "FROZEN": "frozen, dry ice",
    "COLD": "intact, 2-8 C on arrival",
    "AMBIENT": "intact, ambient",
    "THAWED": "thawed on arrival",
    "DAMAGED": "container damaged on arrival",
}
MAX_ARGUMENT = 200

_AIM_RE = re.compile(r"^\][A-Za-z][0-9A-Za-z]", re.ASCII)
_SAMPLE_RE = re.compile(r"^S(\d{2})-(\d{6})-([0-9A-Z*])$", re.ASCII)
# Anything shaped like one of our sample barcodes but not exactly one: a misread, not a code.
_SAMPLE_LIKE_RE = re.compile(r"^S\d{2}-?\d{6}", re.IGNORECASE | re.ASCII)
_COI_RE = re.compile(r"^COI-(\d{2})-(\d{6})-([0-9A-Z*])$", re.ASCII)
_COI_LIKE_RE = re.compile(r"^COI-?\d{2}", re.IGNORECASE | re.ASCII)
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,63}$", re.ASCII)
_POSITION_RE = re.compile(
    r"^(?P<code>[A-Za-z0-9][A-Za-z0-9._/+-]{0,63}):(?P<pos>[A-Za-z]\d{1,2})$", re.ASCII
)
_HRI_RE = re.compile(r"^\(\d{2,4}\)", re.ASCII)
# C0 controls and DEL are never part of a code of ours; GS, RS and EOT carry GS1 / ISO 15434.
_BAD_CONTROL_RE = re.compile(r"[\x00-\x03\x05-\x1c\x1f\x7f]")
_GS1_AIS = {"00": "sscc", "01": "gtin", "10": "lot", "17": "expiry", "21": "serial"}


@dataclass(frozen=True)
class Parsed:
    """What the shape of a scan says it is (or why it cannot be anything)."""

    kind: str  # sample | coi | location | command | gs1 | code | refused
    value: str = ""  # the normalised code: barcode, location code, command name, lot ...
    position: str | None = None  # location scans: the box position, e.g. A1
    argument: str | None = None  # CMD:REASON:<argument>, CMD:CONDITION:<argument>
    gs1: dict[str, str] | None = None  # gtin, lot, expiry (ISO date), serial, sscc, hri
    code: str | None = None  # refusals: a stable code (bad_check_character, unknown_code ...)
    message: str | None = None  # refusals: what to tell the operator
    digits: str | None = None  # a GS1 scan of only digits: the scan as it came

    @property
    def ok(self) -> bool:
        """Return True unless the scan is refused by its shape alone."""
        return self.kind != "refused"


def _refuse(code: str, message: str) -> Parsed:
    return Parsed("refused", code=code, message=message)


def printable(data: str, limit: int = 80) -> str:
    """Return data safe to show and store: control bytes escaped (GS as <GS>), cut to limit."""
    out = []
    for ch in data[:limit]:
        if ch == GS:
            out.append("<GS>")
        elif ch < " " or ch == "\x7f" or "\ud800" <= ch <= "\udfff":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    text = "".join(out)
    return text + f"... ({len(data)} characters)" if len(data) > limit else text


def classify(data: Any, symbology: str | None = None) -> Parsed:
    """Sort a scanned string into a kind by its shape; refuse what cannot be ours. Never raises."""
    try:
        return classify_strict(data, symbology)
    except Exception as exc:  # noqa: BLE001 - a parser bug must refuse a scan, not stop a bench
        return _refuse("unreadable", f"this scan could not be read ({type(exc).__name__})")


def classify_strict(data: Any, symbology: str | None = None) -> Parsed:
    """Classify like `classify` but let a bug raise (the tests and the fuzzer call this)."""
    if not isinstance(data, str):
        return _refuse("unreadable", "a scan must be text")
    if len(data) > MAX_SCAN_LENGTH:
        return _refuse("too_long", f"a scan of {len(data)} characters is not a label of ours")
    if any("\ud800" <= ch <= "\udfff" for ch in data):
        return _refuse("unreadable", "the scan is not valid text (broken UTF-8); scan again")
    if symbology is not None and not _AIM_RE.match(symbology):
        symbology = None
    text = data.strip(" \t\r\n")
    if symbology is None:
        # A keyboard-wedge scanner may type its AIM identifier in front of the data.
        m = _AIM_RE.match(text)
        if m:
            symbology, text = m.group(0), text[3:]
    if not text.strip(GS):
        return _refuse("empty", "the scan was empty; scan again")
    if _BAD_CONTROL_RE.search(text):
        return _refuse("unreadable", f"the scan holds control characters: {printable(text)}")
    if symbology in GS1_SYMBOLOGIES or GS in text or _HRI_RE.match(text):
        return _gs1(text, symbology)
    if "\x1e" in text or "\x04" in text:
        return _refuse("unreadable", f"the scan holds control characters: {printable(text)}")
    if text.upper().startswith("CMD:"):
        return _command(text)
    if text.isascii() and text.isdigit() and len(text) >= 8:
        parsed = _gs1(text, None)
        if parsed.ok:
            return replace(parsed, digits=text)
    upper = text.upper()
    if _SAMPLE_LIKE_RE.match(text):
        m = _SAMPLE_RE.match(upper)
        if not m:
            return _refuse(
                "bad_sample_barcode",
                f"{printable(text)} looks like a sample barcode but is malformed "
                "(expected S26-000123-K); scan again or type it",
            )
        if not check_sample_barcode(upper):
            return _refuse(
                "bad_check_character",
                f"{upper}: wrong check character (misread or damaged label); scan again, "
                "and if it repeats, quarantine the tube and report the label",
            )
        return Parsed("sample", upper)
    if _COI_LIKE_RE.match(text):
        m = _COI_RE.match(upper)
        if not m or mod37_2(f"COI{m.group(1)}{m.group(2)}") != m.group(3):
            return _refuse(
                "bad_check_character",
                f"{printable(text)}: not a valid COI label (wrong format or check character)",
            )
        return Parsed("coi", upper)
    m = _POSITION_RE.match(text)
    if m:
        return Parsed("location", m.group("code").upper(), position=m.group("pos").upper())
    if _CODE_RE.match(text):
        return Parsed("code", text)
    return _refuse("unknown_code", f"{printable(text)} is not a code this LIMS uses")


def _command(text: str) -> Parsed:
    body = text[4:]
    name, sep, arg = body.partition(":")
    name = name.strip().upper()
    if name in ("REASON", "CONDITION"):
        arg = arg.strip()
        if not sep or not arg:
            return _refuse("bad_command", f"CMD:{name}: needs a value, e.g. CMD:{name}:...")
        if len(arg) > MAX_ARGUMENT:
            return _refuse("bad_command", f"CMD:{name} values are at most {MAX_ARGUMENT} chars")
        try:
            # The value goes into the record of every tube scanned after it.
            check_line(arg)
        except ValueError as exc:
            return _refuse("bad_command", f"CMD:{name}: the value {exc}")
        presets = REASONS if name == "REASON" else CONDITIONS
        return Parsed("command", name, argument=presets.get(arg.upper(), arg))
    if name in COMMANDS and not sep:
        return Parsed("command", name)
    known = ", ".join(f"CMD:{c}" for c in (*COMMANDS, "REASON:...", "CONDITION:..."))
    return _refuse("unknown_command", f"unknown command {printable(text)}; known: {known}")


def _gs1(text: str, symbology: str | None) -> Parsed:
    try:
        if _HRI_RE.match(text):
            message = GS1Message.parse_hri(text)
        else:
            result = biip.parse((symbology or "") + text)
            message = result.gs1_message
            if message is None:
                if result.gtin is not None and symbology is None and text.isdigit():
                    gtin = result.gtin.value
                    return Parsed("gs1", gtin, gs1={"gtin": gtin, "hri": f"(01){gtin}"})
                err = result.gs1_message_error or "no GS1 application identifiers"
                return _refuse("gs1_unreadable", f"unreadable GS1 code: {printable(err, 200)}")
    except (biip.BiipException, IndexError, ValueError) as exc:
        # biip 5.2.0 raises IndexError for a lone "]" (after its own GS stripping), not only
        # its ParseError; found by bench/fuzz_scan_parser.py. Either way: unreadable.
        return _refuse("gs1_unreadable", f"unreadable GS1 code: {printable(str(exc), 200)}")
    if not message.element_strings:
        return _refuse("gs1_unreadable", "unreadable GS1 code: no application identifiers")
    for es in message.element_strings:
        problem = es.gtin_error or es.sscc_error or es.gln_error
        if problem:
            # A failed check digit is a misread or a bad label, as with our own barcodes.
            return _refuse("gs1_unreadable", f"unreadable GS1 code: {printable(problem, 200)}")
    fields: dict[str, str] = {"hri": message.as_hri()}
    for es in message.element_strings:
        name = _GS1_AIS.get(es.ai.ai)
        if name is None:
            continue
        fields[name] = es.date.isoformat() if name == "expiry" and es.date else es.value
    ref = fields.get("lot") or fields.get("gtin") or fields.get("sscc") or fields["hri"]
    return Parsed("gs1", ref, gs1=fields)
