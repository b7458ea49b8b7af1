"""QC results judged against the specification in force when the sample was taken; review."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict
from sqlalchemy import update
from sqlmodel import Session, col, select

from lims import audit, signatures
from lims.accounts.users import Actor
from lims.db import memo
from lims.errors import Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text, blank
from lims.models import (
    OosRecord,
    QcResult,
    Sample,
    SampleType,
    Specification,
    SpecLimit,
    User,
    VectorLot,
    utcnow,
)
from lims.quality import specs
from lims.roles import QA
from lims.signatures import SignatureIn

# A clock a little ahead of the server's is not a sample from the future.
_CLOCK_SLACK = timedelta(minutes=5)


def _time_text(value: Any) -> Any:
    if isinstance(value, datetime | str):
        return value
    raise ValueError("give a time as text, like 2026-12-04T09:30:00Z")


# A moment, written in JSON as ISO 8601 text; without an offset it is read as UTC.
Moment = Annotated[datetime, Strict(False), BeforeValidator(_time_text)]

_NO_SPEC = (
    "a QC result takes no spec and no passed: the limits come from the approved specification "
    "of the product, and the result is judged against it"
)


class ResultIn(Input):
    """A QC result: the test and what was measured; the specification judges it."""

    test: Line = Field(min_length=1, max_length=32, description="titer, sterility, endotoxin, ...")
    result: Text = Field(min_length=1, max_length=200, description="e.g. '2.1e13 vg/mL'")
    sampled_at: Moment | None = Field(
        default=None, description="when the sample was taken (default: now)"
    )
    method: Line | None = Field(default=None, max_length=100)
    reason: Text | None = Field(default=None, max_length=2000, description="why, for a correction")
    # Named so that a client still sending them hears why, instead of 'extra field'.
    spec: Any = Field(default=None, description=f"not accepted: {_NO_SPEC}")
    passed: Any = Field(default=None, description=f"not accepted: {_NO_SPEC}")


class ReviewIn(Input):
    signature: SignatureIn | None = None
    comment: Text | None = Field(default=None, max_length=2000)


def check_input(data: ResultIn) -> datetime:
    """Refuse a typed spec or verdict; return when the sample was taken (UTC)."""
    given = sorted({"spec", "passed"} & data.model_fields_set)
    if given:
        raise Refused(f"{_NO_SPEC} (remove {', '.join(given)})", code="spec_not_accepted")
    now = utcnow()
    at = data.sampled_at or now
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if at > now + _CLOCK_SLACK:
        raise Refused("sampled_at is in the future", code="bad_time")
    return at.astimezone(UTC)


def judged_result(
    session: Session,
    *,
    product: str,
    data: ResultIn,
    actor: Actor,
    lot: VectorLot | None = None,
    sample: Sample | None = None,
    previous: QcResult | None = None,
    retest_of: OosRecord | None = None,
) -> QcResult:
    """Build (and add) a result judged against the release specification in force then."""
    sampled_at = check_input(data)
    spec = specs.in_force(session, product=product, stage="release", at=sampled_at)
    when = sampled_at.strftime("%Y-%m-%d %H:%M UTC")
    if spec is None:
        raise Refused(
            f"no approved release specification of {product} was in force on {when}: "
            "QA approves one first (Specifications)",
            code="spec_missing",
            product=product,
            stage="release",
        )
    limit = next((x for x in specs.limits_of(session, spec) if x.test == data.test), None)
    if limit is None:
        raise Refused(
            f"specification {spec.code} v{spec.version} (in force on {when}) has no limit for "
            f"{data.test!r}: the test needs a specification before results can be judged",
            code="spec_missing",
            spec_code=spec.code,
            spec_version=spec.version,
            test=data.test,
        )
    if data.method and limit.method and data.method.casefold() != limit.method.casefold():
        raise Refused(
            f"{spec.code} v{spec.version} specifies {data.test} by {limit.method}, not "
            f"{data.method}",
            code="method_mismatch",
        )
    verdict = specs.judge(limit, data.result)
    qc = QcResult(
        lot_id=lot.id if lot else None,
        sample_id=sample.id if sample else None,
        test=data.test,
        spec=specs.render_limit(limit),
        result=data.result,
        passed=verdict.passed,
        flag=verdict.flag,
        recorded_by_id=actor.user.id,
        supersedes_id=previous.id if previous else None,
        spec_id=spec.id,
        limit_id=limit.id,
        method=data.method or limit.method,
        unit=limit.unit,
        sampled_at=sampled_at,
        reason=None if blank(data.reason) else data.reason,
        retest_of_oos_id=retest_of.id if retest_of else None,
    )
    session.add(qc)
    session.flush()
    return qc


def current_results(
    session: Session, *, lot_id: int | None = None, sample_id: int | None = None
) -> list[QcResult]:
    """Return the current result of each test (a correction replaces; a retest does not)."""

    def read() -> list[QcResult]:
        stmt = select(QcResult).where(col(QcResult.retest_of_oos_id).is_(None))
        stmt = stmt.where(QcResult.lot_id == lot_id if lot_id else QcResult.sample_id == sample_id)
        current: dict[str, QcResult] = {}
        for r in session.exec(stmt.order_by(QcResult.id)):
            current[r.test] = r
        return list(current.values())

    # The lot page shows them and the release rules judge them: read once per request.
    return list(memo(session, ("current_results", lot_id, sample_id), read))


def retests(session: Session, oos_ids: list[int]) -> list[QcResult]:
    """Return the retests recorded inside the OOS investigations oos_ids, oldest first."""
    if not oos_ids:
        return []
    return list(
        session.exec(
            select(QcResult)
            .where(col(QcResult.retest_of_oos_id).in_(oos_ids))
            .order_by(QcResult.id)
        ).all()
    )


def oos_of(
    session: Session, *, lot_id: int | None = None, sample_id: int | None = None
) -> list[OosRecord]:
    """Return the OOS investigations of a lot or a sample, oldest first."""

    def read() -> list[OosRecord]:
        stmt = select(OosRecord)
        where = OosRecord.lot_id == lot_id if lot_id else OosRecord.sample_id == sample_id
        return list(session.exec(stmt.where(where).order_by(OosRecord.id)).all())

    return list(memo(session, ("oos_of", lot_id, sample_id), read))


def _time(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def preload(session: Session, found: list[QcResult]) -> None:
    """Load the specifications and people of these results in two queries, not one per row.

    What session.get later asks for is then already in the session (a lot page at a centre's
    size otherwise spends most of its time on one primary-key lookup per reviewer and spec).
    """
    spec_ids = {r.spec_id for r in found if r.spec_id} - _loaded(session, Specification)
    people = {u for r in found for u in (r.recorded_by_id, r.reviewed_by_id) if u}
    people -= _loaded(session, User)
    pinned = session.info.setdefault("pinned", [])
    # The session holds what it loaded only weakly: pinned keeps them for its lifetime.
    if spec_ids:
        pinned += session.exec(select(Specification).where(col(Specification.id).in_(spec_ids)))
    if people:
        pinned += session.exec(select(User).where(col(User.id).in_(people)))


def _loaded(session: Session, model: type) -> set[Any]:
    return {key[1][0] for key in session.identity_map.keys() if key[0] is model}


def result_dict(
    session: Session, r: QcResult, oos: dict[int, OosRecord] | None = None
) -> dict[str, Any]:
    """Return the JSON of a result: what was found, against which limit, who recorded, reviewed."""
    spec = session.get(Specification, r.spec_id) if r.spec_id else None
    opened = (oos or {}).get(r.id)
    if oos is None:
        opened = session.exec(select(OosRecord).where(OosRecord.result_id == r.id)).first()
    users = {u: session.get(User, u) for u in (r.recorded_by_id, r.reviewed_by_id) if u}
    return {
        "id": r.id,
        "test": r.test,
        "spec": r.spec,
        "result": r.result,
        "passed": r.passed,
        "recorded_at": _time(r.recorded_at),
        "supersedes": r.supersedes_id,
        "spec_code": spec.code if spec else None,
        "spec_version": spec.version if spec else None,
        "method": r.method,
        "unit": r.unit,
        "flag": r.flag,
        "sampled_at": _time(r.sampled_at),
        "reason": r.reason,
        "recorded_by": users[r.recorded_by_id].username,
        "reviewed_by": users[r.reviewed_by_id].username if r.reviewed_by_id else None,
        "reviewed_at": _time(r.reviewed_at),
        "oos": opened.id if opened else r.retest_of_oos_id,
        "oos_phase": opened.phase if opened else None,
        "retest": r.retest_of_oos_id is not None,
    }


def results_dicts(
    session: Session,
    *,
    lot_id: int | None = None,
    sample_id: int | None = None,
    current: list[QcResult] | None = None,
) -> list[dict[str, Any]]:
    """Return a lot's or sample's current results, each followed by the retests of its OOS.

    current: its current results when the caller has read them already.
    """
    oos = {o.result_id: o for o in oos_of(session, lot_id=lot_id, sample_id=sample_id)}
    by_oos: dict[int, list[QcResult]] = {}
    for r in retests(session, [o.id for o in oos.values()]):
        by_oos.setdefault(r.retest_of_oos_id, []).append(r)
    out = []
    if current is None:
        current = current_results(session, lot_id=lot_id, sample_id=sample_id)
    preload(session, current + [x for xs in by_oos.values() for x in xs])
    for r in current:
        out.append(result_dict(session, r, oos))
        if r.id in oos:
            out.extend(result_dict(session, x, oos) for x in by_oos.get(oos[r.id].id, []))
    return out


def subject_event(session: Session, r: QcResult) -> dict[str, Any]:
    """Return the audit fields that file an event about r under its lot or sample."""
    if r.lot_id:
        lot = session.get(VectorLot, r.lot_id)
        return {
            "entity_type": "lot",
            "entity_id": lot.lot_number,
            "org_id": lot.org_id,
            "lot_id": lot.id,
        }
    s = session.get(Sample, r.sample_id)
    return {
        "entity_type": "sample",
        "entity_id": s.barcode,
        "org_id": s.org_id,
        "lot_id": s.lot_id,
    }


def bump(session: Session, r: QcResult) -> None:
    """Move the version of r's lot or sample on: a disposition decided meanwhile is stale (409)."""
    model = VectorLot if r.lot_id else Sample
    row = session.get(model, r.lot_id or r.sample_id)
    res = session.connection().execute(
        update(model)
        .where(model.id == row.id, model.version == row.version)
        .values(version=row.version + 1, updated_at=utcnow())
    )
    if res.rowcount != 1:
        raise Conflict("the record was changed by someone else; reload it", code="version_conflict")
    session.expire(row)


