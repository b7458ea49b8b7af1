"""Chain-of-custody reports (PDF) for a sample with its lineage, or a lot with its vials.

What an inspector asks of a printout (Annex 11 §8, 21 CFR 11.10(b)): who touched the material,
when (UTC), where, in which condition, why, under whose signature (11.50: printed name, time,
meaning), and evidence that the trail was not altered (the audit chain is verified when the
report is made and its head hash is printed, so a later re-check can compare).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlmodel import Session, select

from lims import __version__, audit, exports, lots, samples, signatures
from lims.accounts.users import Actor
from lims.models import AuditEvent, Location, Sample, Signature, User, VectorLot, utcnow

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


@dataclass
class ReportData:
    """Everything a report prints, gathered before rendering."""

    kind: str  # sample | lot
    subject: str  # barcode or lot number
    identity: list[tuple[str, str]]
    lineage: list[dict[str, Any]]
    events: list[dict[str, Any]]
    signatures: list[dict[str, Any]]
    verify: audit.VerifyResult
    generated_at: datetime
    generated_by: str
    qc: list[dict[str, Any]] = field(default_factory=list)


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        # e.g. what a correction corrects: 'volume=50', not a Python dict.
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    return str(value)


def _qc_changes(before: list | None, after: list | None) -> list[str]:
    """Say which QC results an event recorded or corrected, with the value they replaced."""
    old = {q.get("test"): q for q in before or [] if isinstance(q, dict)}
    out = []
    for q in after or []:
        if not isinstance(q, dict) or old.get(q.get("test")) == q:
            continue
        prev = old.get(q.get("test"))
        was = f"{_text(prev.get('result'))} -> " if prev else ""
        verdict = "pass" if q.get("passed") else "FAIL"
        out.append(f"QC {q.get('test')}: {was}{_text(q.get('result'))} ({verdict})")
    return out


def _user_names(db: Session) -> dict[str, str]:
    return {u: n for u, n in db.exec(select(User.username, User.full_name)).all()}


def _location_codes(db: Session) -> dict[int, str]:
    return {i: c for i, c in db.exec(select(Location.id, Location.code)).all()}


def _changes(before: dict | None, after: dict | None) -> str:
    """Summarise what an event changed: 'state: received -> quarantine; volume: 5 -> 4'."""
    if not after:
        return ""
    if before is None:
        keys = ("state", "sample_type", "project", "coi", "parent", "lot", "volume", "unit")
        return "; ".join(f"{k}: {_text(after[k])}" for k in keys if after.get(k) is not None)
    out = []
    for k, v in after.items():
        if k in ("version", "qc", "signature") or before.get(k) == v:
            continue
        out.append(f"{k}: {_text(before.get(k))} -> {_text(v)}")
    if before.get("qc") != after.get("qc") and "qc" in after:
        out += _qc_changes(before.get("qc"), after.get("qc"))
    sig = after.get("signature")
    if isinstance(sig, dict):
        out.append(f"e-signature ({sig.get('meaning')}) by {sig.get('printed_name')}")
    return "; ".join(out)


def _job_queued(after: dict | None) -> str:
    """Summarise a queued print job: where, what and how many (not every barcode it holds)."""
    if not after:
        return ""
    out = [
        f"{after.get('labels_total')} label(s), {after.get('template')} on {after.get('printer')}"
    ]
    for key, what in (("reprint_of", "reprint of job"), ("resume_of", "rest of job")):
        if after.get(key) is not None:
            out.append(f"{what} {after[key]}")
    return "; ".join(out)


def _event_row(ev: AuditEvent, names: dict[str, str], locs: dict[int, str]) -> dict[str, Any]:
    before = json.loads(ev.before) if ev.before else None
    after = json.loads(ev.after) if ev.after else None
    location = None
    if after and after.get("location"):
        location = after["location"] + (f" {after['position']}" if after.get("position") else "")
    elif ev.location_id is not None:
        location = locs.get(ev.location_id)
    condition = None
    if after and after.get("condition") and (before or {}).get("condition") != after["condition"]:
        condition = after["condition"]
    return {
        "seq": ev.seq,
        "ts": audit.ts_text(ev.ts),
        "actor": ev.actor,
        "actor_name": names.get(ev.actor, ev.actor),
        "action": ev.action,
        "record": f"{ev.entity_type} {ev.entity_id}",
        "location": location,
        "condition": condition,
        "reason": ev.reason,
        "station": ev.station or ev.device,
        "signature_id": ev.signature_id,
        "corrects_seq": ev.corrects_seq,
        "changes": _job_queued(after)
        if ev.entity_type == "print_job" and before is None
        else _changes(before, after),
        "after": after,
        "hash": ev.hash,
    }


def _signature_rows(db: Session, events: list[dict[str, Any]], extra: list[Signature]) -> list:
    """Return the signatures of the events (and extra ones), each checked against its record."""
    by_id: dict[int, Signature] = {s.id: s for s in extra}
    missing = {ev["signature_id"] for ev in events} - by_id.keys() - {None}
    if missing:
        # One query for all signed events, not one per event.
        by_id.update(
            (sig.id, sig) for sig in db.exec(select(Signature).where(Signature.id.in_(missing)))
        )
    signed_event = {ev["signature_id"]: ev for ev in events if ev["signature_id"] is not None}
    out = []
    for sid in sorted(by_id):
        sig = by_id[sid]
        ev = signed_event.get(sid)
        after = (ev["after"] if ev else None) or {}
        # The signature binds the record content the signed event recorded as 'after'.
        bound = ev is not None and signatures.verify_signature(
            sig,
            record_type=sig.record_type,
            record_id=sig.record_id,
            content=signatures.signed_content(after),
        )
        # Since 2026-11-29 the event also holds the signature itself; an older event does not.
        chained = after.get("signature")
        if bound and chained is not None and chained != signatures.manifestation(sig):
            binding = "ALTERED: differs from the audit trail"
        else:
            binding = "intact" if bound else "NOT VERIFIED"
        out.append(
            {
                **signatures.signature_dict(sig),
                "event_seq": ev["seq"] if ev else None,
                "binding": binding,
            }
        )
    return out


def _events(db: Session, filters: dict[str, Any], names: dict, locs: dict) -> list[dict]:
    return [_event_row(e, names, locs) for e in audit.iter_events(db, **filters)]


def _who(actor: Actor) -> str:
    via = f", via {actor.device}" if actor.device else ""
    return f"{actor.user.full_name} ({actor.username}, {actor.role}, {actor.org.name}{via})"


def _lot_signatures(db: Session, lot_number: str) -> list[Signature]:
    """Return the signatures given on a lot's own record."""
    on_lot = (Signature.record_type == "lot", Signature.record_id == lot_number)
    return list(db.exec(select(Signature).where(*on_lot)).all())


