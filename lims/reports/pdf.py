"""Chain-of-custody reports as PDF (reportlab), for a sample with its lineage or a lot.

What an inspector asks of the printout, and how the report answers it: docs/reports.md.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlmodel import Session

from lims.accounts.users import Actor, system_actor
from lims.audit import Checkpoint, VerifyResult
from lims.errors import BadRequest
from lims.reports.data import ReportData, cell_text, lot_data, sample_data
from lims.version import __version__

PAGE = landscape(A4)
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)


def _fonts() -> tuple[str, str, str]:
    """Register a Unicode TrueType font (names, reasons may be in any script); fall back to Vera."""
    if "LimsSans" in pdfmetrics.getRegisteredFontNames():
        return "LimsSans", "LimsSans-Bold", "LimsMono"
    import reportlab

    bundled = Path(reportlab.__file__).parent / "fonts"
    candidates = [
        (d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf", d / "DejaVuSansMono.ttf")
        for d in _FONT_DIRS
    ] + [(bundled / "Vera.ttf", bundled / "VeraBd.ttf", bundled / "Vera.ttf")]
    for regular, bold, mono in candidates:
        if regular.exists() and bold.exists() and mono.exists():
            pdfmetrics.registerFont(TTFont("LimsSans", str(regular)))
            pdfmetrics.registerFont(TTFont("LimsSans-Bold", str(bold)))
            pdfmetrics.registerFont(TTFont("LimsMono", str(mono)))
            pdfmetrics.registerFontFamily("LimsSans", normal="LimsSans", bold="LimsSans-Bold")
            return "LimsSans", "LimsSans-Bold", "LimsMono"
    return "Helvetica", "Helvetica-Bold", "Courier"


def verify_statement(v: VerifyResult, *, centre_wide: bool = True) -> str:
    """Return the sentence the report prints about the audit chain.

    centre_wide False (a client's report): without the centre's event count and head seq.
    """
    if v.ok and not centre_wide:
        return "Audit trail verification PASSED: the hash chain was recomputed and is intact."
    if v.ok:
        return (
            f"Audit trail verification PASSED: all {v.events} events were recomputed and the "
            f"hash chain is intact (head seq {v.head_seq})."
        )
    return (
        f"Audit trail verification FAILED at seq {v.first_bad_seq}: {v.problem}. "
        f"Do not rely on this report; inform QA."
    )


def checkpoint_statement(
    cp: Checkpoint | None, problem: str | None = None, *, centre_wide: bool = True
) -> str:
    """Return the line a report prints about the signed checkpoint it was made against."""
    if cp is None:
        return f"Made against no signed checkpoint: {problem or 'none has been written yet'}."
    if not centre_wide:
        return (
            f"Made against a signed checkpoint (hash {cp.hash[:16]}...), written {cp.at}, "
            f"key fingerprint {cp.key[:16]}."
        )
    return (
        f"Made against the signed checkpoint of seq {cp.seq} (hash {cp.hash[:16]}..., head "
        f"event time {cp.ts or '-'}), written {cp.at}, key fingerprint {cp.key[:16]}."
    )


def _canvas_class(footer_left: str, page: tuple[float, float] = PAGE):  # noqa: ANN202
    """Return a canvas that prints 'page x of y' once the number of pages is known."""

    class NumberedCanvas(canvas.Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._saved: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab's name)
            # Keep the page; it is emitted in save() when the total is known.
            self._saved.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._saved)
            for state in self._saved:
                self.__dict__.update(state)
                self._footer(total)
                super().showPage()
            super().save()

        def _footer(self, total: int) -> None:
            font = _fonts()[0]
            self.setFont(font, 7)
            self.setFillColor(colors.grey)
            self.drawString(12 * mm, 7 * mm, footer_left)
            self.drawRightString(page[0] - 12 * mm, 7 * mm, f"page {self._pageNumber} of {total}")

    return NumberedCanvas


def render(data: ReportData) -> bytes:
    """Render a report as PDF bytes."""
    font, bold, mono = _fonts()
    base = getSampleStyleSheet()
    body = ParagraphStyle("b", parent=base["BodyText"], fontName=font, fontSize=8, leading=10)
    small = ParagraphStyle("s", parent=body, fontSize=7, leading=8.5)
    hashes = ParagraphStyle("h", parent=small, fontName=mono)
    h1 = ParagraphStyle("h1", parent=base["Title"], fontName=bold, fontSize=16, alignment=0)
    h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=11, spaceBefore=8)
    alert = ParagraphStyle("a", parent=body, fontName=bold, fontSize=9)

    def p(value: Any, style: ParagraphStyle = small) -> Paragraph:
        return Paragraph(escape(cell_text(value)), style)

    def table(rows: list[list[Any]], widths: list[float], header: bool = True) -> Table:
        t = Table(rows, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
        style = [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 2),
            ("RIGHTPADDING", (0, 0), (-1, -1), 2),
        ]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6e6")))
        t.setStyle(TableStyle(style))
        return t

    generated = data.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    title = f"Chain-of-custody report: {data.kind} {data.subject}"
    story: list[Any] = [
        Paragraph(escape(title), h1),
        p(f"Generated {generated} by {data.generated_by}. Custody LIMS {__version__}.", body),
        Spacer(1, 3 * mm),
        Paragraph(escape(verify_statement(data.verify, centre_wide=data.centre_wide)), alert),
        p(f"Audit chain head hash (seq {data.verify.head_seq}): {data.verify.head_hash}", hashes),
        p(
            checkpoint_statement(
                data.checkpoint, data.checkpoint_problem, centre_wide=data.centre_wide
            ),
            hashes,
        ),
    ]
    if data.events:
        last = data.events[-1]
        story.append(
            p(
                f"{len(data.events)} events in this report; the last (seq {last['seq']}) has "
                f"hash {last['hash']}",
                hashes,
            )
        )
    story += [Paragraph("Identity", h2)]
    story.append(
        table([[p(k, body), p(v, body)] for k, v in data.identity], [60 * mm, 140 * mm], False)
    )
    if data.qc:
        story.append(Paragraph("QC results", h2))
        rows = [[p(h) for h in ("Test", "Spec", "Result", "Pass", "Recorded (UTC)")]]
        rows += [
            [
                p(q["test"]),
                p(q["spec"]),
                p(q["result"]),
                p("yes" if q["passed"] else "NO"),
                p(q["recorded_at"]),
            ]
            for q in data.qc
        ]
        story.append(table(rows, [35 * mm, 50 * mm, 50 * mm, 15 * mm, 40 * mm]))
    story.append(Paragraph("Vials" if data.kind == "lot" else "Lineage", h2))
    rows = [[p(h) for h in ("Relation", "Barcode", "Lineage", "State", "COI", "Location")]]
    for x in data.lineage:
        indent = "  " * max(0, x["depth"])
        rows.append(
            [
                p(x["relation"]),
                p(indent + x["barcode"]),
                p(x.get("lineage")),
                p(x["state"]),
                p(x["coi"]),
                p(x.get("location")),
            ]
        )
    story.append(table(rows, [25 * mm, 40 * mm, 25 * mm, 25 * mm, 45 * mm, 40 * mm]))
    story.append(Paragraph("Custody and audit events (oldest first, times in UTC)", h2))
    head = (
        "Seq",
        "Time (UTC)",
        "Actor",
        "Action / record",
        "Location",
        "Condition",
        "Reason",
        "Station",
        "Sig.",
        "Changes",
    )
    rows = [[p(h) for h in head]]
    for e in data.events:
        reason = e["reason"]
        if e["corrects_seq"]:
            reason = f"{cell_text(reason)} (corrects seq {e['corrects_seq']})"
        rows.append(
            [
                p(e["seq"]),
                p(e["ts"].replace("T", " ")),
                p(f"{e['actor_name']} ({e['actor']})"),
                p(f"{e['action']} {e['record']}"),
                p(e["location"]),
                p(e["condition"]),
                p(reason),
                p(e["station"]),
                p(e["signature_id"]),
                p(e["changes"]),
            ]
        )
    widths = [12, 32, 30, 38, 24, 24, 34, 20, 9, 50]
    story.append(table(rows, [w * mm for w in widths]))
    story.append(Paragraph("Electronic signatures (21 CFR 11.50)", h2))
    if data.signatures:
        rows = [
            [
                p(h)
                for h in (
                    "Id",
                    "Printed name",
                    "User",
                    "Meaning",
                    "Signed (UTC)",
                    "Record",
                    "Event",
                    "Binding",
                )
            ]
        ]
        rows += [
            [
                p(s["id"]),
                p(s["printed_name"]),
                p(s["username"]),
                p(s["meaning"]),
                p(s["signed_at"]),
                p(s["record"]),
                p(s["event_seq"]),
                p(s["binding"]),
            ]
            for s in data.signatures
        ]
        story.append(table(rows, [w * mm for w in (10, 45, 25, 25, 35, 50, 15, 25)]))
    else:
        story.append(p("No electronic signatures apply to these records.", body))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=PAGE,
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title=title,
        author=data.generated_by,
        subject="chain of custody",
        creator=f"Custody LIMS {__version__}",
    )
    footer = f"{title} | generated {generated} by {data.generated_by}"
    doc.build(story, canvasmaker=_canvas_class(footer))
    return buf.getvalue()


def sample_report(db: Session, barcode: str, actor: Actor) -> bytes:
    """Return the chain-of-custody PDF of a sample and its lineage."""
    return render(sample_data(db, barcode, actor))


def lot_report(db: Session, lot_number: str, actor: Actor) -> bytes:
    """Return the chain-of-custody PDF of a lot and its vials."""
    return render(lot_data(db, lot_number, actor))


def export_pdf(
    db: Session,
    fh: IO[bytes],
    *,
    sample: str | None = None,
    lot: str | None = None,
    actor: Actor | None = None,
) -> int:
    """Write the chain-of-custody PDF of one sample or one lot to fh; return its size in bytes."""
    if (sample is None) == (lot is None):
        raise BadRequest(
            "a chain-of-custody report covers exactly one sample or one lot: "
            "give --sample BARCODE or --lot LOT (one of them)",
            code="report_subject",
        )
    actor = actor or system_actor(db)
    pdf = sample_report(db, sample, actor) if sample else lot_report(db, lot, actor)
    fh.write(pdf)
    return len(pdf)
