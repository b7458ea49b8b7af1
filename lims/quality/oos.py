"""Out-of-specification investigations: opened by a failing result, closed by QA with reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field
from sqlalchemy import case, func, update
from sqlmodel import Session, col, select

from lims import audit, lineage, signatures
from lims.accounts.users import Actor
from lims.errors import Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text, blank
from lims.models import OosRecord, QcResult, Sample, VectorLot, utcnow
from lims.quality import results
from lims.roles import LAB, QA
from lims.signatures import SignatureIn


@dataclass(frozen=True)
class OosTransition:
    action: str
    sources: frozenset[str]
    target: str
    signature: str  # the meaning of the QA e-signature each move carries
    description: str


OPEN = frozenset({"phase_1", "phase_2"})
OOS_PHASES = ("phase_1", "phase_2", "confirmed", "invalidated")
OOS_TRANSITIONS: dict[str, OosTransition] = {
    t.action: t
    for t in (
        OosTransition(
            "start_investigation",
            frozenset({"phase_1"}),
            "phase_2",
            "review",
            "the lab check found no assignable error: investigate the process",
        ),
        OosTransition(
            "confirm",
            OPEN,
            "confirmed",
            "approval",
            "the result stands: the material is out of specification",
        ),
        OosTransition(
            "invalidate",
            OPEN,
            "invalidated",
            "approval",
            "an assignable laboratory error: the result is set aside, the retest counts",
        ),
    )
}


class OosTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32)
    reason: Text = Field(min_length=1, max_length=2000)
    version: int | None = Field(default=None, ge=1)
    signature: SignatureIn | None = None


class RetestIn(Input):
    """A retest inside an open OOS investigation: the test is the investigated one."""

    result: Text = Field(min_length=1, max_length=200)
    sampled_at: results.Moment | None = None
    method: Line | None = Field(default=None, max_length=100)
    reason: Text | None = Field(default=None, max_length=2000)


def name(oos: OosRecord) -> str:
    """Return how people call an investigation: OOS-12."""
    return f"OOS-{oos.id}"


def refuse_release_of_derivative(session: Session, *, what: str, sample: Sample) -> None:
    """Refuse (422) releasing material made from a sample under an open or confirmed OOS.

    A failing result on a parent says the material it gave is suspect too: an aliquot of it,
    a derivative or a pool of it waits for the investigation (invalidated frees it).
    """
    made_from, _ = lineage.ancestors(session, sample)
    if not made_from:
        return
    by_id = {p.id: p for p in made_from}
    found = session.exec(
        select(OosRecord)
        .where(col(OosRecord.sample_id).in_(list(by_id)), OosRecord.phase != "invalidated")
        .order_by(col(OosRecord.id))
    ).all()
    if not found:
        return
    open_ = [o for o in found if o.phase in OPEN]
    names = ", ".join(
        f"OOS-{o.id} on {by_id[o.sample_id].barcode} ({o.test}, {o.phase.replace('_', ' ')})"
        for o in found
    )
    raise Refused(
        f"{what} cannot be released: it is made from material under "
        f"{'an open' if open_ else 'a confirmed'} out-of-specification investigation ({names})",
        code="oos_open" if open_ else "oos_confirmed",
        oos=[o.id for o in found],
    )


def open_if_failed(session: Session, *, result: QcResult, actor: Actor) -> OosRecord | None:
    """Open an OOS investigation for a failing result (a retest's stays inside its own)."""
    if result.passed or result.retest_of_oos_id is not None:
        return None
    subject = results.subject_event(session, result)
    oos = OosRecord(
        result_id=result.id,
        lot_id=result.lot_id,
        sample_id=result.sample_id,
        org_id=subject["org_id"],
        test=result.test,
    )
    session.add(oos)
    session.flush()
    audit.record_by(
        session,
        actor,
        action="oos.open",
        entity_type="oos",
        entity_id=name(oos),
        before=None,
        after=_content(session, oos),
        reason=f"{result.test} {result.result} is outside {result.spec}",
        org_id=oos.org_id,
        lot_id=subject["lot_id"],
    )
    return oos


def get_oos(session: Session, oos_id: int, actor: Actor) -> OosRecord:
    """Return an investigation the actor may see (another organisation's is a 404)."""
    oos = session.get(OosRecord, oos_id)
    if oos is None or not actor.can_see(oos.org_id):
        raise NotFound(f"no OOS investigation {oos_id}", code="unknown_oos")
    return oos


def list_oos(
    session: Session, actor: Actor, *, open_only: bool = False, limit: int | None = None
) -> tuple[list[OosRecord], int]:
    """Return the investigations the actor may see, open ones first, then newest first; and
    how many there are in all (a list shows the first `limit`)."""
    where = []
    if not actor.sees_all:
        where.append(OosRecord.org_id == actor.org.id)
    if open_only:
        where.append(col(OosRecord.phase).in_(sorted(OPEN)))
    total = session.exec(select(func.count()).select_from(OosRecord).where(*where)).one()
    still_open = case((col(OosRecord.phase).in_(sorted(OPEN)), 0), else_=1)
    stmt = select(OosRecord).where(*where).order_by(still_open, col(OosRecord.id).desc())
    return list(session.exec(stmt.limit(limit)).all()), total


def _subject(session: Session, oos: OosRecord) -> tuple[str, str]:
    if oos.lot_id:
        return "lot", session.get(VectorLot, oos.lot_id).lot_number
    return "sample", session.get(Sample, oos.sample_id).barcode


def _content(session: Session, oos: OosRecord) -> dict[str, Any]:
    kind, ref = _subject(session, oos)
    return {
        "oos": name(oos),
        kind: ref,
        "test": oos.test,
        "result_id": oos.result_id,
        "phase": oos.phase,
        "version": oos.version,
        "conclusion": oos.conclusion,
    }


def oos_dict(session: Session, oos: OosRecord) -> dict[str, Any]:
    """Return the JSON of an investigation: the result, its retests, the phase and moves."""
    kind, ref = _subject(session, oos)
    original = session.get(QcResult, oos.result_id)
    return {
        "id": oos.id,
        "name": name(oos),
        "lot": ref if kind == "lot" else None,
        "sample": ref if kind == "sample" else None,
        "test": oos.test,
        "phase": oos.phase,
        "open": oos.phase in OPEN,
        "version": oos.version,
        "opened_at": results._time(oos.opened_at),
        "closed_at": results._time(oos.closed_at),
        "conclusion": oos.conclusion,
        "result": results.result_dict(session, original),
        "retests": [results.result_dict(session, r) for r in results.retests(session, [oos.id])],
        "allowed_actions": [a for a, t in OOS_TRANSITIONS.items() if oos.phase in t.sources],
    }


def oos_summaries(session: Session, found: list[OosRecord]) -> list[dict[str, Any]]:
    """Return the lines of a list of investigations (lots, samples, results read at once)."""

    def by_id(model: Any, column: Any, ids: set[int]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        ids_ = sorted(i for i in ids if i)
        for i in range(0, len(ids_), 500):
            out.update(
                session.exec(
                    select(model.id, column).where(col(model.id).in_(ids_[i : i + 500]))
                ).all()
            )
        return out

    lots = by_id(VectorLot, VectorLot.lot_number, {o.lot_id for o in found})
    tubes = by_id(Sample, Sample.barcode, {o.sample_id for o in found})
    said: dict[int, tuple[str, str]] = {}
    ids = sorted(o.result_id for o in found)
    for i in range(0, len(ids), 500):
        for rid, result, spec in session.exec(
            select(QcResult.id, QcResult.result, QcResult.spec).where(
                col(QcResult.id).in_(ids[i : i + 500])
            )
        ):
            said[rid] = (result, spec)
    return [
        {
            "id": o.id,
            "name": name(o),
            "lot": lots.get(o.lot_id) if o.lot_id else None,
            "sample": tubes.get(o.sample_id) if not o.lot_id else None,
            "test": o.test,
            "result": said[o.result_id][0],
            "spec": said[o.result_id][1],
            "phase": o.phase,
            "opened_at": results._time(o.opened_at),
        }
        for o in found
    ]


def transition_oos(
    session: Session, *, oos_id: int, data: OosTransitionIn, actor: Actor
) -> OosRecord:
    """Move an investigation to its next phase or conclusion, with a reason and QA signature."""
    if actor.role not in QA:
        raise Forbidden("moving an OOS investigation on needs the role qa", code="role_required")
    oos = get_oos(session, oos_id, actor)
    if data.version is not None and data.version != oos.version:
        raise Conflict(
            f"{name(oos)} is at version {oos.version}, not {data.version}; reload it",
            code="version_conflict",
            current_version=oos.version,
        )
    t = OOS_TRANSITIONS.get(data.action)
    allowed = [a for a, x in OOS_TRANSITIONS.items() if oos.phase in x.sources]
    if t is None or oos.phase not in t.sources:
        raise Refused(
            f"cannot {data.action} {name(oos)}, which is {oos.phase}; "
            f"allowed: {', '.join(allowed) or 'none (closed)'}",
            code="illegal_transition" if t else "unknown_action",
            state=oos.phase,
            allowed=allowed,
        )
    if blank(data.reason):
        raise Refused(f"{data.action} needs a reason", code="missing_fields", missing=["reason"])
    if t.target == "invalidated" and not results.retests(session, [oos.id]):
        raise Refused(
            f"{name(oos)} is invalidated only with a retest recorded inside it: the original "
            "result is set aside and the retest counts",
            code="retest_required",
        )
    before = _content(session, oos)
    sig = signatures.sign_required(
        session,
        actor=actor,
        given=data.signature,
        meaning=t.signature,
        what=f"{data.action} of {name(oos)}",
        record_type="oos",
        record_id=name(oos),
        content={**before, "phase": t.target, "version": oos.version + 1},
    )
    closed = t.target not in OPEN
    res = session.connection().execute(
        update(OosRecord)
        .where(OosRecord.id == oos.id, OosRecord.version == oos.version)
        .values(
            phase=t.target,
            version=oos.version + 1,
            closed_at=utcnow() if closed else None,
            conclusion=data.reason if closed else oos.conclusion,
        )
    )
    if res.rowcount != 1:
        raise Conflict(
            f"{name(oos)} was changed by someone else; reload it", code="version_conflict"
        )
    session.expire(oos)
    after = {**_content(session, oos), "signature": signatures.manifestation(sig)}
    audit.record_by(
        session,
        actor,
        action=f"oos.{data.action}",
        entity_type="oos",
        entity_id=name(oos),
        before=before,
        after=after,
        reason=data.reason,
        signature_id=sig.id,
        org_id=oos.org_id,
        lot_id=oos.lot_id or session.get(Sample, oos.sample_id).lot_id,
    )
    return oos


RETEST_STATES = {"lot": ("in_production", "quarantine"), "sample": ("received", "quarantine")}


def record_retest(session: Session, *, oos_id: int, data: RetestIn, actor: Actor) -> QcResult:
    """Record a retest inside an open investigation; the original result stays as it was."""
    if actor.role not in LAB:
        raise Forbidden("recording QC needs a technician, qa or admin role", code="role_required")
    oos = get_oos(session, oos_id, actor)
    if oos.phase not in OPEN:
        raise Refused(
            f"{name(oos)} is {oos.phase}: a retest is recorded only inside an open investigation",
            code="oos_closed",
        )
    kind, ref = _subject(session, oos)
    owner = session.get(VectorLot if oos.lot_id else Sample, oos.lot_id or oos.sample_id)
    if owner.state not in RETEST_STATES[kind]:
        raise Refused(f"{ref} is {owner.state}: no more results", code="illegal_state")
    original = session.get(QcResult, oos.result_id)
    product = owner.vector_type if kind == "lot" else results.product_of_sample(session, owner)
    result_in = results.ResultIn(
        test=oos.test,
        result=data.result,
        sampled_at=data.sampled_at or original.sampled_at,
        method=data.method,
        reason=data.reason,
    )
    qc = results.judged_result(
        session,
        product=product,
        data=result_in,
        actor=actor,
        lot=owner if kind == "lot" else None,
        sample=owner if kind == "sample" else None,
        retest_of=oos,
    )
    results.bump(session, qc)
    audit.record_by(
        session,
        actor,
        action="qc.retest",
        before=None,
        after={**results.result_dict(session, qc), "oos_name": name(oos)},
        reason=qc.reason,
        **results.subject_event(session, qc),
    )
    return qc


def record_sample_qc(
    session: Session, *, sample: Sample, data: results.ResultIn, actor: Actor
) -> QcResult:
    """Record a cell product's QC result against its sample type's specification (OOS if out)."""
    if actor.role not in LAB:
        raise Forbidden("recording QC needs a technician, qa or admin role", code="role_required")
    results.check_input(data)
    if sample.state not in results.SAMPLE_QC_STATES:
        raise Refused(
            f"QC results are recorded while a sample is received or in quarantine; "
            f"{sample.barcode} is {sample.state}",
            code="illegal_state",
        )
    current = {r.test: r for r in results.current_results(session, sample_id=sample.id)}
    previous = current.get(data.test)
    results.check_correction(session, previous, data)
    qc = results.judged_result(
        session,
        product=results.product_of_sample(session, sample),
        data=data,
        actor=actor,
        sample=sample,
        previous=previous,
    )
    results.bump(session, qc)
    audit.record_by(
        session,
        actor,
        action="sample.qc",
        before=results.result_dict(session, previous) if previous else None,
        after=results.result_dict(session, qc),
        reason=qc.reason,
        **results.subject_event(session, qc),
    )
    open_if_failed(session, result=qc, actor=actor)
    return qc
