"""Treatment episodes: the state table (data), its guards, the COI check at custody, timeline.

An episode is one treatment of one patient, from enrolment to infusion. Its samples carry its
COI. Every change of custody of the product (receipt at the centre, shipment, receipt at the
clinical site, infusion) is made by scanning the bag and the COI on its label (and, at the
bedside, the patient's wristband): a COI that is not the episode's stops the move, is recorded
in the audit trail and opens a critical deviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from lims import audit, custody, samples, signatures
from lims.accounts.users import Actor, system_actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Day, Input, Line, Text, blank
from lims.models import Organisation, Project, Sample, utcnow
from lims.quality import deviations
from lims.roles import LAB, QA, SITE
from lims.signatures import SignatureIn
from lims.therapy import isbt, product_release, products
from lims.therapy.models import Episode, Patient, ProductCode
from lims.therapy.patients import find_patient

STATES = (
    "enrolled",
    "collection_scheduled",
    "collected",
    "received",
    "in_manufacturing",
    "qc",
    "released",
    "shipped",
    "received_at_site",
    "infused",
    "returned",
    "cancelled",
    "failed",
)
TERMINAL = frozenset({"infused", "cancelled", "failed"})


@dataclass(frozen=True)
class EpisodeTransition:
    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    requires: tuple[str, ...] = ()
    # A change of custody of the product: the bag and the COI on its label are scanned.
    custody: bool = False
    # At the bedside the patient's wristband is scanned too.
    wristband: bool = False
    description: str = ""
    # The bag's own custody move (a row of lims.custody.TRANSITIONS) that follows this move in
    # the same transaction, as its own audit event.
    bag_move: str | None = None


def _t(
    action,
    sources,
    target,
    roles=LAB,
    requires=(),
    custody=False,
    wristband=False,
    desc="",
    bag_move=None,
):  # noqa: ANN001, ANN202, E501
    needs = tuple(requires) + (("bag", "coi") if custody else ()) + (("wristband",) * wristband)
    return EpisodeTransition(
        action,
        frozenset(sources),
        target,
        frozenset(roles),
        needs,
        custody,
        wristband,
        desc,
        bag_move,
    )


_BEFORE_SHIPMENT = (
    "enrolled",
    "collection_scheduled",
    "collected",
    "received",
    "in_manufacturing",
    "qc",
    "released",
)

# The table: every move an episode can make. Each applied row is one audit event.
TRANSITIONS: dict[str, EpisodeTransition] = {
    t.action: t
    for t in (
        _t("schedule_collection", {"enrolled"}, "collection_scheduled", desc="book apheresis"),
        _t("collect", {"collection_scheduled"}, "collected", desc="starting material collected"),
        _t("receive", {"collected"}, "received", custody=True, desc="starting material arrives"),
        _t("start_manufacturing", {"received"}, "in_manufacturing", desc="manufacture starts"),
        _t("submit_to_qc", {"in_manufacturing"}, "qc", desc="final product goes to QC testing"),
        _t(
            "release",
            {"qc"},
            "released",
            roles=QA,
            requires=("din", "product_code", "expires_on"),
            desc="QA releases the product under its ISBT 128 DIN and product code, signed",
        ),
        _t(
            "ship",
            {"released"},
            "shipped",
            custody=True,
            desc="the product leaves the centre",
            bag_move="ship",
        ),
        _t(
            "receive_at_site",
            {"shipped"},
            "received_at_site",
            roles=LAB + SITE,
            custody=True,
            desc="the clinical site takes delivery",
            bag_move="receive",
        ),
        _t(
            "infuse",
            {"received_at_site"},
            "infused",
            custody=True,
            wristband=True,
            desc="bedside: bag and wristband scanned, product given",
            bag_move="infuse",
        ),
        _t(
            "return",
            {"shipped"},
            "returned",
            roles=QA + SITE,
            requires=("reason",),
            desc="the site refused the shipment: the product comes back, QA decides its fate",
        ),
        _t(
            "cancel",
            _BEFORE_SHIPMENT,
            "cancelled",
            requires=("reason",),
            desc="the treatment will not go ahead",
        ),
        _t(
            "fail",
            {
                "collected",
                "received",
                "in_manufacturing",
                "qc",
                "shipped",
                "received_at_site",
                "returned",
            },
            "failed",
            roles=QA,
            requires=("reason",),
            desc="the product cannot be given (QA)",
        ),
    )
}

# What may still happen to an episode held by a COI mismatch: it can be ended, not moved on.
# A refused shipment is recorded whatever held it (a mismatch at receipt is a reason to refuse).
HELD_MAY = frozenset({"cancel", "fail", "return"})

FIELD_WORDS = {
    "bag": "the bag's barcode, scanned",
    "coi": "the COI on the bag's label, scanned",
    "wristband": "the COI on the patient's wristband, scanned",
    "din": "the ISBT 128 DIN with its check character",
    "product_code": "the ISBT 128 product description code",
    "expires_on": "the product's expiry date (YYYY-MM-DD)",
    "reason": "a reason",
}
FIELDS = tuple(FIELD_WORDS)


class EpisodeCreate(Input):
    coi: Line = Field(min_length=1, max_length=64, description="the patient's or donor's COI")
    project: Line = Field(min_length=1, max_length=64, description="project the samples go in")
    product_code: Line | None = Field(default=None, max_length=8, description="ISBT 128 code")


class EpisodeTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32)
    version: int | None = Field(default=None, ge=1, description="the version you last saw")
    bag: Line | None = Field(default=None, max_length=64, description="bag barcode scanned")
    coi: Line | None = Field(default=None, max_length=64, description="COI scanned from the bag")
    wristband: Line | None = Field(default=None, max_length=64, description="wristband COI")
    din: Line | None = Field(default=None, max_length=24, description="ISBT 128 DIN + check")
    product_code: Line | None = Field(default=None, max_length=8)
    expires_on: Day | None = Field(default=None, description="release: the product's expiry")
    reason: Text | None = Field(default=None, max_length=2000)
    signature: SignatureIn | None = Field(
        default=None, description="release: QA's e-signature (password, meaning 'release')"
    )


def allowed_actions(state: str) -> list[str]:
    """Return the actions the table allows from state, in table order."""
    return [a for a, t in TRANSITIONS.items() if state in t.sources]


# --- reading ----------------------------------------------------------------------------------


def find_episode(session: Session, number: str, actor: Actor) -> Episode | None:
    """Return the episode numbered number if the actor may see it, else None."""
    ep = session.exec(select(Episode).where(Episode.number == number.strip().upper())).first()
    if ep is None or not actor.can_see(ep.org_id):
        return None
    return ep


def get_episode(session: Session, number: str, actor: Actor) -> Episode:
    """Return an episode the actor may see; another organisation's does not exist (404)."""
    ep = find_episode(session, number, actor)
    if ep is None:
        raise NotFound(f"no episode {number!r}", code="unknown_episode")
    return ep


