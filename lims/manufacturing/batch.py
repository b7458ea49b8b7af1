"""Process templates (versioned, QA-approved) and the batch record a vector lot executes from one.

A template lists steps in order, each with the parameters it records (unit, range). A batch
record ties one vector lot to one approved template; each step is recorded once, in order, by
its operator (values, equipment, room, time) and, where the template says so, verified by a
second person with an e-signature. A value outside its range is recorded and flagged, never
refused (what happened is what the record says), and raises a deviation on the lot.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func
from sqlmodel import Session, select

from lims import audit, lots, signatures, storage
from lims.accounts.users import Actor, system_actor
from lims.errors import BadRequest, Conflict, Forbidden, LimsError, NotFound, Refused
from lims.inputs import Input, Line, Text
from lims.manufacturing import genealogy
from lims.manufacturing.genealogy import OPEN_LOT_STATES
from lims.manufacturing.models import (
    BatchRecord,
    BatchRecordReview,
    BatchStep,
    BatchValue,
    ProcessParameter,
    ProcessStep,
    ProcessTemplate,
)
from lims.models import Signature, User, VectorLot, utcnow
from lims.quality import deviations, release
from lims.roles import LAB, QA
from lims.rooms.clearance import use_refusal
from lims.signatures import SignatureIn

TEMPLATE_STATES = ("draft", "approved", "retired")
# QA's review of the whole executed record: an e-signature 'review' on the batch record (not on
# the lot, whose own signatures stay those of its disposition), once every step is done.
REVIEW_ACTION = "batch.review"
REVIEW_MEANING = "review"
REVIEW_RECORD_TYPE = "batch_record"


class ParameterIn(Input):
    name: Line = Field(min_length=1, max_length=64)
    unit: Line = Field(min_length=1, max_length=16)
    low: float | None = Field(default=None, allow_inf_nan=False)
    high: float | None = Field(default=None, allow_inf_nan=False)


class StepIn(Input):
    name: Line = Field(min_length=1, max_length=200)
    instructions: Text | None = Field(default=None, max_length=2000)
    verify: bool = Field(default=False, description="a second person verifies it (e-signature)")
    parameters: list[ParameterIn] = Field(default_factory=list, max_length=50)


class TemplateIn(Input):
    code: Line = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: Line = Field(min_length=1, max_length=200)
    product: Line = Field(pattern="^(AAV|LV)$", description="the vector lots it makes")
    steps: list[StepIn] = Field(min_length=1, max_length=100)


class ApproveIn(Input):
    signature: SignatureIn


class BatchStart(Input):
    template: Line = Field(min_length=1, max_length=64, description="an approved template's code")


class StepRecord(Input):
    values: dict[str, float] = Field(default_factory=dict, description="parameter -> value")
    equipment: Line | None = Field(default=None, max_length=64)
    room: Line | None = Field(default=None, max_length=64)
    materials: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="materials used at this step: codes or supplier GS1 barcodes as scanned",
    )


class VerifyIn(Input):
    signature: SignatureIn


class ReviewIn(Input):
    signature: SignatureIn


# --- templates ---------------------------------------------------------------------------------


def create_template(session: Session, *, data: TemplateIn, actor: Actor) -> ProcessTemplate:
    """Write a draft template: version 1, or the next version of an existing code (QA, admin)."""
    if actor.role not in ("qa", "admin") or not actor.sees_all:
        raise Forbidden("process templates are written by the centre's QA", code="role_required")
    for step in data.steps:
        names = [p.name.lower() for p in step.parameters]
        if len(set(names)) != len(names):
            raise BadRequest(f"step {step.name!r} names a parameter twice", code="bad_template")
        for p in step.parameters:
            if p.low is not None and p.high is not None and p.low > p.high:
                raise BadRequest(
                    f"{step.name}: {p.name} has low {p.low} above high {p.high}",
                    code="bad_template",
                )
    last = session.exec(
        select(func.max(ProcessTemplate.version)).where(ProcessTemplate.code == data.code)
    ).one()
    tpl = ProcessTemplate(
        code=data.code,
        version=(last or 0) + 1,
        name=data.name,
        product=data.product,
        created_by_id=actor.user.id,
    )
    session.add(tpl)
    session.flush()
    for i, s in enumerate(data.steps, start=1):
        step = ProcessStep(
            template_id=tpl.id,
            position=i,
            name=s.name,
            instructions=s.instructions,
            needs_verifier=s.verify,
        )
        session.add(step)
        session.flush()
        for p in s.parameters:
            session.add(
                ProcessParameter(step_id=step.id, name=p.name, unit=p.unit, low=p.low, high=p.high)
            )
    session.flush()
    _record_template(session, actor, "process_template.create", tpl, None)
    return tpl


def get_template(session: Session, code: str, version: int | None = None) -> ProcessTemplate:
    """Return a template's given version, or its newest approved one (404 if none)."""
    stmt = select(ProcessTemplate).where(ProcessTemplate.code == code.strip())
    if version is not None:
        stmt = stmt.where(ProcessTemplate.version == version)
    else:
        stmt = stmt.where(ProcessTemplate.state == "approved")
    tpl = session.exec(stmt.order_by(ProcessTemplate.version.desc())).first()
    if tpl is None:
        which = f"version {version}" if version is not None else "approved version"
        raise NotFound(f"no {which} of process template {code[:64]!r}", code="unknown_template")
    return tpl


