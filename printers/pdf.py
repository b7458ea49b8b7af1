"""PDF labels (single label or sheets) from the same LabelContent and layout as the ZPL path."""

from __future__ import annotations

import io
from collections.abc import Sequence

from reportlab.graphics.barcode.code128 import Code128
from reportlab.graphics.barcode.ecc200datamatrix import ECC200DataMatrix
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from printers.zpl import LabelContent, LabelPlan, Template, plan_label

__all__ = ["draw_label", "label_pdf", "sheet_pdf"]

FONT = "Helvetica-Bold"
# ^A0 cell height in dots -> PDF font size: the resident font's capitals fill about 3/4 of it.
_FONT_SCALE = 0.92
_BASELINE = 0.82


def _pt(dots: int | float, dpi: int) -> float:
    return dots * 72.0 / dpi


def draw_label(
    canvas: Canvas, plan: LabelPlan, x0: float, y0: float, outline: bool = False
) -> None:
    """Draw one planned label with its bottom-left corner at (x0, y0) points."""
    t = plan.template
    dpi = t.dpi
    top = y0 + t.height_in * 72

    def y_of(dots: float) -> float:
        return top - _pt(dots, dpi)

    if outline:
        canvas.setLineWidth(0.25)
        canvas.setStrokeGray(0.7)
        canvas.rect(x0, y0, t.width_in * 72, t.height_in * 72, stroke=1, fill=0)
    canvas.setFillGray(0)
    for bc in plan.barcodes:
        if bc.kind == "code128":
            symbol = Code128(
                bc.data,
                barWidth=_pt(bc.module, dpi),
                barHeight=_pt(bc.height, dpi),
                quiet=False,
                humanReadable=False,
            )
            symbol.drawOn(canvas, x0 + _pt(bc.x, dpi), y_of(bc.y + bc.height))
        else:
            # reportlab draws one symbol size (44x44 modules); it is scaled into the square the
            # layout reserves, so office printers (600 dpi and up) still resolve its modules.
            box = _pt(bc.box or bc.width_dots, dpi)
            symbol = ECC200DataMatrix(value=bc.data, barWidth=box / 44)
            # Its draw() places modules relative to x/y, which drawOn then translates.
            symbol.x = symbol.y = 0
            _w, side = symbol.wrap(0, 0)
            symbol.drawOn(canvas, x0 + _pt(bc.x, dpi), top - _pt(bc.y, dpi) - side)
    for tf in plan.texts:
        size = _pt(tf.height, dpi) * _FONT_SCALE
        text = canvas.beginText()
        text.setTextOrigin(x0 + _pt(tf.x, dpi), y_of(tf.y + tf.height * _BASELINE))
        text.setFont(FONT, size)
        room = _pt(tf.max_width or t.width_dots - tf.x, dpi)
        natural = stringWidth(tf.text, FONT, size)
        # The fit check used the printer font's metrics; squeeze rather than spill if the PDF
        # font runs wider.
        if natural > room:
            text.setHorizScale(100.0 * room / natural)
        text.textLine(tf.text)
        canvas.drawText(text)


def label_pdf(content: LabelContent, template: Template) -> bytes:
    """Render one label as a PDF page the size of the label."""
    plan = plan_label(content, template)
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=(template.width_in * 72, template.height_in * 72))
    canvas.setTitle(f"Label {content.barcode}")
    draw_label(canvas, plan, 0, 0)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


def sheet_pdf(
    contents: Sequence[LabelContent],
    template: Template,
    pagesize: tuple[float, float] = A4,
    margin: float = 10 * mm,
    gap: float = 3 * mm,
    outline: bool = True,
) -> bytes:
    """Render labels in a grid on office-printer pages (A4 by default), as many pages as needed."""
    plans = [plan_label(c, template) for c in contents]
    w, h = template.width_in * 72, template.height_in * 72
    page_w, page_h = pagesize
    cols = max(1, int((page_w - 2 * margin + gap) // (w + gap)))
    rows = max(1, int((page_h - 2 * margin + gap) // (h + gap)))
    buf = io.BytesIO()
    canvas = Canvas(buf, pagesize=pagesize)
    canvas.setTitle(f"Labels ({len(plans)}, {template.name})")
    per_page = cols * rows
    for i, plan in enumerate(plans):
        slot = i % per_page
        if i and slot == 0:
            canvas.showPage()
        col, row = slot % cols, slot // cols
        x = margin + col * (w + gap)
        y = page_h - margin - (row + 1) * h - row * gap
        draw_label(canvas, plan, x, y, outline=outline)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()
