"""The quality rules of a disposition: the sampling plan met, passed, reviewed, four eyes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from lims.accounts.users import Actor
from lims.errors import LimsError, Refused
from lims.manufacturing.models import (
    BatchRecord,
    BatchRecordReview,
    BatchStep,
    BatchValue,
    ProcessStep,
)
from lims.models import Deviation, OosRecord, QcResult, Sample, VectorLot
from lims.quality import oos, results, specs


@dataclass
class Standing:
    """Where a lot's or sample's results stand against its release sampling plan."""

    product: str
    required: list[str] | None  # None: no release specification in force
    current: dict[str, QcResult]  # per test: the result that counts (a retest after invalidation)
    missing: list[str] = field(default_factory=list)
    blocking_oos: list[OosRecord] = field(default_factory=list)
    retest_missing: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unreviewed: list[str] = field(default_factory=list)
    recorders: set[int] = field(default_factory=set)


def standing(
    session: Session, *, product: str, lot_id: int | None = None, sample_id: int | None = None
) -> Standing:
    """Assess the results of a lot or a sample against the sampling plan in force now."""
    required = specs.required_tests(session, product=product, stage="release")
    heads = {
        r.test: r for r in results.current_results(session, lot_id=lot_id, sample_id=sample_id)
    }
    investigations = results.oos_of(session, lot_id=lot_id, sample_id=sample_id)
    by_result = {o.result_id: o for o in investigations}
    later = results.retests(session, [o.id for o in investigations])
    st = Standing(product=product, required=required, current={})
    # An open or confirmed OOS blocks, whichever result (corrected or not) opened it.
    st.blocking_oos = [o for o in investigations if o.phase != "invalidated"]
    for test, head in heads.items():
        st.recorders.add(head.recorded_by_id)
        oos = by_result.get(head.id)
        counts = head
        if oos is not None and oos.phase == "invalidated":
            mine = [r for r in later if r.retest_of_oos_id == oos.id]
            for r in mine:
                st.recorders.add(r.recorded_by_id)
            counts = mine[-1] if mine else None
            if counts is None:
                st.retest_missing.append(test)
                continue
        st.current[test] = counts
    for test in required or []:
        r = st.current.get(test)
        if test not in heads:
            st.missing.append(test)
        elif r is None:
            continue
        elif not r.passed:
            st.failed.append(test)
        elif r.reviewed_by_id is None:
            st.unreviewed.append(test)
    return st


def refusal(st: Standing, actor: Actor, what: str) -> LimsError | None:
    """Return why actor may not release (what: 'lot X'), naming the rule; None if they may."""
    if st.required is None:
        return Refused(
            f"no approved release specification of {st.product} is in force: its sampling plan "
            f"says which results the release of {what} needs",
            code="spec_missing",
        )
    if st.missing:
        return Refused(
            f"QC results missing: {', '.join(st.missing)}",
            code="qc_incomplete",
            missing=st.missing,
        )
    if st.blocking_oos:
        open_ = [o for o in st.blocking_oos if o.phase != "confirmed"]
        names = ", ".join(f"OOS-{o.id} ({o.test}, {o.phase})" for o in st.blocking_oos)
        return Refused(
            f"{'open' if open_ else 'confirmed'} out-of-specification investigation: {names}; "
            f"{what} cannot be released",
            code="oos_open" if open_ else "oos_confirmed",
            oos=[o.id for o in st.blocking_oos],
        )
    if st.retest_missing:
        return Refused(
            f"the results of {', '.join(st.retest_missing)} were set aside (OOS invalidated) "
            "without a retest",
            code="qc_incomplete",
            missing=st.retest_missing,
        )
    if st.failed:
        return Refused(
            f"QC failed: {', '.join(st.failed)}; {what} cannot be released",
            code="qc_failed",
            failed=st.failed,
        )
    if st.unreviewed:
        return Refused(
            f"QC results not reviewed: {', '.join(st.unreviewed)}; QA reviews each result "
            "before release",
            code="qc_not_reviewed",
            unreviewed=st.unreviewed,
        )
    if actor.user.id in st.recorders:
        return Refused(
            f"four-eyes rule: you recorded QC results of {what}; another QA person releases it",
            code="four_eyes_release",
        )
    return None


def batch_step_source(lot_number: str, position: int) -> str:
    """Return the source a deviation raised by a batch step's out-of-range value carries."""
    return f"batch record of lot {lot_number}, step {position}"