def _report(
    db: Session,
    actor: Actor,
    *,
    kind: str,
    subject: str,
    identity: list[tuple[str, Any]],
    lineage: list[dict[str, Any]],
    events: list[dict[str, Any]],
    extra: list[Signature],
    qc: list[dict[str, Any]] | None = None,
) -> ReportData:
    """Complete a report's data: signatures checked, audit chain verified, who made it when."""
    return ReportData(
        kind=kind,
        subject=subject,
        identity=[(k, _text(v)) for k, v in identity],
        lineage=lineage,
        events=events,
        signatures=_signature_rows(db, events, extra),
        verify=audit.verify(db),
        generated_at=utcnow(),
        generated_by=_who(actor),
        qc=qc or [],
    )


def sample_data(db: Session, barcode: str, actor: Actor) -> ReportData:
    """Gather the report of a sample: identity, lineage, its lineage's events, signatures."""
    s = samples.get_sample(db, barcode, actor)
    d = samples.sample_dict(db, s)
    names, locs = _user_names(db), _location_codes(db)
    identity = [
        ("Barcode", d["barcode"]),
        ("Chain of Identity (COI)", f"{d['coi']} ({d['coi_scheme']})"),
        ("Sample type", d["sample_type"]),
        ("Organisation / project", f"{d['organisation']} / {d['project']}"),
        ("Vector lot", d["lot"]),
        ("Parent / lineage", f"{_text(d['parent'])} / {_text(d['lineage'])}"),
        ("State (version)", f"{d['state']} (v{d['version']})"),
        ("Volume", f"{_text(d['volume'])} {d['unit'] or ''}".strip()),
        ("Container", d["container"]),
        ("Location", f"{_text(d['location'])} {d['position'] or ''}".strip()),
        ("Custodian", d["custodian"]),
        ("Condition", d["condition"]),
        ("Freeze-thaw cycles", d["freeze_thaw_count"]),
        ("Registered (UTC)", d["created_at"]),
    ]
    g = samples.genealogy(db, s)
    lineage = [
        {"relation": "ancestor", "depth": i - len(g["ancestors"]), **a}
        for i, a in enumerate(g["ancestors"])
    ]

    def walk(node: dict[str, Any], depth: int) -> None:
        lineage.append(
            {
                "relation": "this sample" if depth == 0 else "descendant",
                "depth": depth,
                **{k: node[k] for k in ("barcode", "state", "lineage", "coi")},
            }
        )
        for child in node["children"]:
            walk(child, depth + 1)

    walk(g["tree"], 0)
    events = _events(db, exports.filters_for(db, actor, sample=barcode), names, locs)
    extra: list[Signature] = []
    if s.lot_id is not None:
        # A vial's release rests on its lot's disposition: print the lot's own events too.
        lot = db.get(VectorLot, s.lot_id)
        lot_events = _events(
            db,
            {
                **exports.filters_for(db, actor),
                "entity_type": "lot",
                "entity_ids": [lot.lot_number],
            },
            names,
            locs,
        )
        events = sorted(events + lot_events, key=lambda e: e["seq"])
        extra = _lot_signatures(db, lot.lot_number)
    return _report(
        db,
        actor,
        kind="sample",
        subject=s.barcode,
        identity=identity,
        lineage=lineage,
        events=events,
        extra=extra,
    )