def approve_template(
    session: Session, *, code: str, version: int, data: ApproveIn, actor: Actor
) -> ProcessTemplate:
    """Approve a draft (QA e-signature 'approval', not its author); the previous one retires."""
    if actor.role not in QA:
        raise Forbidden("approving a process template needs the qa role", code="role_required")
    tpl = get_template(session, code, version)
    if tpl.state != "draft":
        raise Refused(f"{tpl.code} v{tpl.version} is {tpl.state}, not a draft", code="not_draft")
    if tpl.created_by_id == actor.user.id:
        raise Refused("you wrote this template; another QA person approves it", code="four_eyes")
    if data.signature.meaning != "approval":
        raise BadRequest("approval is signed with the meaning 'approval'", code="signature_meaning")
    before = template_dict(session, tpl)
    sig = signatures.sign(
        session,
        actor=actor,
        password=data.signature.password,
        meaning="approval",
        username=data.signature.username,
        record_type="process_template",
        record_id=f"{tpl.code}/{tpl.version}",
        content={**before, "state": "approved"},
    )
    for old in session.exec(
        select(ProcessTemplate).where(
            ProcessTemplate.code == tpl.code, ProcessTemplate.state == "approved"
        )
    ):
        # One version in force: the one approved before retires (its batch records keep it).
        old.state = "retired"
        session.add(old)
    tpl.state, tpl.approved_by_id, tpl.signature_id = "approved", actor.user.id, sig.id
    session.add(tpl)
    session.flush()
    _record_template(session, actor, "process_template.approve", tpl, before, sig)
    return tpl


def template_dict(session: Session, tpl: ProcessTemplate) -> dict[str, Any]:
    """Return a template with its steps and parameters."""
    steps = session.exec(
        select(ProcessStep).where(ProcessStep.template_id == tpl.id).order_by(ProcessStep.position)
    ).all()
    params = _parameters(session, [s.id for s in steps])
    author = session.get(User, tpl.created_by_id)
    approver = session.get(User, tpl.approved_by_id) if tpl.approved_by_id else None
    return {
        "code": tpl.code,
        "version": tpl.version,
        "name": tpl.name,
        "product": tpl.product,
        "state": tpl.state,
        "written_by": author.username if author else None,
        "approved_by": approver.username if approver else None,
        "steps": [
            {
                "position": s.position,
                "name": s.name,
                "instructions": s.instructions,
                "verify": s.needs_verifier,
                "parameters": [
                    {"name": p.name, "unit": p.unit, "low": p.low, "high": p.high}
                    for p in params.get(s.id, [])
                ],
            }
            for s in steps
        ],
    }


def _parameters(session: Session, step_ids: list[int]) -> dict[int, list[ProcessParameter]]:
    out: dict[int, list[ProcessParameter]] = {}
    if step_ids:
        for p in session.exec(
            select(ProcessParameter)
            .where(ProcessParameter.step_id.in_(step_ids))
            .order_by(ProcessParameter.id)
        ):
            out.setdefault(p.step_id, []).append(p)
    return out


def _record_template(
    session: Session,
    actor: Actor,
    action: str,
    tpl: ProcessTemplate,
    before: dict[str, Any] | None,
    sig: Signature | None = None,
) -> None:
    after = template_dict(session, tpl)
    if sig is not None:
        after["signature"] = signatures.manifestation(sig)
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="process_template",
        entity_id=f"{tpl.code}/{tpl.version}",
        before=before,
        after=after,
        org_id=actor.org.id,
        signature_id=sig.id if sig else None,
    )