def list_episodes(
    session: Session, actor: Actor, *, state: str | None = None, coi: str | None = None
) -> list[Episode]:
    """Return the episodes the actor may see, newest first."""
    if state and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}", code="bad_filter")
    stmt = select(Episode).order_by(col(Episode.id).desc()).limit(500)
    if not actor.sees_all:
        stmt = stmt.where(Episode.org_id == actor.org.id)
    if state:
        stmt = stmt.where(Episode.state == state)
    if coi:
        stmt = stmt.where(Episode.coi == coi.strip().upper())
    return list(session.exec(stmt).all())


def episode_samples(session: Session, ep: Episode) -> list[Sample]:
    """Return the samples that carry the episode's COI, oldest first."""
    stmt = (
        select(Sample)
        .where(Sample.coi == ep.coi, Sample.org_id == ep.org_id)
        .order_by(col(Sample.id))
    )
    return list(session.exec(stmt).all())


def _code(session: Session, ep: Episode) -> ProductCode | None:
    return session.get(ProductCode, ep.product_code_id) if ep.product_code_id else None


def snapshot(session: Session, ep: Episode) -> dict[str, Any]:
    """Return the episode's state as audit events record it (never a patient identifier)."""
    code = _code(session, ep)
    return {
        "state": ep.state,
        "version": ep.version,
        "coi": ep.coi,
        "product_code": code.code if code else None,
        "din": ep.din,
        "expires_on": ep.expires_on.isoformat() if ep.expires_on else None,
        "reason": ep.reason,
        "held_by": ep.held_by,
    }