def batch_record_refusal(session: Session, lot: VectorLot) -> LimsError | None:
    """Return why the lot's batch record stops its release (steps not done, flagged values
    without a closed deviation, QA's signed review missing), or None; a lot made without a
    batch record has no such rule."""
    rec = session.exec(select(BatchRecord).where(BatchRecord.lot_id == lot.id)).first()
    if rec is None:
        return None
    steps = session.exec(
        select(ProcessStep)
        .where(ProcessStep.template_id == rec.template_id)
        .order_by(ProcessStep.position)
    ).all()
    done = {
        b.step_id: b
        for b in session.exec(select(BatchStep).where(BatchStep.record_id == rec.id)).all()
    }
    open_steps = []
    for s in steps:
        b = done.get(s.id)
        if b is None:
            open_steps.append(f"step {s.position} ({s.name}) not done")
        elif s.needs_verifier and b.verifier_id is None:
            open_steps.append(f"step {s.position} ({s.name}) not verified")
    if open_steps:
        return Refused(
            f"the batch record of lot {lot.lot_number} is not complete: {'; '.join(open_steps)}",
            code="batch_record_incomplete",
            steps=open_steps,
        )
    flagged = sorted(
        set(
            session.exec(
                select(ProcessStep.position)
                .join(BatchStep, BatchStep.step_id == ProcessStep.id)
                .join(BatchValue, BatchValue.batch_step_id == BatchStep.id)
                .where(BatchStep.record_id == rec.id, col(BatchValue.in_range).is_(False))
            ).all()
        )
    )
    if flagged:
        err = _flagged_refusal(session, lot, flagged)
        if err is not None:
            return err
    reviewed = session.exec(
        select(BatchRecordReview.id).where(BatchRecordReview.record_id == rec.id)
    ).first()
    if reviewed is None:
        return Refused(
            f"the batch record of lot {lot.lot_number} has not been reviewed: QA (someone who "
            "recorded or verified none of its steps) signs its review before release",
            code="batch_record_not_reviewed",
        )
    return None


def _flagged_refusal(session: Session, lot: VectorLot, flagged: list[int]) -> LimsError | None:
    sources = {batch_step_source(lot.lot_number, n): n for n in flagged}
    raised: dict[int, list[Deviation]] = {}
    for d in session.exec(
        select(Deviation).where(col(Deviation.source).in_(list(sources))).order_by(Deviation.id)
    ):
        raised.setdefault(sources[d.source], []).append(d)
    why = []
    for n in flagged:
        devs = raised.get(n, [])
        if not devs:
            why.append(f"step {n} has values out of range and no deviation for them")
        elif not any(d.state == "closed" for d in devs):
            numbers = ", ".join(f"{d.number} ({d.state})" for d in devs)
            why.append(f"step {n} has values out of range; deviation {numbers} is not closed")
    if not why:
        return None
    return Refused(
        f"lot {lot.lot_number} cannot be released: {'; '.join(why)}",
        code="batch_record_deviation",
        steps=flagged,
    )


def lot_release_refusal(session: Session, lot: VectorLot, actor: Actor) -> None:
    """Refuse (422, the rule in the code) a lot release the quality rules do not allow."""
    # The executed batch record first: QA reviews what was made before what was measured.
    err = batch_record_refusal(session, lot)
    if err is not None:
        raise err
    st = standing(session, product=lot.vector_type, lot_id=lot.id)
    err = refusal(st, actor, f"lot {lot.lot_number}")
    if err is not None:
        raise err


def needs_quality_release(session: Session, sample: Sample) -> bool:
    """Tell whether a sample is a cell product: its sample type has a release specification."""
    return specs.has_spec(session, product=results.product_of_sample(session, sample))


def sample_release_refusal(session: Session, sample: Sample, actor: Actor) -> None:
    """Refuse (422, the rule in the code) a cell product release the quality rules do not allow."""
    st = standing(session, product=results.product_of_sample(session, sample), sample_id=sample.id)
    err = refusal(st, actor, sample.barcode)
    if err is not None:
        raise err


def release_blocker(session: Session, lot: VectorLot, actor: Actor) -> str | None:
    """Return why actor could not release lot now (for a page's disabled button), or None."""
    try:
        lot_release_refusal(session, lot, actor)
    except LimsError as err:
        return err.message
    return None


def sample_qc_dict(session: Session, sample: Sample, actor: Actor) -> dict[str, Any]:
    """Return a cell product's QC: results, the tests still missing, why release would fail."""
    product = results.product_of_sample(session, sample)
    plan = specs.required_tests(session, product=product) or []
    qc = results.results_dicts(session, sample_id=sample.id)
    err = refusal(standing(session, product=product, sample_id=sample.id), actor, sample.barcode)
    if err is None:
        try:
            oos.refuse_release_of_derivative(session, what=sample.barcode, sample=sample)
        except Refused as held:
            err = held
    return {
        "barcode": sample.barcode,
        "state": sample.state,
        "version": sample.version,
        "product": product,
        "qc": qc,
        "qc_missing": [t for t in plan if t not in {q["test"] for q in qc}],
        "release_refusal": err.message if err else None,
    }
