"""Label files: PNG previews, PDF labels and sheets (audited when handed out)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import Field
from sqlmodel import Session

from lims import audit, labels, samples
from lims.accounts.users import Actor
from lims.errors import NotFound, Refused
from lims.inputs import Input, Line
from lims.printing.jobs import (
    MAX_BARCODES,
    Barcode,
    check_fit,
    label_source,
    require_lab,
    template_for,
)
from printers import LabelContent, LabelError, Template, get_template
from printers.pdf import label_pdf, sheet_pdf
from printers.preview import label_png
from printers.zpl import TEMPLATES


class SheetIn(Input):
    barcodes: list[Barcode] = Field(min_length=1, max_length=MAX_BARCODES)
    template: Line | None = Field(default=None, min_length=1, max_length=32)


def template_names() -> list[str]:
    """Return the label stocks by name, without their dpi (cryovial, bag, ...)."""
    return sorted({name.rsplit("-", 1)[0] for name in TEMPLATES})


@dataclass(frozen=True)
class LabelFile:
    """A label file to hand out (PDF bytes) and what its audit event says."""

    data: bytes
    action: str
    barcodes: list[str]
    template: str


def record_label_file(session: Session, file: LabelFile, actor: Actor) -> None:
    """Record a label file handed out for printing elsewhere (it must be on record first)."""
    barcodes = file.barcodes
    audit.record(
        session,
        actor=actor.username,
        action=file.action,
        entity_type="label",
        entity_id=barcodes[0] if len(barcodes) == 1 else f"{len(barcodes)} labels",
        after={"barcodes": barcodes, "template": file.template},
        org_id=None if actor.sees_all else actor.org.id,
        station=actor.station,
    )


def _sample_content(
    session: Session, barcode: str, actor: Actor, name: str | None
) -> tuple[LabelContent, Template]:
    s = samples.get_sample(session, barcode, actor)
    template = template_for(None, name, s.container)
    content = labels.sample_label(session, s)
    check_fit([content], template)
    return content, template


def sample_label_png(
    session: Session, *, barcode: str, actor: Actor, template: str | None = None, scale: int = 2
) -> bytes:
    """Return a PNG of a sample's label (same layout as the printer's bytes); refuse a misfit."""
    content, tpl = _sample_content(session, barcode, actor, template)
    return label_png(content, tpl, scale=scale)


def sample_label_pdf(
    session: Session, *, barcode: str, actor: Actor, template: str | None = None
) -> LabelFile:
    """Return a sample's label as a PDF page the size of the label (record it, then hand it out)."""
    require_lab(actor, "printing labels")
    content, tpl = _sample_content(session, barcode, actor, template)
    return LabelFile(label_pdf(content, tpl), "label.pdf", [content.barcode], tpl.name)


def label_sheet_pdf(session: Session, *, data: SheetIn, actor: Actor) -> bytes:
    """Return an A4 sheet of labels for an office printer, recorded in the audit (flushed)."""
    require_lab(actor, "printing labels")
    if len(set(data.barcodes)) != len(data.barcodes):
        raise Refused(
            "a barcode is listed twice; a duplicate id label is a hazard", code="duplicate_barcode"
        )
    sources = [label_source(session, b, actor) for b in data.barcodes]
    kinds = {src.kind for src in sources}
    template = template_for(
        None, data.template or labels.default_stock(kinds), sources[0].container
    )
    contents = [s.content for s in sources]
    check_fit(contents, template)
    try:
        pdf = sheet_pdf(contents, template)
    except LabelError as err:
        raise Refused(str(err), code="label_invalid") from err
    record_label_file(
        session, LabelFile(pdf, "label.sheet_pdf", list(data.barcodes), template.name), actor
    )
    return pdf


def label_preview_png(
    session: Session, *, barcode: str, actor: Actor, template: str | None = None
) -> bytes:
    """Return the label page's PNG of a sample: optional lines dropped when they do not fit.

    template: a stock name from template_names() (default: the one for the sample's container).
    """
    s = samples.get_sample(session, barcode, actor)
    name = template or labels.default_template(s.container)
    if name not in template_names():
        raise NotFound(f"no label template {name[:64]!r}; choose one from the list")
    content = labels.sample_label(session, s)
    tpl = get_template(name)
    try:
        return label_png(content, tpl, scale=2)
    except LabelError:
        # The small templates hold fewer lines: drop the optional ones, as the printer would.
        try:
            return label_png(replace(content, extra=()), tpl, scale=2)
        except LabelError as err:
            raise Refused(
                f"this label does not fit {name} stock ({err}); choose a larger template",
                code="label_does_not_fit",
            ) from err
