"""The batch record of a vector lot as a PDF: executed steps, values, who did and verified them,
QA's signed review, and the materials used with their supplier lots and expiry dates."""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlmodel import Session

from lims.accounts.users import Actor
from lims.manufacturing import batch, genealogy
from lims.models import utcnow
from lims.reports.pdf import _canvas_class, _fonts


def batch_record_pdf(session: Session, *, lot_number: str, actor: Actor) -> bytes:
    """Render a lot's batch record (404 for a lot the actor may not see or without a record)."""
    rec = batch.batch_dict(session, lot_number=lot_number, actor=actor)
    inputs = genealogy.lot_inputs(session, lot_number=lot_number, actor=actor)["inputs"]
    font, bold, _ = _fonts()
    base = getSampleStyleSheet()
    body = ParagraphStyle("b", parent=base["BodyText"], fontName=font, fontSize=9, leading=11)
    small = ParagraphStyle("s", parent=body, fontSize=7.5, leading=9)
    h1 = ParagraphStyle("h1", parent=base["Title"], fontName=bold, fontSize=16, alignment=0)
    h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=11, spaceBefore=8)

    def p(value: Any, style: ParagraphStyle = small) -> Paragraph:
        return Paragraph(escape("-" if value in (None, "") else str(value)), style)

    def table(rows: list[list[Any]], widths: list[float]) -> Table:
        t = Table([[p(c) for c in r] for r in rows], colWidths=[w * mm for w in widths])
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef0f3")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    story: list[Any] = [
        Paragraph(escape(f"Batch record: lot {rec['lot']}"), h1),
        p(
            f"Process {rec['template']} version {rec['template_version']}; opened by "
            f"{rec['started_by']}; {'complete' if rec['complete'] else 'NOT complete'}. "
            f"Printed {utcnow():%Y-%m-%d %H:%M} UTC by {actor.user.full_name} "
            f"({actor.username}).",
            body,
        ),
        Paragraph("Steps", h2),
    ]
    rows: list[list[Any]] = [["#", "Step", "Values (range)", "Done by, when", "Where", "Verified"]]
    for s in rec["steps"]:
        values = "; ".join(
            f"{x['name']} {'-' if x['value'] is None else format(x['value'], 'g')} {x['unit']}"
            f" ({_range(x)}){' OUT OF RANGE' if x['in_range'] is False else ''}"
            for x in s["parameters"]
        )
        done = f"{s['operator']}, {s['done_at']}" if s["operator"] else s["state"]
        where = ", ".join(x for x in (s["room"], s["equipment"]) if x)
        verified = s["verifier"] if s["verifier"] else ("awaiting" if s["verify"] else "n/a")
        rows.append([s["position"], s["name"], values, done, where, verified])
    story.append(table(rows, [8, 34, 58, 38, 24, 24]))
    story.append(Paragraph("QA review", h2))
    rv = rec["review"]
    if rv is None:
        story.append(p("QA review: NOT signed (the lot is released only after it).", body))
    else:
        sig = rv["signature"]
        story.append(
            p(
                f"Reviewed by {sig['printed_name']} ({sig['username']}) at {sig['signed_at']}, "
                f"meaning {sig['meaning']}; signature {sig['hash'][:16]}.",
                body,
            )
        )
    story += [Spacer(1, 4 * mm), Paragraph("Materials and inputs", h2)]
    rows = [["Input", "What", "Supplier lot", "Expires", "Quantity", "Recorded by, when"]]
    for x in inputs:
        qty = f"{x['quantity']:g} {x['unit'] or ''}".strip() if x["quantity"] is not None else ""
        rows.append(
            [
                x["ref"],
                x["name"],
                x.get("supplier_lot"),
                x.get("expires_on"),
                qty,
                f"{x['recorded_by']}, {x['recorded_at']}",
            ]
        )
    if len(rows) == 1:
        rows.append(["none recorded", "", "", "", "", ""])
    story.append(table(rows, [28, 46, 26, 22, 18, 46]))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title=f"Batch record {rec['lot']}",
    )
    doc.build(story, canvasmaker=_canvas_class(f"Batch record {rec['lot']}"))
    return buf.getvalue()


def _range(x: dict[str, Any]) -> str:
    low, high = x["low"], x["high"]
    if low is not None and high is not None:
        return f"{low:g}-{high:g}"
    if low is not None:
        return f">= {low:g}"
    return f"<= {high:g}" if high is not None else "any"
