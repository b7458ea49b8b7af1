"""What a scanned string means: sample, COI label, location, badge, command, lot or GS1.

Two steps, so that the part that runs on every scan can be tested and fuzzed without a database:

- `classify(data, symbology)` is pure: it never raises and never touches the database. It sorts a
  string into a kind by its shape and refuses what cannot be ours (wrong check character,
  unknown command, control bytes, unreadable GS1, too long).
- `resolve(session, parsed, actor)` looks the classified string up: a sample the actor may see,
  a location, a badge, a vector lot. Another organisation's sample or lot is refused exactly as
  an unknown one is, so a scan never reveals that a record exists.

Scan formats (what goes on labels and on the bench command sheet):

==========================  =================================================================
``S26-000123-E``            sample barcode; the last character is ISO 7064 Mod 37-2 over
                            ``S26000123`` (see lims.identifiers)
``COI-26-000123-K``         Chain of Identity label (our local format, Mod 37-2 checked);
                            an ISBT 128 COI stored on a sample resolves too
``BOX-0001``                a location code (any level of the tree: room, freezer, rack, box)
``BOX-0001:A1``             a box position: location code, colon, row letter + column number
``BADGE-0002``              a user's badge (User.badge)
``AAV9-2611-001``           a vector lot number
``CMD:RECEIVE`` ...         a station command (COMMANDS below)
``CMD:REASON:EXPIRED``      a disposal reason (a preset code from REASONS, or free text)
``CMD:CONDITION:FROZEN``    a receipt condition (a preset code from CONDITIONS, or free text)
GS1 element string          with a GS1 AIM identifier (]C1 ]d2 ]Q3 ]e0 ]J1), a GS (0x1D)
                            separator, HRI form ``(01)...(10)...``, or bare digits starting
                            with AI 01; parsed with biip: GTIN (01), lot (10), expiry (17),
                            serial (21), SSCC (00)
==========================  =================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import biip
from biip.gs1_messages import GS1Message
from sqlalchemy import func
from sqlmodel import Session, select

from lims import storage
from lims.accounts.users import Actor
from lims.identifiers import check_sample_barcode, mod37_2
from lims.inputs import check_line
from lims.models import Sample, User, VectorLot

__all__ = [
    "COMMANDS",
    "CONDITIONS",
    "MAX_SCAN_LENGTH",
    "REASONS",
    "Parsed",
    "Resolved",
    "classify",
    "classify_strict",
    "printable",
    "resolve",
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
    "DONE": None,  # end the task: clear mode, target and settings; the operator stays
    "LOGOUT": None,  # end the task and sign the operator off
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


@dataclass
class Resolved:
    """What a scan refers to in the database (or why it refers to nothing)."""

    kind: str  # sample | coi | location | badge | lot | command | gs1 | refused
    ref: str = ""
    parsed: Parsed | None = None
    obj: Any = None  # Sample, Location, User or VectorLot
    code: str | None = None
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Return True when the scan refers to something."""
        return self.kind != "refused"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (no database objects)."""
        out: dict[str, Any] = {"kind": self.kind, "ref": self.ref}
        if self.parsed is not None:
            if self.parsed.position:
                out["position"] = self.parsed.position
            if self.parsed.argument:
                out["argument"] = self.parsed.argument
            if self.parsed.gs1:
                out["gs1"] = self.parsed.gs1
        out.update(self.extra)
        if self.code:
            out["code"] = self.code
        return out


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


# --- lookup --------------------------------------------------------------------------------


def _unknown(parsed: Parsed, what: str | None = None) -> Resolved:
    shown = printable(parsed.value)
    return Resolved(
        "refused",
        parsed.value,
        parsed,
        code="unknown_code",
        message=f"{shown}: {what or 'not a sample, location, badge, command or lot known here'}",
    )


def resolve(session: Session, parsed: Parsed, actor: Actor | None) -> Resolved:
    """Look a classified scan up; records the actor may not see are refused as unknown."""
    if not parsed.ok:
        return Resolved("refused", "", parsed, code=parsed.code, message=parsed.message)
    if parsed.kind == "command":
        return Resolved("command", parsed.value, parsed)
    if parsed.kind == "sample":
        s = session.exec(select(Sample).where(Sample.barcode == parsed.value)).first()
        if s is None or actor is None or not actor.can_see(s.org_id):
            return _unknown(parsed, "no such sample is registered here")
        return Resolved("sample", s.barcode, parsed, s)
    if parsed.kind == "coi":
        return _coi(session, parsed, actor) or _unknown(parsed, "no sample carries this COI")
    if parsed.kind == "location":
        loc = storage.find_location(session, parsed.value)
        if loc is None:
            return _unknown(parsed, "no such location")
        return Resolved("location", loc.code, parsed, loc)
    if parsed.kind == "gs1":
        lot = _lot(session, (parsed.gs1 or {}).get("lot"), actor)
        if lot is None and parsed.digits:
            # Only digits: GS1 reads them as a GTIN or an AI, but they may be our own label of
            # a lot numbered with digits only.
            lot = _lot(session, parsed.digits, actor)
        if lot is not None:
            return Resolved("lot", lot.lot_number, parsed, lot)
        return Resolved("gs1", parsed.value, parsed)
    # A bare code: its shape does not say what it is, the tables do. Codes are printed in upper
    # case; one typed with caps lock off (a keyboard, gloves) names the same place or badge.
    code = parsed.value
    spellings = [code] if code == code.upper() else [code, code.upper()]
    for spelling in spellings:
        loc = storage.find_location(session, spelling)
        if loc is not None:
            return Resolved("location", loc.code, parsed, loc)
    for spelling in spellings:
        user = session.exec(select(User).where(User.badge == spelling)).first()
        if user is not None:
            return Resolved("badge", spelling, parsed, user, extra={"user": user.username})
    lot = _lot(session, code, actor)
    if lot is not None:
        return Resolved("lot", lot.lot_number, parsed, lot)
    found = _coi(session, parsed, actor)
    if found is not None:
        return found
    return _unknown(parsed)


def _lot(session: Session, number: str | None, actor: Actor | None) -> VectorLot | None:
    if not number:
        return None
    # Lot numbers are unique whatever the case (migration 0002's index on lower(lot_number)
    # answers this): aav9-2611-001 is that lot.
    lot = session.exec(
        select(VectorLot).where(func.lower(VectorLot.lot_number) == number.lower())
    ).first()
    if lot is None or actor is None or not actor.can_see(lot.org_id):
        return None
    return lot


def _coi(session: Session, parsed: Parsed, actor: Actor | None) -> Resolved | None:
    """Resolve a COI label (ours or ISBT 128) carried by a sample the actor may see."""
    if actor is None:
        return None
    stmt = select(Sample.org_id).where(Sample.coi == parsed.value)
    if not actor.sees_all:
        stmt = stmt.where(Sample.org_id == actor.org.id)
    if session.exec(stmt.limit(1)).first() is None:
        return None
    return Resolved("coi", parsed.value, parsed)