# --- batch records -----------------------------------------------------------------------------


def start(session: Session, *, lot_number: str, data: BatchStart, actor: Actor) -> BatchRecord:
    """Open the batch record of a lot on the approved version of a template."""
    if actor.role not in LAB:
        raise Forbidden("batch records are kept by lab staff", code="role_required")
    lot = lots.get_lot(session, lot_number, actor)
    if lot.state not in OPEN_LOT_STATES:
        raise Refused(
            f"lot {lot.lot_number} is {lot.state}: a batch record is opened while it is planned "
            "or in production",
            code="illegal_state",
        )
    if session.exec(select(BatchRecord.id).where(BatchRecord.lot_id == lot.id)).first():
        raise Conflict(f"lot {lot.lot_number} has a batch record already", code="exists")
    tpl = get_template(session, data.template)
    if tpl.product != lot.vector_type:
        raise Refused(
            f"{tpl.code} makes {tpl.product} lots; {lot.lot_number} is {lot.vector_type}",
            code="wrong_product",
        )
    rec = BatchRecord(lot_id=lot.id, template_id=tpl.id, started_by_id=actor.user.id)
    session.add(rec)
    session.flush()
    _record_lot(session, actor, lot, "batch.start", {"template": f"{tpl.code}/{tpl.version}"})
    return rec


def record_step(
    session: Session, *, lot_number: str, position: int, data: StepRecord, actor: Actor
) -> BatchStep:
    """Record one step as done by actor, in order; out-of-range values are flagged."""
    if actor.role not in LAB:
        raise Forbidden("batch records are kept by lab staff", code="role_required")
    lot, rec = _record_of(session, lot_number, actor)
    if lot.state not in OPEN_LOT_STATES:
        raise Refused(
            f"lot {lot.lot_number} is {lot.state}: its record is closed", code="illegal_state"
        )
    steps = session.exec(
        select(ProcessStep)
        .where(ProcessStep.template_id == rec.template_id)
        .order_by(ProcessStep.position)
    ).all()
    step = next((s for s in steps if s.position == position), None)
    if step is None:
        raise NotFound(f"the process has no step {position}", code="unknown_step")
    done = {
        b.step_id: b
        for b in session.exec(select(BatchStep).where(BatchStep.record_id == rec.id)).all()
    }
    if step.id in done:
        raise Conflict(f"step {position} ({step.name}) is recorded already", code="step_done")
    for s in steps[: position - 1]:
        prev = done.get(s.id)
        if prev is None:
            raise Refused(f"step {s.position} ({s.name}) comes first", code="step_order")
        if s.needs_verifier and prev.verifier_id is None:
            raise Refused(
                f"step {s.position} ({s.name}) awaits its verifier first", code="step_order"
            )
    params = _parameters(session, [step.id]).get(step.id, [])
    by_name = {p.name.lower(): p for p in params}
    unknown = [n for n in data.values if n.lower() not in by_name]
    missing = [p.name for p in params if p.name.lower() not in {n.lower() for n in data.values}]
    if unknown or missing:
        raise Refused(
            f"step {position} ({step.name}) records "
            f"{', '.join(f'{p.name} ({p.unit})' for p in params) or 'no values'}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not of this step: {', '.join(unknown)}" if unknown else ""),
            code="bad_values",
            missing=missing,
            unknown=unknown,
        )
    room = _room_of_step(session, lot, position, data.room)
    bs = BatchStep(
        record_id=rec.id,
        step_id=step.id,
        operator_id=actor.user.id,
        equipment=data.equipment,
        room=room,
    )
    session.add(bs)
    session.flush()
    values, flagged = [], []
    for name, value in data.values.items():
        p = by_name[name.lower()]
        ok = (p.low is None or value >= p.low) and (p.high is None or value <= p.high)
        session.add(BatchValue(batch_step_id=bs.id, parameter_id=p.id, value=value, in_range=ok))
        values.append({"name": p.name, "value": value, "unit": p.unit, "in_range": ok})
        if not ok:
            flagged.append(f"{p.name} {value:g} {p.unit} (range {_range(p)})")
    session.flush()
    after = {
        "step": position,
        "name": step.name,
        "values": values,
        "equipment": data.equipment,
        "room": room,
    }
    _record_lot(session, actor, lot, "batch.step", after)
    for scan in data.materials:
        # Each goes in as an input of the lot (released and in date, or the step is refused).
        genealogy.consume(
            session,
            lot_number=lot.lot_number,
            data=genealogy.ConsumeIn(material=scan),
            actor=actor,
        )
    if flagged:
        _raise_flagged(session, lot=lot, position=position, step=step, flagged=flagged, by=actor)
    return bs


