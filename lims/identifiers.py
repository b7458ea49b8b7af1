"""Barcode identifiers: sample ids with an ISO 7064 Mod 37-2 check character."""

from __future__ import annotations

import re

# ISO 7064 Mod 37-2 alphabet, as ISBT 128 uses it: 0-9 -> 0..9, A-Z -> 10..35, '*' -> 36.
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
_VALUES = {c: i for i, c in enumerate(_ALPHABET)}

SAMPLE_BARCODE_RE = re.compile(r"^S(\d{2})-(\d{6})-([0-9A-Z*])$")


def mod37_2(data: str) -> str:
    """Return the ISO 7064 Mod 37-2 check character for data (digits and letters only)."""
    p = 0
    for ch in data.upper():
        if ch not in _VALUES or ch == "*":
            raise ValueError(f"character {ch!r} cannot be check-summed")
        p = ((p + _VALUES[ch]) * 2) % 37
    return _ALPHABET[(38 - p) % 37]


def sample_barcode(year: int, serial: int) -> str:
    """Build a sample barcode such as S26-000123-K from a year and a serial number."""
    if not 0 < serial < 1_000_000:
        raise ValueError("sample serial must be between 1 and 999999")
    body = f"S{year % 100:02d}{serial:06d}"
    return f"S{year % 100:02d}-{serial:06d}-{mod37_2(body)}"


def check_sample_barcode(barcode: str) -> bool:
    """Tell whether barcode has the sample format and a correct check character."""
    m = SAMPLE_BARCODE_RE.match(barcode)
    if not m:
        return False
    return mod37_2(f"S{m.group(1)}{m.group(2)}") == m.group(3)


COI_RE = re.compile(r"^COI-(\d{2})-(\d{6})-([0-9A-Z*])$")
# ISBT 128 identifiers are upper-case letters and digits; only the shape is checked here.
ISBT_COI_RE = re.compile(r"^[A-Z0-9]{6,64}$")


def check_coi(coi: str, scheme: str = "local") -> bool:
    """Tell whether a Chain of Identity id is well formed (our own ids: check character too)."""
    if scheme == "isbt128":
        return bool(ISBT_COI_RE.match(coi))
    m = COI_RE.match(coi)
    return bool(m) and mod37_2(f"COI{m.group(1)}{m.group(2)}") == m.group(3)


def coi_id(year: int, serial: int) -> str:
    """Build a Chain of Identity id (our own format): COI-26-000123-K."""
    body = f"COI{year % 100:02d}{serial:06d}"
    return f"COI-{year % 100:02d}-{serial:06d}-{mod37_2(body)}"
