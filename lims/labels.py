"""What goes on a label for a sample, a lot or a box: content, not bytes (no Flask here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from sqlmodel import Session

from lims.errors import Refused
from lims.models import Location, Sample, SampleType, VectorLot
from printers.zpl import LabelContent

__all__ = [
    "COI_SHORT_MAX",
    "PRODUCT_IDENTITY",
    "PRODUCT_STOCK",
    "CONTAINER_STOCK",
    "LabelSource",
    "box_label",
    "coi_short",
    "content_from_json",
    "container_stock",
    "content_to_json",
    "default_stock",
    "default_template",
    "lot_label",
    "sample_label",
    "stock_base",
]

# Our own COI ids (COI-26-000123-K) are 15 characters; longer ones (an ISBT 128 ST-028 id) are
# shortened to their distinguishing tail, which is what staff compare at the bench.
COI_SHORT_MAX = 16
_COI_TAIL = 12


def coi_short(coi: str | None, scheme: str = "local") -> str | None:
    """Return the Chain of Identity id as printed on a label (the tail of a long id)."""
    if not coi:
        return None
    if len(coi) <= COI_SHORT_MAX:
        return coi
    prefix = "ISBT " if scheme == "isbt128" else "COI "
    return f"{prefix}..{coi[-_COI_TAIL:]}"


# A final product's label: its identity codes (DIN, product code, COI, expiry) as barcodes.
PRODUCT_STOCK = "product-bag"
ProductIdentity = tuple[str, str, tuple[tuple[str, str, str], ...]]
# Areas above this one say when a sample is a final product and what identifies it (title, date
# line, and (name, barcode value, text) of each code); lims.therapy registers the released cell
# product of a treatment episode. None from each: an ordinary sample label.
PRODUCT_IDENTITY: list[Callable[[Session, Sample], ProductIdentity | None]] = []


def sample_label(session: Session, s: Sample, reprint: bool = False) -> LabelContent:
    """Return the label of a sample: id, type, lot, date, COI short form (and a final
    product's identity codes)."""
    for identify in PRODUCT_IDENTITY:
        found = identify(session, s)
        if found is not None:
            title, date_line, codes = found
            return LabelContent(
                barcode=s.barcode,
                title=title,
                date=date_line,
                coi_short=coi_short(s.coi, s.coi_scheme),
                codes=codes,
                reprint=reprint,
            )
    stype = session.get(SampleType, s.sample_type_id)
    lot = session.get(VectorLot, s.lot_id) if s.lot_id else None
    # A vial of a vector lot carries the lot's expiry; other material its registration date.
    if lot is not None and lot.expires_on is not None:
        date = f"EXP {lot.expires_on.isoformat()}"
    else:
        date = s.created_at.strftime("%Y-%m-%d")
    return LabelContent(
        barcode=s.barcode,
        title=stype.name if stype else "",
        lot=lot.lot_number if lot else None,
        date=date,
        coi_short=coi_short(s.coi, s.coi_scheme),
        reprint=reprint,
    )


def lot_label(lot: VectorLot, reprint: bool = False) -> LabelContent:
    """Return the label of a vector lot (a shipper or a rack of its vials)."""
    return LabelContent(
        barcode=lot.lot_number,
        title=lot.vector,
        date=f"EXP {lot.expires_on.isoformat()}" if lot.expires_on else None,
        extra=(lot.serotype or lot.vector_type,),
        reprint=reprint,
    )


def box_label(box: Location, reprint: bool = False) -> LabelContent:
    """Return the label of a storage box (or any scannable location)."""
    size = f"{box.rows}x{box.cols}" if box.rows and box.cols else None
    return LabelContent(
        barcode=box.code,
        title=box.name,
        extra=tuple(x for x in (size, box.temperature) if x),
        reprint=reprint,
    )


class LabelSource:
    """A resolved barcode: what its label says and which sample (if any) it belongs to."""

    def __init__(
        self,
        content: LabelContent,
        kind: str,
        sample_id: int | None = None,
        org_id: int | None = None,
        lot_id: int | None = None,
        container: str | None = None,
        stock: str | None = None,
    ) -> None:
        self.content = content
        self.kind = kind
        self.sample_id = sample_id
        self.org_id = org_id
        self.lot_id = lot_id
        self.container = container
        # The stock its label must go on whatever the container (a final product's label).
        self.stock = stock or (PRODUCT_STOCK if content.codes else None)


# The label stock each kind of container takes: a bag label on a cryovial wraps round and
# hides its own barcode, a cryovial label on a bag is too small to read at the bedside.
CONTAINER_STOCK = {"cryovial": "cryovial", "tube": "tube-2ml", "bag": "bag"}


def container_stock(container: str | None) -> str | None:
    """Return the stock a container's label goes on (None: the container says nothing)."""
    return CONTAINER_STOCK.get((container or "").strip().lower())


def stock_base(template_name: str) -> str:
    """Return the stock of a template name without its resolution ("tube-2ml-300" -> "tube-2ml")."""
    base, _, dpi = template_name.rpartition("-")
    return base if base and dpi.isdigit() else template_name


def default_template(container: str | None) -> str:
    """Return the label stock for a container (cryovial when the container is not known)."""
    return container_stock(container) or "cryovial"


def default_stock(kinds: set[str]) -> str | None:
    """Return the stock for labels of these kinds when none is asked for (None: the default).

    Places (boxes, racks) get box labels: their codes and names are checked against that stock
    when they are set up, and a cryovial label is too small for most of them.
    """
    return "box" if kinds == {"location"} else None


def content_to_json(content: LabelContent) -> str:
    """Serialise label content for PrintJobLabel.content (what was queued is what prints)."""
    return json.dumps(asdict(content), sort_keys=True, separators=(",", ":"))


def content_from_json(text: str, *, reprint: bool | None = None) -> LabelContent:
    """Rebuild label content stored by content_to_json; optionally set the REPRINT mark."""
    data: dict[str, Any] = json.loads(text)
    data["extra"] = tuple(data.get("extra") or ())
    data["codes"] = tuple(tuple(c) for c in data.get("codes") or ())
    content = LabelContent(**data)
    return content if reprint is None else replace(content, reprint=reprint)


def container_stock_of(sources: list[LabelSource]) -> str | None:
    """Return the one stock the samples' containers call for (None: they say nothing).

    Samples in different containers (a bag and its cryovials) need a job per stock: 422.
    """
    wanted: dict[str, list[str]] = {}
    for src in sources:
        stock = src.stock or (container_stock(src.container) if src.kind == "sample" else None)
        if stock is not None:
            wanted.setdefault(stock, []).append(src.content.barcode)
    if len(wanted) > 1:
        parts = "; ".join(f"{stock}: {', '.join(codes[:3])}" for stock, codes in wanted.items())
        raise Refused(
            f"these samples are in different containers whose labels go on different stocks "
            f"({parts}); print one job per stock, or choose a stock",
            code="mixed_containers",
            stocks=sorted(wanted),
        )
    return next(iter(wanted), None)


def check_stock(
    sources: list[LabelSource], template: str, override: str | None
) -> dict[str, Any] | None:
    """Refuse (422) samples whose container takes another stock than template, unless the
    operator gave a reason to print on it anyway; return what the audit event records then.
    """
    stock = stock_base(template)
    mismatched = [
        {"barcode": src.content.barcode, "container": src.container, "stock": wanted}
        for src in sources
        if src.kind == "sample"
        and (wanted := src.stock or container_stock(src.container)) is not None
        and wanted != stock
    ]
    if not mismatched:
        return None
    first = mismatched[0]
    if override is None or not override.strip():
        more = f" ({len(mismatched) - 1} more listed in mismatched)" if len(mismatched) > 1 else ""
        raise Refused(
            f"{first['barcode']} is in a {first['container']}: its label goes on "
            f"{first['stock']} stock, not {stock}{more}. Choose {first['stock']}, or give the "
            f"reason to print on {stock} anyway (stock_override)",
            code="stock_mismatch",
            template=template,
            mismatched=mismatched,
        )
    return {"stock_override": override.strip(), "stock_mismatch": mismatched}