def episode_dict(session: Session, ep: Episode) -> dict[str, Any]:
    """Return the public JSON of an episode: its COI, never the patient's identifiers."""
    patient = session.get(Patient, ep.patient_id)
    code = _code(session, ep)
    return {
        "number": ep.number,
        "coi": ep.coi,
        "kind": patient.kind,
        "organisation": session.get(Organisation, ep.org_id).name,
        "project": session.get(Project, ep.project_id).code,
        "state": ep.state,
        "version": ep.version,
        "reason": ep.reason,
        "held_by": ep.held_by,
        "product_code": products.product_dict(code) if code else None,
        "din": ep.din,
        "expires_on": ep.expires_on.isoformat() if ep.expires_on else None,
        "din_text": isbt.Din(ep.din, None, isbt.din_check(ep.din)).eye_readable()
        if ep.din
        else None,
        "samples": [
            {
                "barcode": s.barcode,
                "state": s.state,
                "parent": session.get(Sample, s.parent_id).barcode if s.parent_id else None,
            }
            for s in episode_samples(session, ep)
        ],
        "allowed_actions": allowed_actions(ep.state),
        "created_at": ep.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def timeline(session: Session, ep: Episode) -> list[dict[str, Any]]:
    """Return the chain of identity as it happened: the episode's events and those of every
    sample that carries its COI, oldest first."""
    barcodes = [s.barcode for s in episode_samples(session, ep)]
    events = audit.query(
        session,
        entities=[("episode", [ep.number]), ("sample", barcodes)],
        limit=10_000,
    )
    return [
        {
            "seq": e.seq,
            "ts": audit.ts_text(e.ts),
            "actor": e.actor,
            "action": e.action,
            "entity_type": e.entity_type,
            "entity_id": e.entity_id,
            "reason": e.reason,
        }
        for e in events
    ]


# --- changing ---------------------------------------------------------------------------------


def _require_staff(actor: Actor, what: str) -> None:
    if not (actor.sees_all and actor.role in LAB):
        raise Forbidden(f"{what} is for the centre's staff", code="role_required")


def _record(
    session: Session,
    actor: Actor,
    action: str,
    ep: Episode,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    reason: str | None = None,
    signature_id: int | None = None,
) -> None:
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="episode",
        entity_id=ep.number,
        before=before,
        after=after,
        reason=reason,
        org_id=ep.org_id,
        signature_id=signature_id,
    )


def enrol(session: Session, *, data: EpisodeCreate, actor: Actor) -> Episode:
    """Open a treatment episode for a registered patient or donor (the centre's staff)."""
    _require_staff(actor, "enrolling a patient")
    patient = find_patient(session, data.coi)
    if patient is None:
        raise NotFound(
            f"no patient or donor with COI {data.coi!r}; QA or admin registers them first",
            code="unknown_patient",
        )
    project = session.exec(select(Project).where(Project.code == data.project.strip())).first()
    if project is None:
        raise NotFound(f"no project {data.project!r}", code="unknown_project")
    if project.org_id != patient.org_id:
        raise Refused(
            f"project {project.code} belongs to another organisation than the patient",
            code="project_mismatch",
        )
    code = products.get_product_code(session, data.product_code) if data.product_code else None
    now = utcnow()
    serial = samples.next_serial(session, f"episode-{now.year}")
    ep = Episode(
        number=f"EP-{now.year % 100:02d}-{serial:04d}",
        patient_id=patient.id,
        coi=patient.coi,
        org_id=patient.org_id,
        project_id=project.id,
        product_code_id=code.id if code else None,
    )
    session.add(ep)
    session.flush()
    _record(
        session,
        actor,
        "episode.enrol",
        ep,
        None,
        {**snapshot(session, ep), "project": project.code},
    )
    return ep


def _save(session: Session, ep: Episode, changes: dict[str, Any]) -> None:
    old = ep.version
    changes = {**changes, "version": old + 1, "updated_at": utcnow()}
    res = session.connection().execute(
        update(Episode).where(Episode.id == ep.id, Episode.version == old).values(**changes)
    )
    if res.rowcount != 1:
        raise Conflict(
            f"episode {ep.number} was changed by someone else; reload it", code="version_conflict"
        )
    for k, v in changes.items():
        set_committed_value(ep, k, v)


