"""What a lot number may be: exactly what its labels can print (one rule for creation and print).

A lot number is the barcode of the lot's own label and a text line ("Lot ...") on every vial's
label. Before this rule a number with "_" or one too long for the stock was accepted when the lot
was planned and refused only when its first label was printed (422 label_invalid), by then on a
lot with vials. The check below plans those labels with the printer code's own planner
(printers.zpl.plan_label), so whatever passes here prints, and the refusal names the limit.
"""

from __future__ import annotations

from dataclasses import replace

from lims.errors import Refused
from printers import LabelError
from printers.zpl import BARCODE_RE, LabelContent, get_template, plan_label

# The stocks a lot's own label prints on: a vial's stocks and box stock (the label on a box or
# rack of its vials, lims.labels.default_stock for places), at 203 and 300 dpi.
LOT_STOCKS = ("cryovial", "tube-2ml", "bag", "box")
# The stocks its vials' labels (with the "Lot ..." line) print on (lims.labels.CONTAINER_STOCK).
VIAL_STOCKS = ("cryovial", "tube-2ml", "bag")
DPIS = (203, 300)
# What both creation (lims.lots: a letter or digit first, then letters, digits, "-" and ".")
# and every label's barcode accept: the refusal names only what creation would take.
ALLOWED = "letters, digits, - and . (a letter or digit first)"
# The widest vial label line next to the lot: a sample barcode and a COI of our own format.
_VIAL = LabelContent(
    barcode="S26-000000-K",
    title="",
    lot=None,
    date="EXP 2026-12-31",
    coi_short="COI-26-000000-K",
)


def _problem(lot_number: str) -> tuple[str, str] | None:
    """Return (stock, why) for the first label that could not print lot_number, or None."""
    for base in LOT_STOCKS:
        for dpi in DPIS:
            stock = get_template(base, dpi)
            contents = [LabelContent(barcode=lot_number, title="")]
            if base in VIAL_STOCKS:
                contents.append(replace(_VIAL, lot=lot_number))
            for content in contents:
                try:
                    plan_label(content, stock)
                except LabelError as err:
                    return stock.name, str(err)
    return None


def longest_printable_prefix(lot_number: str) -> int:
    """Return how many leading characters of lot_number every lot label could print."""
    lo, hi = 0, len(lot_number)
    while lo < hi:  # printability only gets harder as characters are added
        mid = (lo + hi + 1) // 2
        if _problem(lot_number[:mid]) is None:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_lot_number(lot_number: str) -> None:
    """Refuse (422 lot_number_unprintable) a lot number some label of the lot could not print."""
    bad = sorted({ch for ch in lot_number if not BARCODE_RE.fullmatch(ch)})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        raise Refused(
            f"lot number {lot_number!r} cannot be printed on a label: {shown} not allowed; "
            f"a lot number is made of {ALLOWED}",
            code="lot_number_unprintable",
            limit=ALLOWED,
        )
    problem = _problem(lot_number)
    if problem is None:
        return
    stock, why = problem
    fits = longest_printable_prefix(lot_number)
    raise Refused(
        f"lot number {lot_number} is too long for its labels: at most {fits} of these "
        f"{len(lot_number)} characters fit ({lot_number[:fits]}); shorten it ({stock}: {why})",
        code="lot_number_unprintable",
        limit=fits,
        stock=stock,
    )