def _raise_flagged(
    session: Session,
    *,
    lot: VectorLot,
    position: int,
    step: ProcessStep,
    flagged: list[str],
    by: Actor,
) -> None:
    """Open the deviation a step's out-of-range values call for, on the lot, whoever recorded it.

    The centre's lab staff raise it as themselves; a client's user running their own batch in a
    rented room cannot raise deviations, so the system raises it on their behalf and names them:
    a flagged value is never left for someone to notice.
    """
    own = by.sees_all and by.role in LAB
    raiser = by if own else system_actor(session)
    who = f"{by.username} ({by.org.name})"
    description = f"Step {position} ({step.name}) recorded {'; '.join(flagged)}. Recorded by {who}"
    description += "." if own else "; raised by the system on their behalf."
    deviations.create_deviation(
        session,
        data=deviations.DeviationCreate(
            title=f"Lot {lot.lot_number} step {position}: out of range",
            description=description,
            severity="major",
            category="process parameter",
            links=[deviations.LinkIn(kind="lot", ref=lot.lot_number)],
        ),
        actor=raiser,
        source=release.batch_step_source(lot.lot_number, position),
    )


def _room_of_step(session: Session, lot: VectorLot, position: int, code: str | None) -> str | None:
    """Return the room's code a step is done in, refusing a room the lot's owner may not use now.

    A rented room takes a client's work only inside their running booking, after line clearance
    (lims.rooms.clearance, the rule the bench follows too); rooms without bookings carry no rule.
    """
    if code is None:
        return None
    loc = storage.find_location(session, code.strip())
    if loc is None or loc.kind != "room":
        raise Refused(
            f"{code[:64]!r} is not a room of the centre; give the room's code (e.g. RM-B1)",
            code="unknown_room",
        )
    why = use_refusal(session, loc.id, lot.org_id)
    if why:
        raise Refused(
            f"step {position} of lot {lot.lot_number} cannot be done in {loc.code}: {why}",
            code="room_not_cleared",
            room=loc.code,
        )
    return loc.code


def verify_step(
    session: Session, *, lot_number: str, position: int, data: VerifyIn, actor: Actor
) -> BatchStep:
    """Verify a recorded step (e-signature 'review'), as someone other than its operator."""
    if actor.role not in LAB:
        raise Forbidden("batch records are kept by lab staff", code="role_required")
    lot, rec = _record_of(session, lot_number, actor)
    step = session.exec(
        select(ProcessStep).where(
            ProcessStep.template_id == rec.template_id, ProcessStep.position == position
        )
    ).first()
    if step is None:
        raise NotFound(f"the process has no step {position}", code="unknown_step")
    bs = session.exec(
        select(BatchStep).where(BatchStep.record_id == rec.id, BatchStep.step_id == step.id)
    ).first()
    if bs is None:
        raise Refused(f"step {position} is not recorded yet", code="step_not_done")
    if not step.needs_verifier:
        raise Refused(f"step {position} ({step.name}) takes no verifier", code="no_verifier")
    if bs.verifier_id is not None:
        raise Conflict(f"step {position} is verified already", code="step_verified")
    if bs.operator_id == actor.user.id:
        raise Refused("you did this step; another person verifies it", code="four_eyes")
    if data.signature.meaning != "review":
        raise BadRequest(
            "verification is signed with the meaning 'review'", code="signature_meaning"
        )
    content = {"lot": lot.lot_number, "step": position, "name": step.name, "batch_step": bs.id}
    sig = signatures.sign(
        session,
        actor=actor,
        password=data.signature.password,
        meaning="review",
        username=data.signature.username,
        record_type="batch_step",
        record_id=f"{lot.lot_number}/{position}",
        content=content,
    )
    bs.verifier_id, bs.verified_at, bs.signature_id = actor.user.id, utcnow(), sig.id
    session.add(bs)
    session.flush()
    after = {**content, "signature": signatures.manifestation(sig)}
    _record_lot(session, actor, lot, "batch.verify", after, signature_id=sig.id)
    return bs