def check(*, action: str, state: str, role: str, fields: dict[str, Any]) -> EpisodeTransition:
    """Return the transition for action from state, or refuse with the reason and allowed moves."""
    t = TRANSITIONS.get(action)
    allowed = allowed_actions(state)
    if t is None:
        raise Refused(
            f"unknown action {action!r}; allowed from {state}: {', '.join(allowed) or 'none'}",
            code="unknown_action",
            state=state,
            allowed=allowed,
        )
    if role not in t.roles:
        raise Forbidden(
            f"{action} needs the role {' or '.join(sorted(t.roles))}; you are {role}",
            code="role_required",
        )
    if state not in t.sources:
        raise Refused(
            f"an episode that is {state.replace('_', ' ')} cannot {action.replace('_', ' ')}; "
            f"allowed: {', '.join(allowed) or 'none (closed)'}",
            code="illegal_transition",
            state=state,
            allowed=allowed,
        )
    missing = [f for f in t.requires if blank(fields.get(f))]
    if missing:
        raise Refused(
            f"{action.replace('_', ' ')} needs "
            + " and ".join(f"{FIELD_WORDS[f]} ({f})" for f in missing),
            code="missing_fields",
            missing=missing,
        )
    for name, value in fields.items():
        # A reason may be given with any move (a note); other fields only where the row asks.
        if not blank(value) and name not in t.requires and name != "reason":
            raise Refused(f"{action} takes no {name}", code="unexpected_field", field=name)
    return t


def coi_mismatch(
    episode: Episode, *, bag: Sample, label_coi: str, wristband: str | None
) -> str | None:
    """Say what does not match the episode's COI at a change of custody, or None if all do.

    Pure: the one place the rule is written. The bag itself, the COI printed on it and the
    patient's wristband must all name the episode's patient.
    """
    want = episode.coi.strip().upper()
    if bag.org_id != episode.org_id:
        # The words go to this episode's organisation: they do not name another's patient.
        return f"bag {bag.barcode} is another organisation's material, not this episode's {want}"
    if bag.coi.upper() != want:
        return f"bag {bag.barcode} carries COI {bag.coi}, not this episode's {want}"
    if label_coi.strip().upper() != want:
        return f"the COI scanned from the label, {label_coi.strip()}, is not this episode's {want}"
    if wristband is not None and wristband.strip().upper() != want:
        return f"the wristband's COI, {wristband.strip()}, is not this episode's {want}"
    return None


def _mismatch_refusal(
    session: Session, ep: Episode, actor: Actor, action: str, bag: Sample, what: str
) -> Refused:
    """Build the refusal of a COI mismatch; after the move is rolled back it records the event
    and opens a critical deviation in the refusal's own transaction."""
    number, coi, org_id = ep.number, ep.coi, ep.org_id
    barcode, bag_org = bag.barcode, bag.org_id
    message = f"COI MISMATCH - STOP: {what}; {action.replace('_', ' ')} refused, set the bag aside"
    err = Refused(message, code="coi_mismatch", expected=coi, episode=number)

    def open_deviation(db: Session, _config: Any) -> None:
        # A technician raises it in their own name; someone who may not raise deviations
        # (a client user) has it raised by the system, naming them in the description.
        raiser = actor if actor.sees_all and actor.role in LAB else system_actor(db)
        dev = deviations.raise_deviation(
            db,
            actor=raiser,
            title=f"COI mismatch at {action.replace('_', ' ')} of {number}",
            severity="critical",
            description=f"{actor.username} scanned for {action} of episode {number}: {what}. "
            "The move was refused.",
            # Link the bag only within the episode's organisation: a deviation must not show
            # one client's patient to another.
            links=[("sample", barcode)] if bag_org == org_id else [],
            source="COI check",
        )
        # The episode is held until QA acknowledges the mismatch (acknowledge_mismatch).
        db.connection().execute(
            update(Episode)
            .where(Episode.number == number)
            .values(held_by=dev.number, version=Episode.version + 1, updated_at=utcnow())
        )
        audit.record_by(
            db,
            actor,
            action="episode.coi_mismatch",
            entity_type="episode",
            entity_id=number,
            after={
                "action": action,
                "bag": barcode,
                "expected_coi": coi,
                "found": what,
                "held_by": dev.number,
            },
            reason=message,
            org_id=org_id,
        )
        err.message = f"{message}; deviation {dev.number} opened, QA acknowledges it"
        err.extra["deviation"] = dev.number

    err.after_rollback = open_deviation
    return err


