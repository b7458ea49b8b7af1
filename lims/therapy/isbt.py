"""ISBT 128: Donation Identification Numbers (DIN) and product description codes. Pure.

A DIN is 13 characters: the facility identification number (FIN: one letter or digit, then four
digits), the year (two digits) and a sequence number (six digits). On a label it is followed by
two flag characters and, in the eye-readable text only, a check character: ISO 7064 Mod 37-2 over
the 13 characters, the same algorithm as our own sample barcodes (lims.identifiers.mod37_2). The
check character is what catches a DIN typed with one character wrong or two swapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lims.errors import Refused
from lims.identifiers import mod37_2

# FIN: ISBT 128 leaves out the letter O (read as zero) in the first position.
_DIN = r"([A-NP-Z1-9]\d{4})(\d{2})(\d{6})"
# Keyed from the label: DIN, optional flags, then the check character (spaces are ignored).
_KEYED = re.compile(rf"^{_DIN}(\d{{2}})?([0-9A-Z*])$")
# Scanned from the barcode: the '=' data identifier, DIN and flags; the symbology checks it.
_SCANNED = re.compile(rf"^={_DIN}(\d{{2}})$")
# Product description code: one letter and four digits (E0001 red cells, S.... cellular therapy).
PRODUCT_CODE_RE = re.compile(r"^[A-Z]\d{4}$")


@dataclass(frozen=True)
class Din:
    din: str  # the 13 characters
    flags: str | None
    check: str  # the Mod 37-2 check character of din

    @property
    def facility(self) -> str:
        return self.din[:5]

    @property
    def year(self) -> str:
        return self.din[5:7]

    def eye_readable(self) -> str:
        """Return the DIN as printed under the barcode: G1234 98 654321 00 H."""
        flags = f" {self.flags}" if self.flags else ""
        return f"{self.din[:5]} {self.din[5:7]} {self.din[7:]}{flags} {self.check}"


def din_check(din: str) -> str:
    """Return the ISO 7064 Mod 37-2 check character of a 13-character DIN."""
    return mod37_2(din)


def parse_din(text: str) -> Din:
    """Read a DIN as keyed (with its check character) or scanned (=DIN+flags), or refuse (422).

    The refusal says which part is wrong: a DIN whose check character does not match was
    mistyped or is made up, and must not be accepted as a product's identity.
    """
    raw = "".join(text.split()).upper()
    m = _SCANNED.match(raw)
    if m:
        din = "".join(m.group(1, 2, 3))
        return Din(din, m.group(4), din_check(din))
    m = _KEYED.match(raw)
    if not m:
        raise Refused(
            f"{text!r} is not an ISBT 128 DIN: 13 characters (facility letter or digit and "
            "4 digits, 2-digit year, 6-digit sequence), optional 2 flag digits, then the check "
            "character; or the scanned barcode =DIN+flags",
            code="bad_din",
        )
    din = "".join(m.group(1, 2, 3))
    expected = din_check(din)
    if m.group(5) != expected:
        raise Refused(
            f"DIN {din} check character {m.group(5)} is wrong (ISO 7064 Mod 37-2 gives "
            f"{expected}): the DIN was mistyped or is not a real one",
            code="bad_din_check",
        )
    return Din(din, m.group(4), expected)


def check_product_code(code: str) -> str:
    """Return a product description code in capitals, or refuse one of the wrong shape (422)."""
    value = code.strip().upper()
    if not PRODUCT_CODE_RE.match(value):
        raise Refused(
            f"{code!r} is not an ISBT 128 product description code: one letter and four digits, "
            "like S1234",
            code="bad_product_code",
        )
    return value