def lot_data(db: Session, lot_number: str, actor: Actor) -> ReportData:
    """Gather the report of a lot: identity, QC, vials, the events of the lot and its vials."""
    lot = lots.get_lot(db, lot_number, actor)
    d = lots.lot_dict(db, lot)
    names, locs = _user_names(db), _location_codes(db)
    identity = [
        ("Lot number", d["lot_number"]),
        (
            "Vector",
            f"{d['vector']} ({d['vector_type']}{', ' + d['serotype'] if d['serotype'] else ''})",
        ),
        ("Organisation / project", f"{d['organisation']} / {d['project']}"),
        ("Disposition (version)", f"{d['state']} (v{d['version']})"),
        ("Titer (vg/mL)", d["titer_vg_per_ml"]),
        ("Volume (mL)", d["volume_ml"]),
        ("Manufactured / expires", f"{_text(d['manufactured_on'])} / {_text(d['expires_on'])}"),
        ("QC missing", ", ".join(d["qc_missing"]) or "none"),
        ("Vials", len(d["vials"])),
    ]
    vials = db.exec(select(Sample).where(Sample.lot_id == lot.id).order_by(Sample.id)).all()
    lineage = [
        {
            "relation": "vial",
            "depth": 0 if v.parent_id is None else 1,
            "barcode": v.barcode,
            "state": v.state,
            "lineage": v.lineage,
            "coi": v.coi,
            "location": f"{locs.get(v.location_id, '-')} {v.position or ''}".strip()
            if v.location_id
            else None,
        }
        for v in vials
    ]
    events = _events(db, exports.filters_for(db, actor, lot=lot_number), names, locs)
    return _report(
        db,
        actor,
        kind="lot",
        subject=lot.lot_number,
        identity=identity,
        lineage=lineage,
        events=events,
        extra=_lot_signatures(db, lot.lot_number),
        qc=d["qc"],
    )


def verify_statement(v: audit.VerifyResult) -> str:
    """Return the sentence the report prints about the audit chain."""
    if v.ok:
        return (
            f"Audit trail verification PASSED: all {v.events} events were recomputed and the "
            f"hash chain is intact (head seq {v.head_seq})."
        )
    return (
        f"Audit trail verification FAILED at seq {v.first_bad_seq}: {v.problem}. "
        f"Do not rely on this report; inform QA."
    )


def _canvas_class(footer_left: str):  # noqa: ANN202
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
            self.drawRightString(PAGE[0] - 12 * mm, 7 * mm, f"page {self._pageNumber} of {total}")

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
        return Paragraph(escape(_text(value)), style)

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
        Paragraph(escape(verify_statement(data.verify)), alert),
        p(f"Audit chain head hash (seq {data.verify.head_seq}): {data.verify.head_hash}", hashes),
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
            reason = f"{_text(reason)} (corrects seq {e['corrects_seq']})"
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