def get_result(
    session: Session,
    result_id: int,
    actor: Actor,
    *,
    lot: VectorLot | None = None,
    sample: Sample | None = None,
) -> QcResult:
    """Return a result the actor may see, of lot or sample if given (else a 404)."""
    r = session.get(QcResult, result_id)
    if r is not None and (lot is None or r.lot_id == lot.id):
        if sample is not None and r.sample_id != sample.id:
            raise NotFound(f"no QC result {result_id} of {sample.barcode}", code="unknown_result")
        owner = session.get(VectorLot if r.lot_id else Sample, r.lot_id or r.sample_id)
        if actor.can_see(owner.org_id):
            return r
    raise NotFound(f"no QC result {result_id}", code="unknown_result")


REVIEWABLE = {"lot": ("in_production", "quarantine"), "sample": ("received", "quarantine")}


def review_of(
    session: Session,
    *,
    result_id: int,
    data: ReviewIn,
    actor: Actor,
    lot: VectorLot | None = None,
    sample: Sample | None = None,
) -> QcResult:
    """Review result result_id of lot or sample (see review)."""
    require_reviewer(actor)
    result = get_result(session, result_id, actor, lot=lot, sample=sample)
    return review(session, result=result, data=data, actor=actor)


def require_reviewer(actor: Actor) -> None:
    """Refuse (403) anyone but QA a review."""
    if actor.role not in QA:
        raise Forbidden("reviewing a QC result needs the role qa", code="role_required")


