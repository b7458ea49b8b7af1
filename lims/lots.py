"""Vector lot disposition: the state machine (data), QC results, release and reject."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy import func, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from lims import audit, signatures
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, LimsError, NotFound, Refused
from lims.inputs import Day, Input, Line, Text, blank
from lims.listing import Page, SortKey, keyset_page, parse_sort
from lims.manufacturing.lot_numbers import check_lot_number
from lims.masterdata import check_new_code
from lims.models import (
    Organisation,
    Project,
    QcResult,
    Sample,
    Signature,
    Specification,
    SpecLimit,
    User,
    VectorLot,
    utcnow,
)
from lims.quality import deviations, oos, release, results, specs, trail
from lims.roles import LAB, QA
from lims.signatures import SignatureIn


@dataclass(frozen=True)
class LotTransition:
    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    signature: str | None = None  # the meaning a signature must carry, if one is needed
    needs_reason: bool = False
    needs_qc: bool = False


LOT_TRANSITIONS: dict[str, LotTransition] = {
    t.action: t
    for t in (
        LotTransition("start_production", frozenset({"planned"}), "in_production", frozenset(LAB)),
        LotTransition("complete", frozenset({"in_production"}), "quarantine", frozenset(LAB)),
        LotTransition(
            "release",
            frozenset({"quarantine"}),
            "released",
            frozenset(QA),
            "release",
            needs_qc=True,
        ),
        LotTransition(
            "reject",
            frozenset({"quarantine"}),
            "rejected",
            frozenset(QA),
            "rejection",
            needs_reason=True,
        ),
        LotTransition("hold", frozenset({"released"}), "on_hold", frozenset(QA), needs_reason=True),
        LotTransition(
            "lift_hold",
            frozenset({"on_hold"}),
            "released",
            frozenset(QA),
            "release",
            needs_reason=True,
        ),
        LotTransition("expire", frozenset({"released", "on_hold"}), "expired", frozenset(LAB)),
    )
}
LOT_STATES = (
    "planned",
    "in_production",
    "quarantine",
    "released",
    "on_hold",
    "rejected",
    "expired",
)


class LotCreate(Input):
    lot_number: Line = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    vector_type: Line = Field(pattern="^(AAV|LV)$", description="AAV or LV (lentivirus)")
    vector: Line = Field(min_length=1, max_length=200, description="construct, e.g. AAV9-CMV-GFP")
    serotype: Line | None = Field(default=None, max_length=32)
    project: Line = Field(min_length=1, max_length=64)
    titer_vg_per_ml: float | None = Field(default=None, gt=0, lt=1e20)
    volume_ml: float | None = Field(default=None, gt=0, lt=1e7)
    # Dates arrive as JSON strings ("2026-01-31"): parsed, the rest of the body stays strict.
    manufactured_on: Day | None = None
    expires_on: Day | None = None


# A QC result names the test and what was found; the specification in force judges it.
QcIn = results.ResultIn


class LotTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32)
    version: int | None = Field(default=None, ge=1)
    reason: Text | None = Field(default=None, max_length=2000)
    signature: SignatureIn | None = None


def find_lot(session: Session, lot_number: str, actor: Actor | None = None) -> VectorLot | None:
    """Return the lot numbered lot_number, whatever the case; None if there is none.

    With actor: None too for a lot the actor may not see, so that no caller reveals it exists.
    """
    # Lot numbers are unique whatever the case (migration 0002's index on lower(lot_number)
    # answers this): aav9-2611-001 is that lot.
    lot = session.exec(
        select(VectorLot).where(func.lower(VectorLot.lot_number) == lot_number.lower())
    ).first()
    if lot is None or (actor is not None and not actor.can_see(lot.org_id)):
        return None
    return lot


def get_lot(session: Session, lot_number: str, actor: Actor) -> VectorLot:
    """Return a lot the actor may see (another organisation's lot is a 404)."""
    lot = find_lot(session, lot_number, actor)
    if lot is None:
        raise NotFound(f"no lot {lot_number!r}", code="unknown_lot")
    return lot


def list_lots(session: Session, actor: Actor) -> list[VectorLot]:
    """Return the lots the actor may see, oldest first."""
    stmt = select(VectorLot).order_by(VectorLot.id)
    if not actor.sees_all:
        stmt = stmt.where(VectorLot.org_id == actor.org.id)
    return list(session.exec(stmt).all())


LOT_SORTS: dict[str, SortKey] = {
    "created": SortKey(VectorLot.created_at),
    "updated": SortKey(VectorLot.updated_at),
    "lot": SortKey(VectorLot.lot_number),
    "vector": SortKey(VectorLot.vector),
    "type": SortKey(VectorLot.vector_type),
    "state": SortKey(VectorLot.state),
    "expires": SortKey(func.coalesce(VectorLot.expires_on, date(9999, 12, 31))),
}
LOT_SORT_DEFAULT = "-created"  # newest first


def lot_page(
    session: Session,
    actor: Actor,
    *,
    state: str | None = None,
    project: str | None = None,
    text: str | None = None,
    vector: str | None = None,
    expires_before: date | None = None,
    expires_after: date | None = None,
    sort: str | None = None,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Page:
    """Return one page of the lots the actor may see, filtered (any case), sorted, with a total.

    text matches part of the lot number or of the vector's name. vector is a whole vector
    name, type (AAV, LV) or serotype (AAV9). expires_before/after include the day named; a lot
    with no expiry date matches neither.
    """
    name, descending = parse_sort(sort, LOT_SORTS, LOT_SORT_DEFAULT)
    stmt = select(VectorLot)
    if not actor.sees_all:
        stmt = stmt.where(VectorLot.org_id == actor.org.id)
    if state:
        stmt = stmt.where(VectorLot.state == state.strip().lower())
    if project:
        proj = session.exec(
            select(Project.id).where(func.lower(Project.code) == project.lower())
        ).first()
        stmt = stmt.where(VectorLot.project_id == (proj if proj is not None else -1))
    if vector:
        v = vector.strip().lower()
        stmt = stmt.where(
            (func.lower(VectorLot.vector) == v)
            | (func.lower(VectorLot.vector_type) == v)
            | (func.lower(func.coalesce(VectorLot.serotype, "")) == v)
        )
    if expires_before is not None:
        stmt = stmt.where(VectorLot.expires_on <= expires_before)
    if expires_after is not None:
        stmt = stmt.where(VectorLot.expires_on >= expires_after)
    if text:
        like = (
            "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        stmt = stmt.where(
            func.lower(VectorLot.lot_number).like(like, escape="\\")
            | func.lower(VectorLot.vector).like(like, escape="\\")
        )
    return keyset_page(
        session,
        stmt,
        model=VectorLot,
        key=LOT_SORTS[name],
        sort=name,
        descending=descending,
        after=after,
        before=before,
        limit=limit,
    )


def lot_rows(session: Session, rows: list[VectorLot]) -> list[dict[str, Any]]:
    """Return what the lot list shows of each lot, reading each other table once."""
    ids = [lot.id for lot in rows]
    projects = {p.id: p.code for p in session.exec(select(Project))}
    orgs = {o.id: o.display_name for o in session.exec(select(Organisation))}
    vials = (
        dict(
            session.exec(
                select(Sample.lot_id, func.count())
                .where(Sample.lot_id.in_(ids))
                .group_by(Sample.lot_id)
            ).all()
        )
        if ids
        else {}
    )
    return [
        {
            "lot_number": lot.lot_number,
            "vector": lot.vector,
            "vector_type": lot.vector_type,
            "state": lot.state,
            "project": projects.get(lot.project_id),
            "organisation": orgs.get(lot.org_id),
            "vials": vials.get(lot.id, 0),
            "manufactured_on": lot.manufactured_on,
            "expires_on": lot.expires_on,
            "created_at": lot.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "updated_at": lot.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for lot in rows
    ]


def lot_summary(lot: VectorLot) -> dict[str, Any]:
    """Return a lot's line in a list of lots."""
    return {
        "lot_number": lot.lot_number,
        "state": lot.state,
        "vector": lot.vector,
        "vector_type": lot.vector_type,
        "version": lot.version,
        "expires_on": lot.expires_on.isoformat() if lot.expires_on else None,
    }


def qc_results(session: Session, lot: VectorLot) -> list[QcResult]:
    """Return the current QC results of a lot (latest per test; retests are not among them)."""
    return results.current_results(session, lot_id=lot.id)


def _qc_result(session: Session, r: QcResult) -> dict[str, Any]:
    """Return what a QC result says (the part a lot's snapshot, and so its signature, binds)."""
    said = {"test": r.test, "spec": r.spec, "result": r.result, "passed": r.passed}
    if r.spec_id is not None:
        # Judged against a specification (migration 0004): which one, and who reviewed it.
        spec = session.get(Specification, r.spec_id)
        reviewer = session.get(User, r.reviewed_by_id) if r.reviewed_by_id else None
        said |= {
            "spec_code": spec.code,
            "spec_version": spec.version,
            "reviewed_by": reviewer.username if reviewer else None,
        }
    return said


def snapshot(
    session: Session, lot: VectorLot, current: list[QcResult] | None = None
) -> dict[str, Any]:
    """Return the lot content that audit events and signatures bind to."""
    if current is None:
        current = qc_results(session, lot)
    return {
        "lot_number": lot.lot_number,
        "state": lot.state,
        "version": lot.version,
        "vector_type": lot.vector_type,
        "vector": lot.vector,
        "serotype": lot.serotype,
        "titer_vg_per_ml": lot.titer_vg_per_ml,
        "volume_ml": lot.volume_ml,
        "manufactured_on": lot.manufactured_on.isoformat() if lot.manufactured_on else None,
        "expires_on": lot.expires_on.isoformat() if lot.expires_on else None,
        "qc": [_qc_result(session, r) for r in _preloaded(session, current)],
    }


def _preloaded(session: Session, found: list[QcResult]) -> list[QcResult]:
    results.preload(session, found)
    return found


def lot_dict(
    session: Session,
    lot: VectorLot,
    *,
    vials: list[Sample] | None = None,
    limits: list[SpecLimit] | None = None,
) -> dict[str, Any]:
    """Return the public JSON of a lot, with QC, signatures and vial counts.

    vials, limits: the lot's vials and the limits of the release specification in force, when
    the caller has read them already (the lot page shows both).
    """
    current = qc_results(session, lot)
    snap = snapshot(session, lot, current)
    snap["qc"] = results.results_dicts(session, lot_id=lot.id, current=current)
    sigs = session.exec(
        select(Signature)
        .where(Signature.record_type == "lot", Signature.record_id == lot.lot_number)
        .order_by(Signature.id)
    ).all()
    if vials is None:
        vials = list(
            session.exec(select(Sample).where(Sample.lot_id == lot.id).order_by(Sample.id))
        )
    if limits is None:
        plan = specs.required_tests(session, product=lot.vector_type)
    else:
        plan = [x.test for x in limits if x.required]
    project, org = owner(session, lot)
    return {
        **snap,
        "project": project.code,
        "organisation": org.name,
        "qc_missing": [t for t in plan or () if t not in {r["test"] for r in snap["qc"]}],
        "allowed_actions": [a for a, t in LOT_TRANSITIONS.items() if lot.state in t.sources],
        "signatures": [signatures.signature_dict(s) for s in sigs],
        "vials": [{"barcode": v.barcode, "state": v.state} for v in vials],
    }


def create_lot(session: Session, *, data: LotCreate, actor: Actor) -> VectorLot:
    """Plan a new vector lot."""
    if actor.role not in LAB:
        raise Forbidden("creating a lot needs a technician, qa or admin role", code="role_required")
    project = session.exec(select(Project).where(Project.code == data.project)).first()
    if project is None or not actor.can_see(project.org_id):
        raise NotFound(f"no project {data.project!r}", code="unknown_project")
    # What its labels cannot print is refused now, not at the first print (one rule for both).
    check_lot_number(data.lot_number)
    # Compared without case: AAV9-2611-001 and aav9-2611-001 would be one lot to a reader.
    existing = find_lot(session, data.lot_number)
    if existing is not None and actor.can_see(existing.org_id):
        raise Conflict(
            f"lot {existing.lot_number} exists already; choose another lot number",
            code="lot_exists",
        )
    # Lot numbers are unique across the centre. A client may not learn what else holds a number
    # (another organisation's lot, a place, a station, a badge): one answer for all of them.
    unavailable = Conflict(
        f"lot number {data.lot_number} is not available; choose another lot number",
        code="lot_exists",
    )
    if existing is not None:
        raise unavailable
    # Scanned bare, a lot number is looked up after places and badges: it must not be one, nor
    # be shaped like a sample barcode or a COI (a label would then name two things).
    try:
        check_new_code(session, data.lot_number, "lot")
    except Conflict:
        if actor.sees_all:
            raise
        raise unavailable from None
    if data.manufactured_on and data.expires_on and data.expires_on <= data.manufactured_on:
        raise BadRequest("expires_on must be after manufactured_on")
    lot = VectorLot(
        **data.model_dump(exclude={"project"}), project_id=project.id, org_id=project.org_id
    )
    session.add(lot)
    session.flush()
    _record(session, actor, "lot.create", lot, None, snapshot(session, lot))
    return lot


def _record(
    session: Session,
    actor: Actor,
    action: str,
    lot: VectorLot,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    reason: str | None = None,
    **kw: Any,
) -> None:
    """Append the lot's event (a reason of only spaces is none)."""
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="lot",
        entity_id=lot.lot_number,
        before=before,
        after=after,
        reason=reason,
        org_id=lot.org_id,
        lot_id=lot.id,
        **kw,
    )


def _save(session: Session, lot: VectorLot, changes: dict[str, Any]) -> None:
    old = lot.version
    changes = {**changes, "version": old + 1, "updated_at": utcnow()}
    res = session.connection().execute(
        update(VectorLot).where(VectorLot.id == lot.id, VectorLot.version == old).values(**changes)
    )
    if res.rowcount != 1:
        raise Conflict(
            f"lot {lot.lot_number} was changed by someone else; reload it", code="version_conflict"
        )
    for k, v in changes.items():
        set_committed_value(lot, k, v)


def record_qc(session: Session, *, lot_number: str, data: QcIn, actor: Actor) -> QcResult:
    """Record a QC result judged against the specification; a repeat corrects, with a reason.

    A failing result opens an OOS investigation in the same transaction.
    """
    lot = get_lot(session, lot_number, actor)
    if actor.role not in LAB:
        raise Forbidden("recording QC needs a technician, qa or admin role", code="role_required")
    results.check_input(data)
    if lot.state not in ("in_production", "quarantine"):
        raise Refused(
            f"QC results are recorded while a lot is in production or quarantine; "
            f"{lot.lot_number} is {lot.state}",
            code="illegal_state",
        )
    previous = {r.test: r for r in qc_results(session, lot)}.get(data.test)
    results.check_correction(session, previous, data)
    before = snapshot(session, lot)
    # A correction points at the event that recorded the result it replaces, as a sample
    # correction does: an inspector follows the link instead of comparing snapshots.
    corrects = _qc_recorded_by(session, lot, previous) if previous is not None else None
    qc = results.judged_result(
        session, product=lot.vector_type, data=data, actor=actor, lot=lot, previous=previous
    )
    _save(session, lot, {})
    after = snapshot(session, lot)
    _record(session, actor, "lot.qc", lot, before, after, data.reason, corrects_seq=corrects)
    oos.open_if_failed(session, result=qc, actor=actor)
    return qc


def _qc_recorded_by(session: Session, lot: VectorLot, previous: QcResult) -> int | None:
    """Return the seq of the event that recorded the QC result previous.

    The first result of a test is the event that added the test; each later one is the event
    whose corrects_seq names the one before it, as many steps as previous has predecessors.
    """
    events = audit.query(
        session,
        entity_type="lot",
        entity_ids=[lot.lot_number],
        action="lot.qc",
        limit=100_000,
    )

    def tests(snap: str | None) -> dict[str, Any]:
        return {q["test"]: q for q in json.loads(snap or "{}").get("qc", [])}

    seq = next(
        (
            e.seq
            for e in events
            if previous.test in tests(e.after) and previous.test not in tests(e.before)
        ),
        None,
    )
    corrected_by = {e.corrects_seq: e.seq for e in events if e.corrects_seq is not None}
    result = previous
    steps = 0
    while result.supersedes_id is not None:
        result = session.get(QcResult, result.supersedes_id)
        steps += 1
    for _ in range(steps):
        # Corrections made before corrects_seq was recorded for QC break the walk: unknown.
        seq = corrected_by.get(seq)
    return seq


def check_release(
    session: Session, lot: VectorLot, actor: Actor, t: LotTransition, today: date
) -> None:
    """Refuse a move to released (release, lift_hold) that a GMP rule forbids, with the rule."""
    if t.needs_qc:
        # The specification's sampling plan, OOS investigations, review and four eyes.
        release.lot_release_refusal(session, lot, actor)
    if t.target != "released":
        return
    deviations.refuse_release(session, what=f"lot {lot.lot_number}", lot=lot)
    if lot.expires_on is not None and lot.expires_on <= today:
        raise Refused(
            f"lot {lot.lot_number} expired on {lot.expires_on}; it cannot be released",
            code="lot_expired",
        )
    # Release and lifting a hold rest on QA's review of the lot's audit trail (Annex 11 §9).
    trail.release_refusal(session, lot)


def release_blocker(
    session: Session, lot: VectorLot, actor: Actor, action: str = "release"
) -> str | None:
    """Return why actor could not take lot to released by action now (for a page), or None."""
    t = LOT_TRANSITIONS[action]
    if actor.role not in t.roles or lot.state not in t.sources:
        return None
    try:
        check_release(session, lot, actor, t, utcnow().date())
    except LimsError as err:
        return err.message
    return None


def transition_lot(
    session: Session,
    *,
    lot_number: str,
    data: LotTransitionIn,
    actor: Actor,
    today: date | None = None,
) -> VectorLot:
    """Move a lot along its disposition table; release and reject need a QA e-signature."""
    lot = get_lot(session, lot_number, actor)
    if data.version is not None and data.version != lot.version:
        raise Conflict(
            f"lot {lot_number} is at version {lot.version}, not {data.version}",
            code="version_conflict",
            current_version=lot.version,
        )
    t = LOT_TRANSITIONS.get(data.action)
    allowed = [a for a, x in LOT_TRANSITIONS.items() if lot.state in x.sources]
    if t is not None and actor.role not in t.roles:
        # The role first: someone who may never do this learns nothing from the lot's state.
        raise Forbidden(
            f"{data.action} needs the role {' or '.join(sorted(t.roles))}",
            code="role_required",
        )
    if t is None or lot.state not in t.sources:
        raise Refused(
            f"cannot {data.action} a lot that is {lot.state}; "
            f"allowed: {', '.join(allowed) or 'none'}",
            code="illegal_transition" if t else "unknown_action",
            state=lot.state,
            allowed=allowed,
        )
    if t.needs_reason and blank(data.reason):
        raise Refused(f"{data.action} needs a reason", code="missing_fields", missing=["reason"])
    today = today or utcnow().date()
    check_release(session, lot, actor, t, today)
    if data.action == "expire":
        if lot.expires_on is None or lot.expires_on > today:
            raise Refused(
                f"lot {lot_number} expires on {lot.expires_on}; not yet", code="not_expired"
            )
    before = snapshot(session, lot)
    sig = None
    if t.signature:
        if data.signature is None:
            raise Refused(
                f"{data.action} needs an electronic signature (password and meaning)",
                code="signature_required",
            )
        if data.signature.meaning != t.signature:
            raise BadRequest(
                f"{data.action} is signed with the meaning {t.signature!r}",
                code="signature_meaning",
            )
        # The signature binds the lot content as it will be after the move.
        signed = {**before, "state": t.target, "version": lot.version + 1}
        sig = signatures.sign(
            session,
            actor=actor,
            password=data.signature.password,
            meaning=data.signature.meaning,
            username=data.signature.username,
            record_type="lot",
            record_id=lot.lot_number,
            content=signed,
        )
    elif data.signature is not None:
        raise BadRequest(f"{data.action} takes no signature", code="unexpected_field")
    _save(session, lot, {"state": t.target})
    after = snapshot(session, lot)
    if sig is not None:
        after["signature"] = signatures.manifestation(sig)
    sig_id = sig.id if sig else None
    _record(
        session, actor, f"lot.{data.action}", lot, before, after, data.reason, signature_id=sig_id
    )
    return lot


def expire_due(session: Session, *, actor: Actor, today: date | None = None) -> list[str]:
    """Expire every released or held lot whose expiry date has come."""
    today = today or utcnow().date()
    due = session.exec(
        select(VectorLot).where(
            VectorLot.state.in_(("released", "on_hold")), VectorLot.expires_on <= today
        )
    ).all()
    for lot in due:
        transition_lot(
            session,
            lot_number=lot.lot_number,
            data=LotTransitionIn(action="expire", reason="expiry date reached"),
            actor=actor,
            today=today,
        )
    return [lot.lot_number for lot in due]


def owner(session: Session, lot: VectorLot) -> tuple[Project, Organisation]:
    """Return the lot's project and the organisation it belongs to."""
    held = session.identity_map
    project = held.get(session.identity_key(Project, lot.project_id))
    org = held.get(session.identity_key(Organisation, lot.org_id))
    if project is not None and org is not None:
        return project, org
    # Both in one round trip (two primary-key lookups in one SELECT).
    return session.exec(
        select(Project, Organisation)
        .join(Organisation, Organisation.id == lot.org_id)
        .where(Project.id == lot.project_id)
    ).one()