def refuse_mismatch(
    session: Session, ep: Episode, *, actor: Actor, action: str, bag: Sample, label_coi: str
) -> None:
    """Refuse a change of custody of one more bag of an episode whose COI scans do not match
    (coi_mismatch), with the same record, deviation and hold as a move refused for it."""
    what = coi_mismatch(ep, bag=bag, label_coi=label_coi, wristband=None)
    if what is not None:
        raise _mismatch_refusal(session, ep, actor, action, bag, what)


# The sample moves of an episode's material refuse a mismatch the same way (sample_custody).
mismatch_refusal = _mismatch_refusal


def transition(
    session: Session, *, number: str, data: EpisodeTransitionIn, actor: Actor
) -> Episode:
    """Move an episode along its table: guards, COI check at custody, optimistic lock, one event."""
    if actor.role not in LAB:
        raise Forbidden(
            f"moving an episode needs a technician, qa or admin role; you are {actor.role}",
            code="role_required",
        )
    ep = get_episode(session, number, actor)
    return move(session, ep, data=data, actor=actor)


def move(
    session: Session,
    ep: Episode,
    *,
    data: EpisodeTransitionIn,
    actor: Actor,
    bag: Sample | None = None,
    shipment: str | None = None,
) -> Episode:
    """Move an episode the caller has found for the actor (transition, or a shipment for its
    clinical site, which passes the manifest's bag it matched to the scanned barcode and its
    own number). The bag follows a move that has a bag_move, as its own custody event."""
    if data.version is not None and data.version != ep.version:
        raise Conflict(
            f"episode {ep.number} is at version {ep.version}, not {data.version}; reload it",
            code="version_conflict",
            current_version=ep.version,
        )
    fields = data.model_dump(exclude={"action", "version", "signature"})
    t = check(action=data.action, state=ep.state, role=actor.role, fields=fields)
    signed = t.action == "release"  # QA signs the release of the product (Part 11)
    if signed and data.signature is None:
        raise Refused(
            f"releasing {ep.number} needs QA's e-signature (password, meaning 'release')",
            code="signature_required",
        )
    if not signed and data.signature is not None:
        raise Refused(f"{t.action} takes no signature", code="unexpected_field", field="signature")
    if ep.held_by and t.action not in HELD_MAY:
        raise Refused(
            f"{ep.number} is held since a COI mismatch (deviation {ep.held_by}): QA "
            "acknowledges the mismatch before the episode moves on",
            code="episode_held",
            deviation=ep.held_by,
        )
    changes: dict[str, Any] = {"state": t.target}
    extra: dict[str, Any] = {}
    if t.custody:
        if bag is None:
            bag = samples.get_sample(session, data.bag, actor)
        what = coi_mismatch(ep, bag=bag, label_coi=data.coi, wristband=data.wristband)
        if what is not None:
            raise _mismatch_refusal(session, ep, actor, t.action, bag, what)
        if bag.state in custody.TERMINAL:
            raise Refused(
                f"bag {bag.barcode} is {bag.state}: it cannot change hands any more",
                code="bag_unusable",
                state=bag.state,
            )
        if t.action == "ship" and bag.id not in {
            p.id for p in product_release.final_products(session, ep)
        }:
            raise Refused(
                f"bag {bag.barcode} is not {ep.number}'s cell product: only the released "
                "final product ships",
                code="not_final_product",
            )
        extra["bag"] = bag.barcode
    if "din" in t.requires:
        din = isbt.parse_din(data.din)
        code = products.get_product_code(session, data.product_code)
        taken = session.exec(
            select(Episode.number).where(Episode.din == din.din, Episode.id != ep.id)
        ).first()
        if taken is not None:
            # A DIN names one donation for ever: a second product under it breaks traceability.
            raise Conflict(f"DIN {din.din} is {taken}'s already", code="din_taken")
        changes["din"], changes["product_code_id"] = din.din, code.id
    if "expires_on" in t.requires:
        if data.expires_on <= utcnow().date():
            raise Refused(
                f"the expiry date {data.expires_on.isoformat()} has come already: a product "
                "is released before it expires",
                code="bad_expiry",
            )
        changes["expires_on"] = data.expires_on
    if "reason" in t.requires:
        changes["reason"] = data.reason.strip()
    sig = None
    made: list[Sample] = []
    if signed:
        made = product_release.release_refusal(session, ep, actor)
        extra["products"] = [s.barcode for s in made]
    before = snapshot(session, ep)
    if signed:
        sig = signatures.sign_required(
            session,
            actor=actor,
            given=data.signature,
            meaning="release",
            what=f"release of {ep.number}",
            record_type="episode",
            record_id=ep.number,
            content={**before, "state": t.target, "din": changes["din"], **extra},
        )
    _save(session, ep, changes)
    if sig is not None:
        extra["signature"] = signatures.manifestation(sig)
    _record(
        session,
        actor,
        f"episode.{t.action}",
        ep,
        before,
        {**snapshot(session, ep), **extra},
        reason=data.reason,
        signature_id=sig.id if sig else None,
    )
    if signed:
        # The signed release is the product's: each bag waiting in quarantine is released for
        # use too (its own signed event), so it may ship.
        for product in made:
            if product.state == "quarantine":
                samples.apply_transition(
                    session,
                    sample=product,
                    data=samples.TransitionIn(action="release", signature=data.signature),
                    actor=actor,
                )
    if t.bag_move is not None:
        follow(
            session,
            ep,
            action=t.action,
            bag=bag,
            label_coi=data.coi,
            actor=actor,
            shipment=shipment,
        )
    return ep