def review(session: Session, *, result: QcResult, data: ReviewIn, actor: Actor) -> QcResult:
    """Sign a result as reviewed (QA); who recorded it may not review it."""
    require_reviewer(actor)
    subject = subject_event(session, result)
    owner = session.get(VectorLot if result.lot_id else Sample, result.lot_id or result.sample_id)
    if owner.state not in REVIEWABLE[subject["entity_type"]]:
        raise Refused(
            f"results are reviewed before disposition; {subject['entity_id']} is {owner.state}",
            code="illegal_state",
        )
    if result.reviewed_by_id is not None:
        who = session.get(User, result.reviewed_by_id).username
        raise Conflict(f"result {result.id} was reviewed by {who} already", code="already_reviewed")
    later = session.exec(select(QcResult.id).where(QcResult.supersedes_id == result.id)).first()
    if later is not None:
        raise Refused(
            f"result {result.id} was corrected by result {later}: review the correction",
            code="superseded",
        )
    if result.recorded_by_id == actor.user.id:
        raise Refused(
            "four-eyes rule: who recorded a result may not review it; another QA person reviews",
            code="four_eyes_review",
        )
    before = result_dict(session, result)
    sig = signatures.sign_required(
        session,
        actor=actor,
        given=data.signature,
        meaning="review",
        what=f"review of QC result {result.id}",
        record_type="qc_result",
        record_id=str(result.id),
        content={k: v for k, v in before.items() if k not in ("reviewed_by", "reviewed_at")},
    )
    now = utcnow()
    res = session.connection().execute(
        update(QcResult)
        .where(QcResult.id == result.id, col(QcResult.reviewed_by_id).is_(None))
        .values(reviewed_by_id=actor.user.id, reviewed_at=now, review_signature_id=sig.id)
    )
    if res.rowcount != 1:
        raise Conflict(f"result {result.id} was reviewed meanwhile", code="already_reviewed")
    session.expire(result)
    after = {**result_dict(session, result), "signature": signatures.manifestation(sig)}
    audit.record_by(
        session,
        actor,
        action="qc.review",
        before=before,
        after=after,
        reason=None if blank(data.comment) else data.comment,
        signature_id=sig.id,
        **subject,
    )
    return result


# --- cell products (samples whose sample type has a specification) --------------------------

SAMPLE_QC_STATES = ("received", "quarantine")


def product_of_sample(session: Session, sample: Sample) -> str:
    """Return a sample's product: its sample type code."""
    return session.get(SampleType, sample.sample_type_id).code


def check_correction(session: Session, previous: QcResult | None, data: ResultIn) -> None:
    """Refuse a correction without a reason, or of a result under an OOS investigation."""
    if previous is None:
        return
    if blank(data.reason):
        raise Refused(
            f"{data.test} is recorded already; a correction needs a reason",
            code="reason_required",
        )
    oos = session.exec(select(OosRecord).where(OosRecord.result_id == previous.id)).first()
    if oos is not None:
        raise Refused(
            f"the {data.test} result is out of specification (OOS-{oos.id}, {oos.phase}): it is "
            "never corrected; record a retest inside the OOS investigation",
            code="oos_result",
            oos=oos.id,
        )


def limit_for(session: Session, r: QcResult) -> SpecLimit | None:
    """Return the limit a result was judged against."""
    return session.get(SpecLimit, r.limit_id) if r.limit_id else None