def lot_page(session: Session, *, lot: VectorLot, actor: Actor) -> dict[str, Any]:
    """Return what a lot's page shows of its manufacture: genealogy and batch record."""
    return {
        **genealogy.lot_page(session, lot=lot, actor=actor),
        "batch": batch_of(session, lot=lot, actor=actor),
        "can_review_batch": actor.role in QA,
    }


def batch_of(session: Session, *, lot: VectorLot, actor: Actor) -> dict[str, Any] | None:
    """Return the lot's batch record as batch_dict does, or None when it has none."""
    if session.exec(select(BatchRecord.id).where(BatchRecord.lot_id == lot.id)).first() is None:
        return None
    return batch_dict(session, lot_number=lot.lot_number, actor=actor)


def batch_dict(session: Session, *, lot_number: str, actor: Actor) -> dict[str, Any]:
    """Return a lot's batch record: the template's steps, each as executed (or still to do)."""
    lot, rec = _record_of(session, lot_number, actor)
    tpl = session.get(ProcessTemplate, rec.template_id)
    steps = session.exec(
        select(ProcessStep).where(ProcessStep.template_id == tpl.id).order_by(ProcessStep.position)
    ).all()
    params = _parameters(session, [s.id for s in steps])
    done = {
        b.step_id: b
        for b in session.exec(select(BatchStep).where(BatchStep.record_id == rec.id)).all()
    }
    values: dict[int, list[BatchValue]] = {}
    if done:
        ids = [b.id for b in done.values()]
        for v in session.exec(select(BatchValue).where(BatchValue.batch_step_id.in_(ids))):
            values.setdefault(v.batch_step_id, []).append(v)
    names = dict(session.exec(select(User.id, User.username)).all())
    out_steps = []
    for s in steps:
        b = done.get(s.id)
        by_param = {v.parameter_id: v for v in values.get(b.id, [])} if b else {}
        out_steps.append(
            {
                "position": s.position,
                "name": s.name,
                "instructions": s.instructions,
                "verify": s.needs_verifier,
                "state": "to do"
                if b is None
                else "verified"
                if b.verifier_id
                else "awaiting verifier"
                if s.needs_verifier
                else "done",
                "operator": names.get(b.operator_id) if b else None,
                "done_at": b.done_at.strftime("%Y-%m-%dT%H:%M:%SZ") if b else None,
                "equipment": b.equipment if b else None,
                "room": b.room if b else None,
                "verifier": names.get(b.verifier_id) if b and b.verifier_id else None,
                "parameters": [
                    {
                        "name": p.name,
                        "unit": p.unit,
                        "low": p.low,
                        "high": p.high,
                        "value": by_param[p.id].value if p.id in by_param else None,
                        "in_range": by_param[p.id].in_range if p.id in by_param else None,
                    }
                    for p in params.get(s.id, [])
                ],
            }
        )
    pending = [x for x in out_steps if x["state"] not in ("done", "verified")]
    review = _review_of(session, rec)
    refused = review_refusal(
        actor, complete=not pending, people=_people(done.values()), reviewed=review is not None
    )
    return {
        "lot": lot.lot_number,
        "template": tpl.code,
        "template_version": tpl.version,
        "started_by": names.get(rec.started_by_id),
        "complete": not pending,
        # The step to do (or verify) next: steps go in order, a verified one before the next.
        "next": pending[0]["position"] if pending else None,
        "open": lot.state in OPEN_LOT_STATES,
        "steps": out_steps,
        "review": _review_dict(session, review, names),
        # Why the asking person could not sign QA's review now (null: they may).
        "review_blocker": refused.message if refused else None,
    }


# --- QA's review of the executed record ------------------------------------------------------


def _people(steps: Any) -> set[int]:
    """Return who recorded or verified a step of the record (none of them reviews it)."""
    out: set[int] = set()
    for b in steps:
        out.add(b.operator_id)
        if b.verifier_id is not None:
            out.add(b.verifier_id)
    return out


def _review_of(session: Session, rec: BatchRecord) -> BatchRecordReview | None:
    return session.exec(
        select(BatchRecordReview).where(BatchRecordReview.record_id == rec.id)
    ).first()


