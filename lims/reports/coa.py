"""Certificate of analysis of a released vector lot (PDF), and the audit record of each issue.

The client receives the certificate; the trail keeps what was issued (its SHA-256, the QC
results and signatures it states) so QA can later prove which certificate a client received.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlmodel import Session

from lims import audit, lots, signatures
from lims.accounts.users import Actor
from lims.audit import checkpoint
from lims.errors import Refused
from lims.models import Signature, VectorLot, utcnow
from lims.quality import trail
from lims.reports.data import cell_text
from lims.reports.pdf import _canvas_class, _fonts, checkpoint_statement, verify_statement
from lims.version import __version__

# The columns of a QC row, and the keys of lots.lot_dict()["qc"] they show ('-' when absent:
# older results carry only test, spec, result and passed).
QC_COLUMNS = (
    ("Test", "test"),
    ("Method", "method"),
    ("Specification", "spec"),
    ("Spec version", "spec_version"),
    ("Result", "result"),
    ("Pass", "passed"),
    ("Recorded by", "recorded_by"),
    ("Reviewed by", "reviewed_by"),
)


@dataclass
class Certificate:
    """A certificate of analysis as issued: its PDF and what the trail records of it."""

    lot_number: str
    pdf: bytes
    sha256: str
    facts: dict[str, Any]


def _spec_cell(q: dict[str, Any]) -> str:
    spec = cell_text(q.get("spec"))
    if q.get("spec_code"):
        spec = f"{q['spec_code']}: {spec}"
    return spec


def _result_cell(q: dict[str, Any]) -> str:
    result = cell_text(q.get("result"))
    unit = q.get("unit")
    if unit and result != "-" and not result.endswith(str(unit)):
        result = f"{result} {unit}"
    return result


def _qc_row(q: dict[str, Any]) -> list[str]:
    row = []
    for _, key in QC_COLUMNS:
        if key == "spec":
            row.append(_spec_cell(q))
        elif key == "result":
            row.append(_result_cell(q))
        elif key == "passed":
            row.append("-" if q.get("passed") is None else "yes" if q["passed"] else "NO")
        else:
            row.append(cell_text(q.get(key)))
    return row


def _signature_line(sig: dict[str, Any] | None, what: str) -> str:
    if sig is None:
        return f"{what}: none"
    return (
        f"{what}: {sig['printed_name']} ({sig['username']}), meaning '{sig['meaning']}', "
        f"signed {sig['signed_at'].replace('T', ' ').replace('Z', ' UTC')}"
    )


def _release_signature(info: dict[str, Any]) -> dict[str, Any] | None:
    """Return the newest release signature of the lot (its release, or the lift of a hold)."""
    released = [s for s in info["signatures"] if s["meaning"] == "release"]
    return released[-1] if released else None


def certificate(session: Session, *, lot_number: str, actor: Actor) -> Certificate:
    """Render the certificate of analysis of a released lot the actor may see (else 404/422)."""
    lot = lots.get_lot(session, lot_number, actor)
    if lot.state != "released":
        raise Refused(
            f"a certificate of analysis is issued for a released lot only; "
            f"lot {lot.lot_number} is {lot.state}",
            code="lot_not_released",
            state=lot.state,
        )
    info = lots.lot_dict(session, lot)
    _, org = lots.owner(session, lot)
    release = _release_signature(info)
    review = trail.latest_review(session, lot)
    review_sig = (
        signatures.signature_dict(session.get(Signature, review.signature_id)) if review else None
    )
    # Checkpoint first: verify then judges the chain against it (as the custody reports do).
    cp, cp_problem = checkpoint.on_report(session)
    verified = audit.verify(session)
    facts: dict[str, Any] = {
        "document": "certificate of analysis",
        "lot_number": lot.lot_number,
        "state": lot.state,
        "lot_version": lot.version,
        "qc": [{k: q.get(k) for _, k in QC_COLUMNS if k in q} for q in info["qc"]],
        "release_signature": release["hash"] if release else None,
        "review_signature": review_sig["hash"] if review_sig else None,
        "reviewed_up_to_seq": review.reviewed_up_to_seq if review else None,
        "chain_ok": verified.ok,
        "chain_head_seq": verified.head_seq,
    }
    pdf = _render(
        lot,
        info,
        org_name=org.display_name,
        release=release,
        review=review_sig,
        reviewed_up_to=review.reviewed_up_to_seq if review else None,
        verified=verified,
        checkpoint_line=checkpoint_statement(cp, cp_problem, centre_wide=actor.sees_all),
        issued_at=utcnow(),
        issued_by=f"{actor.user.full_name} ({actor.username}, {actor.org.name})",
        centre_wide=actor.sees_all,
    )
    return Certificate(lot.lot_number, pdf, hashlib.sha256(pdf).hexdigest(), facts)


def record_issue(session: Session, *, cert: Certificate, actor: Actor) -> None:
    """Record in the audit trail that this certificate (by its SHA-256) was issued to actor."""
    lot = lots.get_lot(session, cert.lot_number, actor)
    audit.record_by(
        session,
        actor,
        action=trail.COA_ACTION,
        entity_type="lot",
        entity_id=lot.lot_number,
        after={**cert.facts, "sha256": cert.sha256, "bytes": len(cert.pdf)},
        org_id=lot.org_id,
        lot_id=lot.id,
    )


def _render(
    lot: VectorLot,
    info: dict[str, Any],
    *,
    org_name: str,
    release: dict[str, Any] | None,
    review: dict[str, Any] | None,
    reviewed_up_to: int | None,
    verified: audit.VerifyResult,
    checkpoint_line: str,
    issued_at: datetime,
    issued_by: str,
    centre_wide: bool,
) -> bytes:
    font, bold, mono = _fonts()
    base = getSampleStyleSheet()
    body = ParagraphStyle("b", parent=base["BodyText"], fontName=font, fontSize=9, leading=11)
    small = ParagraphStyle("s", parent=body, fontSize=7.5, leading=9)
    hashes = ParagraphStyle("h", parent=small, fontName=mono)
    h1 = ParagraphStyle("h1", parent=base["Title"], fontName=bold, fontSize=16, alignment=0)
    h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=11, spaceBefore=8)

    def p(value: Any, style: ParagraphStyle = small) -> Paragraph:
        return Paragraph(escape(cell_text(value)), style)

    def table(rows: list[list[Any]], widths: list[float], header: bool = True) -> Table:
        t = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1 if header else 0)
        style = [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 2),
            ("RIGHTPADDING", (0, 0), (-1, -1), 2),
        ]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6e6")))
        t.setStyle(TableStyle(style))
        t.hAlign = "LEFT"
        return t

    issued = issued_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    title = f"Certificate of analysis: lot {lot.lot_number}"
    serotype = f", serotype {lot.serotype}" if lot.serotype else ""
    identity = [
        ("Lot number", lot.lot_number),
        ("Vector", lot.vector),
        ("Product", f"{lot.vector_type} viral vector{serotype}"),
        ("Organisation", org_name),
        ("Project", info["project"]),
        ("Manufactured on", info["manufactured_on"]),
        ("Expires on", info["expires_on"]),
        ("Disposition", f"{lot.state} (lot version {lot.version})"),
    ]
    story: list[Any] = [
        Paragraph(escape(title), h1),
        p(f"Issued {issued} to {issued_by}. Custody LIMS {__version__}.", body),
        Spacer(1, 3 * mm),
        table([[p(k, body), p(v, body)] for k, v in identity], [45, 135], header=False),
        Paragraph("Quality control results", h2),
    ]
    rows = [[p(h) for h, _ in QC_COLUMNS]]
    rows += [[p(c) for c in _qc_row(q)] for q in info["qc"]]
    if not info["qc"]:
        rows.append([p("no QC results recorded")] + [p("") for _ in QC_COLUMNS[1:]])
    story.append(table(rows, [22, 22, 32, 14, 28, 10, 26, 26]))
    story.append(Paragraph("Electronic signatures (21 CFR 11.50)", h2))
    story.append(p(_signature_line(release, "Release"), body))
    if release:
        story.append(p(f"signature hash {release['hash']}", hashes))
    review_line = _signature_line(review, "Audit trail reviewed")
    if review and reviewed_up_to is not None:
        review_line += f" (the lot's trail up to seq {reviewed_up_to})"
    story.append(p(review_line, body))
    if review:
        story.append(p(f"signature hash {review['hash']}", hashes))
    story.append(Paragraph("Audit trail", h2))
    story.append(p(verify_statement(verified, centre_wide=centre_wide), body))
    story.append(p(checkpoint_line, hashes))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=14 * mm,
        bottomMargin=16 * mm,
        title=title,
        author=issued_by,
        subject="certificate of analysis",
        creator=f"Custody LIMS {__version__}",
    )
    doc.build(story, canvasmaker=_canvas_class(f"{title} | issued {issued}", A4))
    return buf.getvalue()
