"""What a chain-of-custody report holds, read from the domain before anything is rendered."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from lims import audit, lots, samples, signatures
from lims.accounts.users import Actor
from lims.audit import checkpoint
from lims.models import AuditEvent, Location, Sample, Signature, User, VectorLot, utcnow
from lims.reports.filters import filters_for


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
    # The signed checkpoint written for this report, or why none could be written.
    checkpoint: audit.Checkpoint | None = None
    checkpoint_problem: str | None = None
    # A client's report does not state the centre-wide event count or head seq (issue 14).
    centre_wide: bool = True


def cell_text(value: Any) -> str:
    """Return a value as a report cell shows it ('-' for nothing, 5 not 5.0, no Python dicts)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        # e.g. what a correction corrects: 'volume=50', not a Python dict.
        return ", ".join(f"{k}={cell_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(cell_text(v) for v in value)
    return str(value)


def _qc_changes(before: list | None, after: list | None) -> list[str]:
    """Say which QC results an event recorded or corrected, with the value they replaced."""
    old = {q.get("test"): q for q in before or [] if isinstance(q, dict)}
    out = []
    for q in after or []:
        if not isinstance(q, dict) or old.get(q.get("test")) == q:
            continue
        prev = old.get(q.get("test"))
        was = f"{cell_text(prev.get('result'))} -> " if prev else ""
        verdict = "pass" if q.get("passed") else "FAIL"
        out.append(f"QC {q.get('test')}: {was}{cell_text(q.get('result'))} ({verdict})")
    return out


def _changes(before: dict | None, after: dict | None) -> str:
    """Summarise what an event changed: 'state: received -> quarantine; volume: 5 -> 4'."""
    if not after:
        return ""
    if before is None:
        keys = ("state", "sample_type", "project", "coi", "parent", "lot", "volume", "unit")
        return "; ".join(f"{k}: {cell_text(after[k])}" for k in keys if after.get(k) is not None)
    out = []
    for k, v in after.items():
        if k in ("version", "qc", "signature") or before.get(k) == v:
            continue
        out.append(f"{k}: {cell_text(before.get(k))} -> {cell_text(v)}")
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


class _Trail:
    """Reads a report's events as rows, with people's names and location codes looked up once."""

    def __init__(self, db: Session) -> None:
        self.db = db
        self.names = {u: n for u, n in db.exec(select(User.username, User.full_name)).all()}
        self.locs = {i: c for i, c in db.exec(select(Location.id, Location.code)).all()}

    def events(self, filters: audit.Filters) -> list[dict[str, Any]]:
        """Return the rows of the events matching filters, oldest first."""
        return [_event_row(e, self.names, self.locs) for e in audit.iter_events(self.db, **filters)]


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
    kind: str,
    subject: str,
    identity: list[tuple[str, Any]],
    lineage: list[dict[str, Any]],
    events: list[dict[str, Any]],
    extra: list[Signature],
    qc: list[dict[str, Any]] | None = None,
) -> ReportData:
    """Complete a report's data: signatures checked, audit chain checkpointed and verified."""
    # Checkpoint first: verify then judges the chain against it.
    cp, cp_problem = checkpoint.on_report(db)
    return ReportData(
        kind=kind,
        subject=subject,
        identity=[(k, cell_text(v)) for k, v in identity],
        lineage=lineage,
        events=events,
        signatures=_signature_rows(db, events, extra),
        verify=audit.verify(db),
        generated_at=utcnow(),
        generated_by=_who(actor),
        qc=qc or [],
        checkpoint=cp,
        checkpoint_problem=cp_problem,
        centre_wide=actor.sees_all,
    )


def sample_data(db: Session, barcode: str, actor: Actor) -> ReportData:
    """Gather the report of a sample: identity, lineage, its lineage's events, signatures."""
    s = samples.get_sample(db, barcode, actor)
    trail = _Trail(db)
    identity = _sample_identity(samples.sample_dict(db, s))
    lineage = _lineage_rows(samples.genealogy(db, s))
    events = trail.events(filters_for(db, actor, sample=barcode))
    extra: list[Signature] = []
    if s.lot_id is not None:
        # A vial's release rests on its lot's disposition: print the lot's own events too.
        lot = db.get(VectorLot, s.lot_id)
        on_lot: audit.Filters = {"entity_type": "lot", "entity_ids": [lot.lot_number]}
        lot_events = trail.events({**filters_for(db, actor), **on_lot})
        events = sorted(events + lot_events, key=lambda e: e["seq"])
        extra = _lot_signatures(db, lot.lot_number)
    return _report(db, actor, "sample", s.barcode, identity, lineage, events, extra)


def _sample_identity(d: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("Barcode", d["barcode"]),
        ("Chain of Identity (COI)", f"{d['coi']} ({d['coi_scheme']})"),
        ("Sample type", d["sample_type"]),
        ("Organisation / project", f"{d['organisation']} / {d['project']}"),
        ("Vector lot", d["lot"]),
        ("Parent / lineage", f"{cell_text(d['parent'])} / {cell_text(d['lineage'])}"),
        ("State (version)", f"{d['state']} (v{d['version']})"),
        ("Volume", f"{cell_text(d['volume'])} {d['unit'] or ''}".strip()),
        ("Container", d["container"]),
        ("Location", f"{cell_text(d['location'])} {d['position'] or ''}".strip()),
        ("Custodian", d["custodian"]),
        ("Condition", d["condition"]),
        ("Freeze-thaw cycles", d["freeze_thaw_count"]),
        ("Registered (UTC)", d["created_at"]),
    ]


def _lineage_rows(g: dict[str, Any]) -> list[dict[str, Any]]:
    """Return a genealogy as rows: ancestors (negative depth), the sample, its descendants."""
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
    return lineage


def lot_data(db: Session, lot_number: str, actor: Actor) -> ReportData:
    """Gather the report of a lot: identity, QC, vials, the events of the lot and its vials."""
    lot = lots.get_lot(db, lot_number, actor)
    trail = _Trail(db)
    d = lots.lot_dict(db, lot)
    vials = db.exec(select(Sample).where(Sample.lot_id == lot.id).order_by(Sample.id)).all()
    lineage = [_vial_row(v, trail.locs) for v in vials]
    events = trail.events(filters_for(db, actor, lot=lot_number))
    extra = _lot_signatures(db, lot.lot_number)
    return _report(
        db, actor, "lot", lot.lot_number, _lot_identity(d), lineage, events, extra, d["qc"]
    )


def _lot_identity(d: dict[str, Any]) -> list[tuple[str, Any]]:
    serotype = f", {d['serotype']}" if d["serotype"] else ""
    return [
        ("Lot number", d["lot_number"]),
        ("Vector", f"{d['vector']} ({d['vector_type']}{serotype})"),
        ("Organisation / project", f"{d['organisation']} / {d['project']}"),
        ("Disposition (version)", f"{d['state']} (v{d['version']})"),
        ("Titer (vg/mL)", d["titer_vg_per_ml"]),
        ("Volume (mL)", d["volume_ml"]),
        (
            "Manufactured / expires",
            f"{cell_text(d['manufactured_on'])} / {cell_text(d['expires_on'])}",
        ),
        ("QC missing", ", ".join(d["qc_missing"]) or "none"),
        ("Vials", len(d["vials"])),
    ]


def _vial_row(v: Sample, locs: dict[int, str]) -> dict[str, Any]:
    return {
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