def _review_dict(
    session: Session, review: BatchRecordReview | None, names: dict[int, str]
) -> dict[str, Any] | None:
    if review is None:
        return None
    sig = session.get(Signature, review.signature_id)
    return {
        "reviewed_by": names.get(review.reviewer_id),
        "reviewed_at": review.reviewed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signature": signatures.signature_dict(sig),
    }


def review_refusal(
    actor: Actor, *, complete: bool, people: set[int], reviewed: bool
) -> LimsError | None:
    """Return why actor may not sign QA's review of a batch record, naming the rule; or None."""
    if actor.role not in QA:
        return Forbidden(
            f"reviewing a batch record needs the role qa; you are {actor.role}",
            code="role_required",
        )
    if reviewed:
        return Conflict("the batch record is reviewed already", code="already_reviewed")
    if not complete:
        return Refused(
            "the batch record is not complete: QA reviews it once every step is done and verified",
            code="batch_record_incomplete",
        )
    if actor.user.id in people:
        return Refused(
            "four-eyes rule: you recorded or verified a step of this batch record; another QA "
            "person reviews it",
            code="four_eyes_review",
        )
    return None


def review(session: Session, *, lot_number: str, data: ReviewIn, actor: Actor) -> BatchRecordReview:
    """Sign, as QA, that the lot's complete batch record was reviewed (meaning 'review').

    The signature binds the record as the reviewer read it: every step's values, operator and
    verifier. The reviewer recorded and verified none of its steps.
    """
    if actor.role not in QA:
        raise Forbidden("reviewing a batch record needs the role qa", code="role_required")
    if data.signature.meaning != REVIEW_MEANING:
        raise BadRequest(
            f"a batch record review is signed with the meaning {REVIEW_MEANING!r}",
            code="signature_meaning",
        )
    lot, rec = _record_of(session, lot_number, actor)
    record = batch_dict(session, lot_number=lot.lot_number, actor=actor)
    done = session.exec(select(BatchStep).where(BatchStep.record_id == rec.id)).all()
    err = review_refusal(
        actor,
        complete=record["complete"],
        people=_people(done),
        reviewed=record["review"] is not None,
    )
    if err is not None:
        if err.code == "batch_record_incomplete":
            err.message = f"{err.message}; next: step {record['next']} of lot {lot.lot_number}"
        raise err
    content = {
        "lot_number": lot.lot_number,
        "review": "batch record",
        "template": f"{record['template']}/{record['template_version']}",
        "steps": [
            {
                "position": x["position"],
                "operator": x["operator"],
                "done_at": x["done_at"],
                "verifier": x["verifier"],
                "values": {v["name"]: v["value"] for v in x["parameters"]},
                "flagged": [v["name"] for v in x["parameters"] if v["in_range"] is False],
            }
            for x in record["steps"]
        ],
    }
    sig = signatures.sign(
        session,
        actor=actor,
        password=data.signature.password,
        meaning=REVIEW_MEANING,
        username=data.signature.username,
        record_type=REVIEW_RECORD_TYPE,
        record_id=lot.lot_number,
        content=content,
    )
    row = BatchRecordReview(
        record_id=rec.id,
        signature_id=sig.id,
        reviewer_id=actor.user.id,
        reviewed_at=sig.signed_at,
    )
    session.add(row)
    session.flush()
    after = {**content, "signature": signatures.manifestation(sig)}
    _record_lot(session, actor, lot, REVIEW_ACTION, after, signature_id=sig.id)
    return row


def _range(p: ProcessParameter) -> str:
    if p.low is not None and p.high is not None:
        return f"{p.low:g}-{p.high:g} {p.unit}"
    if p.low is not None:
        return f">= {p.low:g} {p.unit}"
    return f"<= {p.high:g} {p.unit}" if p.high is not None else "any"


def _record_of(session: Session, lot_number: str, actor: Actor) -> tuple[VectorLot, BatchRecord]:
    lot = lots.get_lot(session, lot_number, actor)
    rec = session.exec(select(BatchRecord).where(BatchRecord.lot_id == lot.id)).first()
    if rec is None:
        raise NotFound(f"lot {lot.lot_number} has no batch record", code="no_batch_record")
    return lot, rec


def _record_lot(
    session: Session,
    actor: Actor,
    lot: VectorLot,
    action: str,
    after: dict[str, Any],
    **kw: Any,
) -> None:
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="lot",
        entity_id=lot.lot_number,
        after=after,
        org_id=lot.org_id,
        lot_id=lot.id,
        **kw,
    )