def follow(
    session: Session,
    ep: Episode,
    *,
    action: str,
    bag: Sample,
    label_coi: str,
    actor: Actor,
    shipment: str | None = None,
) -> Sample:
    """Move the bag in custody as the episode's move action calls for (its bag_move), through
    the sample machine: its guards, its one audit event. A shipment's number is the destination
    of a bag it ships and is named in the condition of a bag the site receives."""
    move_ = TRANSITIONS[action].bag_move
    fields: dict[str, Any] = {"coi": label_coi}
    if move_ == "ship":
        fields["destination"] = shipment or f"the clinical site of {ep.number} (no shipment)"
    elif move_ == "receive":
        fields["condition"] = "accepted at the clinical site" + (
            f" on receipt of {shipment}" if shipment else f" ({ep.number})"
        )
    return samples.apply_transition(
        session, sample=bag, data=samples.TransitionIn(action=move_, **fields), actor=actor
    )


class AcknowledgeIn(Input):
    reason: Text = Field(min_length=1, max_length=2000, description="what QA found and decided")
    version: int | None = Field(default=None, ge=1)


def acknowledge_mismatch(
    session: Session, *, number: str, data: AcknowledgeIn, actor: Actor
) -> Episode:
    """QA acknowledges the COI mismatch that holds an episode, with a reason; it may move on.

    The deviation stays open for its investigation; the acknowledgement only lifts the hold.
    """
    # Who asks is checked before what is asked for: a refused role learns nothing of episodes.
    if actor.role not in QA:
        raise Forbidden(
            f"acknowledging a COI mismatch needs the role qa; you are {actor.role}",
            code="role_required",
        )
    ep = get_episode(session, number, actor)
    if data.version is not None and data.version != ep.version:
        raise Conflict(
            f"episode {ep.number} is at version {ep.version}, not {data.version}; reload it",
            code="version_conflict",
            current_version=ep.version,
        )
    if not ep.held_by:
        raise Refused(f"{ep.number} is not held: nothing to acknowledge", code="not_held")
    if blank(data.reason):
        raise Refused("acknowledging needs a reason", code="missing_fields", missing=["reason"])
    before = snapshot(session, ep)
    _save(session, ep, {"held_by": None})
    _record(
        session,
        actor,
        "episode.acknowledge_mismatch",
        ep,
        before,
        {**snapshot(session, ep), "deviation": before["held_by"]},
        reason=data.reason,
    )
    return ep
