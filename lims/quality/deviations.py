"""Deviations and CAPA: the state table (data), links to records, and the release block."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy import func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from lims import audit, lineage, signatures, storage
from lims.accounts.users import Actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Day, Input, Line, Text, blank, describe
from lims.models import (
    CapaAction,
    Counter,
    Deviation,
    DeviationLink,
    Organisation,
    PrintJob,
    Sample,
    Signature,
    User,
    VectorLot,
    utcnow,
)
from lims.roles import LAB, QA

SEVERITIES = ("minor", "major", "critical")
STATES = ("open", "investigation", "closed")
ACTIVE = ("open", "investigation")
LINK_KINDS = ("lot", "sample", "room", "print_job", "shipment")
# Named by the issue as something a deviation concerns, not yet recorded anywhere.
NOT_YET: dict[str, str] = {}
# Link kinds whose records live in an area above quality (shipments, in lims.therapy): that
# area registers how to find one, (session, actor, ref) -> (ref as stored, organisation id).
LINK_RESOLVERS: dict[str, Callable[[Session, Actor, str], tuple[str, int]]] = {}


@dataclass(frozen=True)
class DeviationTransition:
    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    signature: str | None = None  # the meaning a signature must carry, if one is needed
    needs_root_cause: bool = False
    needs_capa_settled: bool = False
    description: str = ""


# The table: every move a deviation can make. Each applied row is one audit event. There is no
# way back from closed: a recurrence is a new deviation that references the closed one.
TRANSITIONS: dict[str, DeviationTransition] = {
    t.action: t
    for t in (
        DeviationTransition(
            "investigate",
            frozenset({"open"}),
            "investigation",
            frozenset(QA),
            description="QA starts the investigation",
        ),
        DeviationTransition(
            "close",
            frozenset({"investigation"}),
            "closed",
            frozenset(QA),
            signature="approval",
            needs_root_cause=True,
            needs_capa_settled=True,
            description="QA approves the root cause and the settled CAPA, with an e-signature",
        ),
    )
}


class LinkIn(Input):
    kind: Line = Field(
        min_length=1, max_length=16, description="lot, sample, room, print_job or shipment"
    )
    ref: Line = Field(min_length=1, max_length=64, description="lot number, barcode, room, job id")


class LinkChange(LinkIn):
    unlink: bool = Field(default=False, description="true removes the link (with a reason)")
    reason: Text | None = Field(default=None, max_length=2000)


class DeviationCreate(Input):
    title: Line = Field(min_length=1, max_length=200)
    description: Text = Field(min_length=1, max_length=10000)
    severity: Line = Field(min_length=1, max_length=16, description="minor, major or critical")
    category: Line | None = Field(default=None, max_length=64)
    organisation: Line | None = Field(
        default=None,
        max_length=64,
        description="the organisation it concerns (default: the "
        "owner of the linked lots and samples, else the centre)",
    )
    links: list[LinkIn] = Field(default_factory=list, max_length=50)
    references: Line | None = Field(
        default=None, max_length=32, description="an earlier deviation this one follows up"
    )


class DeviationSignature(Input):
    password: str = Field(min_length=1, max_length=500)
    meaning: str = Field(min_length=1, max_length=32)
    username: str | None = Field(default=None, max_length=64)


class DeviationTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32)
    reason: Text | None = Field(default=None, max_length=2000)
    root_cause: Text | None = Field(default=None, max_length=10000)
    signature: DeviationSignature | None = None
    version: int | None = Field(default=None, ge=1)


class CapaIn(Input):
    description: Text = Field(min_length=1, max_length=4000)
    owner: Line = Field(min_length=1, max_length=64, description="username of who does it")
    due_on: Day


class CapaComplete(Input):
    effectiveness_check: Text = Field(
        min_length=1, max_length=4000, description="how the action was shown to work"
    )


class CapaCarry(Input):
    to: Line = Field(min_length=1, max_length=32, description="the deviation that takes it over")
    reason: Text = Field(min_length=1, max_length=2000)


# --- reading ----------------------------------------------------------------------------------


def find_deviation(session: Session, number: str, actor: Actor) -> Deviation | None:
    """Return the deviation numbered number if the actor may see it, else None."""
    # Numbers are written in capitals; dev-26-0001 typed by hand is that deviation.
    dev = session.exec(select(Deviation).where(Deviation.number == number.strip().upper())).first()
    if dev is None or not actor.can_see(dev.org_id):
        return None
    return dev


def get_deviation(session: Session, number: str, actor: Actor) -> Deviation:
    """Return a deviation the actor may see; another organisation's does not exist (404)."""
    dev = find_deviation(session, number, actor)
    if dev is None:
        raise NotFound(f"no deviation {number!r}", code="unknown_deviation")
    return dev


def list_deviations(
    session: Session,
    actor: Actor,
    *,
    state: str | None = None,
    severity: str | None = None,
    lot: str | None = None,
    sample: str | None = None,
    limit: int = 500,
) -> list[Deviation]:
    """Return the deviations the actor may see, newest first, filtered."""
    state, severity = state or None, severity or None
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}", code="bad_filter")
    if severity is not None and severity not in SEVERITIES:
        raise BadRequest(f"severity must be one of {', '.join(SEVERITIES)}", code="bad_filter")
    stmt = select(Deviation).order_by(col(Deviation.id).desc()).limit(limit)
    if not actor.sees_all:
        stmt = stmt.where(Deviation.org_id == actor.org.id)
    if state:
        stmt = stmt.where(Deviation.state == state)
    if severity:
        stmt = stmt.where(Deviation.severity == severity)
    for kind, ref in (("lot", lot), ("sample", sample)):
        if ref:
            linked = select(DeviationLink.deviation_id).where(
                DeviationLink.kind == kind,
                func.upper(DeviationLink.ref) == ref.strip().upper(),
                col(DeviationLink.removed_at).is_(None),
            )
            stmt = stmt.where(col(Deviation.id).in_(linked))
    return list(session.exec(stmt).all())


def active_links(session: Session, dev: Deviation) -> list[DeviationLink]:
    """Return the records a deviation concerns now, in the order they were linked."""
    return list(
        session.exec(
            select(DeviationLink)
            .where(DeviationLink.deviation_id == dev.id, col(DeviationLink.removed_at).is_(None))
            .order_by(DeviationLink.id)
        ).all()
    )


def capa_actions(session: Session, dev: Deviation) -> list[CapaAction]:
    """Return a deviation's CAPA actions, oldest first."""
    return list(
        session.exec(
            select(CapaAction).where(CapaAction.deviation_id == dev.id).order_by(CapaAction.id)
        ).all()
    )


def release_blockers(
    session: Session, *, lot: VectorLot | None = None, sample: Sample | None = None
) -> list[Deviation]:
    """Return the open or investigated critical deviations that stop a lot's or sample's release.

    A lot is held by one linked to the lot or to any of its vials; a sample by one linked to it or
    to material it was made from (its parent or a pool's parents, theirs, ...).
    """
    conditions = []
    if lot is not None:
        vials = select(Sample.id).where(Sample.lot_id == lot.id)
        conditions += [DeviationLink.lot_id == lot.id, col(DeviationLink.sample_id).in_(vials)]
    if sample is not None:
        # Every line it came from: a pool is held by any of its parents, as an aliquot by its one.
        made_from, _ = lineage.ancestors(session, sample)
        ids = [sample.id, *(a.id for a in made_from)]
        conditions.append(col(DeviationLink.sample_id).in_(ids))
    if not conditions:
        return []
    stmt = (
        select(Deviation)
        .where(
            Deviation.severity == "critical",
            col(Deviation.state).in_(ACTIVE),
            col(Deviation.id).in_(
                select(DeviationLink.deviation_id).where(
                    col(DeviationLink.removed_at).is_(None), or_(*conditions)
                )
            ),
        )
        .order_by(Deviation.id)
    )
    return list(session.exec(stmt).all())


def refuse_release(
    session: Session, *, what: str, lot: VectorLot | None = None, sample: Sample | None = None
) -> None:
    """Refuse (422 deviation_open) releasing what while a critical deviation holds it."""
    blockers = release_blockers(session, lot=lot, sample=sample)
    if blockers:
        numbers = [d.number for d in blockers]
        raise Refused(
            f"{what} cannot be released: critical deviation {', '.join(numbers)} is not closed",
            code="deviation_open",
            deviations=numbers,
        )


def _username(session: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.username if user else None


def _time(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _link_dict(session: Session, link: DeviationLink) -> dict[str, Any]:
    return {
        "kind": link.kind,
        "ref": link.ref,
        "added_by": _username(session, link.added_by_id),
        "added_at": _time(link.added_at),
    }


def capa_dict(session: Session, c: CapaAction, today: date | None = None) -> dict[str, Any]:
    """Return one CAPA action's JSON."""
    today = today or utcnow().date()
    carried_to = session.get(CapaAction, c.carried_to_id) if c.carried_to_id else None
    carried_from = session.get(CapaAction, c.carried_from_id) if c.carried_from_id else None
    return {
        "id": c.id,
        "description": c.description,
        "owner": _username(session, c.owner_id),
        "due_on": c.due_on.isoformat(),
        "done_at": _time(c.done_at),
        "done_by": _username(session, c.done_by_id),
        "effectiveness_check": c.effectiveness_check,
        "carried_to": _number(session, carried_to.deviation_id) if carried_to else None,
        "carried_from": _number(session, carried_from.deviation_id) if carried_from else None,
        "status": _capa_status(c),
        "overdue": _capa_status(c) == "open" and c.due_on < today,
    }


def _capa_status(c: CapaAction) -> str:
    if c.done_at is not None:
        return "done"
    if c.carried_to_id is not None:
        return "carried"
    return "open"


def _number(session: Session, deviation_id: int | None) -> str | None:
    if deviation_id is None:
        return None
    dev = session.get(Deviation, deviation_id)
    return dev.number if dev else None


def snapshot(session: Session, dev: Deviation) -> dict[str, Any]:
    """Return the deviation content that audit events and the closing signature bind to."""
    return {
        "number": dev.number,
        "title": dev.title,
        "description": dev.description,
        "severity": dev.severity,
        "category": dev.category,
        "organisation": session.get(Organisation, dev.org_id).name,
        "state": dev.state,
        "version": dev.version,
        "root_cause": dev.root_cause,
        "references": _number(session, dev.references_id),
        "source": dev.source,
        "links": [{"kind": x.kind, "ref": x.ref} for x in active_links(session, dev)],
        "capa": [
            {
                "id": c.id,
                "description": c.description,
                "owner": _username(session, c.owner_id),
                "due_on": c.due_on.isoformat(),
                "status": _capa_status(c),
                "effectiveness_check": c.effectiveness_check,
            }
            for c in capa_actions(session, dev)
        ],
    }


def history(session: Session, dev: Deviation) -> list[dict[str, Any]]:
    """Return the deviation's audit events, oldest first (who did what, when, why)."""
    events = audit.query(session, entity_type="deviation", entity_ids=[dev.number], limit=10_000)
    return [
        {"ts": audit.ts_text(e.ts), "actor": e.actor, "action": e.action, "reason": e.reason}
        for e in events
    ]


def allowed_actions(dev: Deviation) -> list[str]:
    """Return the actions the table allows from the deviation's state."""
    return [a for a, t in TRANSITIONS.items() if dev.state in t.sources]


def deviation_dict(session: Session, dev: Deviation) -> dict[str, Any]:
    """Return the public JSON of a deviation, with its links, CAPA and signature."""
    snap = snapshot(session, dev)
    sig = session.get(Signature, dev.signature_id) if dev.signature_id else None
    return {
        **snap,
        "raised_by": _username(session, dev.raised_by_id),
        "raised_at": _time(dev.raised_at),
        "closed_by": _username(session, dev.closed_by_id),
        "closed_at": _time(dev.closed_at),
        "links": [_link_dict(session, x) for x in active_links(session, dev)],
        "capa": [capa_dict(session, c) for c in capa_actions(session, dev)],
        "signature": signatures.signature_dict(sig) if sig else None,
        "allowed_actions": allowed_actions(dev),
        "blocks_release": dev.severity == "critical" and dev.state in ACTIVE,
    }


def summary(session: Session, dev: Deviation) -> dict[str, Any]:
    """Return a deviation's line in a list."""
    return summaries(session, [dev])[0]


def summaries(session: Session, devs: list[Deviation]) -> list[dict[str, Any]]:
    """Return the lines of a list of deviations, their organisations and links read at once."""
    ids = [d.id for d in devs]
    orgs = {o.id: o.name for o in session.exec(select(Organisation))} if devs else {}
    links: dict[int, list[DeviationLink]] = {}
    for i in range(0, len(ids), 500):
        for x in session.exec(
            select(DeviationLink)
            .where(
                col(DeviationLink.deviation_id).in_(ids[i : i + 500]),
                col(DeviationLink.removed_at).is_(None),
            )
            .order_by(DeviationLink.id)
        ):
            links.setdefault(x.deviation_id, []).append(x)
    return [
        {
            "number": dev.number,
            "title": dev.title,
            "severity": dev.severity,
            "state": dev.state,
            "organisation": orgs[dev.org_id],
            "raised_at": _time(dev.raised_at),
            "links": [{"kind": x.kind, "ref": x.ref} for x in links.get(dev.id, [])],
        }
        for dev in devs
    ]


# --- changing ---------------------------------------------------------------------------------


def _require_staff(actor: Actor, what: str) -> None:
    if not (actor.sees_all and actor.role in LAB):
        raise Forbidden(f"{what} is for the centre's staff", code="role_required")


def _require_qa(actor: Actor, what: str) -> None:
    if actor.role not in QA:
        raise Forbidden(f"{what} needs the role qa; you are {actor.role}", code="role_required")


def _next_number(session: Session, year: int) -> str:
    """Allocate the next deviation number of the year (one centre-wide sequence)."""
    dialect = session.connection().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(Counter)
    stmt = (
        ins.values(name=f"deviation-{year}", value=1)
        .on_conflict_do_update(index_elements=[Counter.name], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    serial = session.connection().execute(stmt).scalar_one()
    return f"DEV-{year % 100:02d}-{serial:04d}"


@dataclass
class _Target:
    kind: str
    ref: str
    org_id: int | None  # None: a centre record that concerns any organisation (room, print job)
    lot_id: int | None = None
    sample_id: int | None = None
    location_id: int | None = None
    print_job_id: int | None = None


def _resolve(session: Session, actor: Actor, kind: str, ref: str) -> _Target:
    """Find the record a link names, or refuse with what is wrong."""
    ref = ref.strip()
    if kind in NOT_YET:
        raise Refused(f"cannot link a {kind}: {NOT_YET[kind]}", code="link_kind_not_available")
    if kind not in LINK_KINDS:
        raise BadRequest(
            f"a link is to one of {', '.join(LINK_KINDS)}; not {kind!r}", code="bad_link_kind"
        )
    if kind == "lot":
        lot = session.exec(
            select(VectorLot).where(func.lower(VectorLot.lot_number) == ref.lower())
        ).first()
        if lot is None or not actor.can_see(lot.org_id):
            raise NotFound(f"no lot {ref!r}", code="unknown_lot")
        return _Target(kind, lot.lot_number, lot.org_id, lot_id=lot.id)
    if kind == "sample":
        s = session.exec(select(Sample).where(Sample.barcode == ref.upper())).first()
        if s is None or not actor.can_see(s.org_id):
            raise NotFound(f"no sample {ref!r}", code="unknown_sample")
        return _Target(kind, s.barcode, s.org_id, sample_id=s.id)
    if kind == "room":
        loc = storage.find_location(session, ref)
        if loc is None:
            raise NotFound(f"no room {ref!r}", code="unknown_location")
        if loc.kind != "room":
            raise Refused(f"{loc.code} is a {loc.kind}, not a room", code="not_a_room")
        return _Target(kind, loc.code, None, location_id=loc.id)
    if kind in LINK_RESOLVERS:
        found, org_id = LINK_RESOLVERS[kind](session, actor, ref)
        return _Target(kind, found, org_id)
    if kind == "shipment":
        raise Refused("shipments are not loaded in this process", code="link_kind_not_available")
    if not ref.isdigit() or int(ref) > 2**31 - 1:
        raise BadRequest(f"a print job is named by its number, not {ref!r}", code="bad_link")
    job = session.get(PrintJob, int(ref))
    if job is None:
        raise NotFound(f"no print job {ref}", code="unknown_print_job")
    return _Target(kind, str(job.id), None, print_job_id=job.id)


def _check_org(session: Session, target: _Target, org_id: int) -> None:
    if target.org_id is not None and target.org_id != org_id:
        org = session.get(Organisation, org_id)
        raise Refused(
            f"{target.kind} {target.ref} belongs to another organisation than this deviation "
            f"({org.name}); raise a deviation for that organisation",
            code="link_other_organisation",
        )


def _add_link(session: Session, dev: Deviation, target: _Target, actor: Actor) -> DeviationLink:
    link = DeviationLink(
        deviation_id=dev.id,
        kind=target.kind,
        ref=target.ref,
        lot_id=target.lot_id,
        sample_id=target.sample_id,
        location_id=target.location_id,
        print_job_id=target.print_job_id,
        added_by_id=actor.user.id,
    )
    session.add(link)
    return link


def _lot_of(session: Session, dev: Deviation) -> int | None:
    """Return the lot a deviation's events are filed under (its first linked lot or vial's)."""
    for link in active_links(session, dev):
        if link.lot_id:
            return link.lot_id
        if link.sample_id:
            s = session.get(Sample, link.sample_id)
            if s is not None and s.lot_id:
                return s.lot_id
    return None


def _record(
    session: Session,
    actor: Actor,
    action: str,
    dev: Deviation,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    reason: str | None = None,
    lot_id: int | None = None,
    **kw: Any,
) -> None:
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="deviation",
        entity_id=dev.number,
        before=before,
        after=after,
        reason=reason,
        org_id=dev.org_id,
        lot_id=lot_id if lot_id is not None else _lot_of(session, dev),
        **kw,
    )


def _save(session: Session, dev: Deviation, changes: dict[str, Any]) -> None:
    old = dev.version
    changes = {**changes, "version": old + 1}
    res = session.connection().execute(
        update(Deviation).where(Deviation.id == dev.id, Deviation.version == old).values(**changes)
    )
    if res.rowcount != 1:
        raise Conflict(
            f"deviation {dev.number} was changed by someone else; reload it",
            code="version_conflict",
        )
    for k, v in changes.items():
        set_committed_value(dev, k, v)


def create_deviation(
    session: Session, *, data: DeviationCreate, actor: Actor, source: str | None = None
) -> Deviation:
    """Raise a deviation (any of the centre's staff); source: what raised it, if not a person."""
    _require_staff(actor, "raising a deviation")
    if data.severity not in SEVERITIES:
        raise BadRequest(
            f"severity is one of {', '.join(SEVERITIES)}; not {data.severity!r}",
            code="bad_severity",
        )
    targets = [_resolve(session, actor, x.kind, x.ref) for x in data.links]
    if data.organisation is not None:
        org = session.exec(
            select(Organisation).where(Organisation.name == data.organisation)
        ).first()
        if org is None:
            raise NotFound(f"no organisation {data.organisation!r}", code="unknown_organisation")
    else:
        owners = {t.org_id for t in targets if t.org_id is not None}
        if len(owners) > 1:
            raise Refused(
                "the linked records belong to different organisations; raise one deviation "
                "per organisation",
                code="link_other_organisation",
            )
        org = session.get(Organisation, owners.pop()) if owners else actor.org
    for t in targets:
        _check_org(session, t, org.id)
    if len({(t.kind, t.ref) for t in targets}) != len(targets):
        raise BadRequest("a record is linked twice", code="duplicate_link")
    earlier = None
    if data.references is not None:
        earlier = get_deviation(session, data.references, actor)
    now = utcnow()
    dev = Deviation(
        number=_next_number(session, now.year),
        title=data.title.strip(),
        description=data.description,
        severity=data.severity,
        category=None if blank(data.category) else data.category,
        org_id=org.id,
        source=source,
        references_id=earlier.id if earlier else None,
        raised_by_id=actor.user.id,
        raised_at=now,
    )
    session.add(dev)
    session.flush()
    for t in targets:
        _add_link(session, dev, t, actor)
    session.flush()
    _record(session, actor, "deviation.raise", dev, None, snapshot(session, dev))
    return dev


def raise_deviation(
    session: Session,
    *,
    actor: Actor,
    title: str,
    severity: str,
    description: str,
    links: Iterable[tuple[str, str]],
    source: str | None = None,
) -> Deviation:
    """Open a deviation on behalf of another area (an OOS, a room excursion, a shipment).

    links: (kind, ref) pairs, as a person would give them: ("lot", "AAV9-2611-001").
    """
    try:
        data = DeviationCreate(
            title=title,
            description=description,
            severity=severity,
            links=[LinkIn(kind=k, ref=r) for k, r in links],
        )
    except ValidationError as err:
        where, said = describe(err)
        raise BadRequest(f"the deviation cannot be raised: {where}: {said}") from None
    return create_deviation(session, data=data, actor=actor, source=source)


def transition(
    session: Session, *, number: str, data: DeviationTransitionIn, actor: Actor
) -> Deviation:
    """Move a deviation along its table; closing needs QA's signature, root cause, settled CAPA."""
    dev = get_deviation(session, number, actor)
    if data.version is not None and data.version != dev.version:
        raise Conflict(
            f"deviation {dev.number} is at version {dev.version}, not {data.version}",
            code="version_conflict",
            current_version=dev.version,
        )
    t = TRANSITIONS.get(data.action)
    allowed = allowed_actions(dev)
    if t is not None:
        # The role first: someone who may never do this learns nothing from the state.
        _require_qa(actor, data.action)
    if data.action == "reopen":
        raise Refused(
            f"a closed deviation is not reopened; raise a new deviation that references "
            f"{dev.number}",
            code="illegal_transition",
            state=dev.state,
            allowed=allowed,
        )
    if t is None or dev.state not in t.sources:
        raise Refused(
            f"cannot {data.action} a deviation that is {dev.state}; "
            f"allowed: {', '.join(allowed) or 'none (closed)'}",
            code="illegal_transition" if t else "unknown_action",
            state=dev.state,
            allowed=allowed,
        )
    if data.root_cause is not None and not t.needs_root_cause:
        raise BadRequest(f"{data.action} takes no root_cause", code="unexpected_field")
    changes: dict[str, Any] = {"state": t.target}
    if t.needs_root_cause:
        if blank(data.root_cause):
            raise Refused(
                f"{data.action} needs the root cause", code="missing_fields", missing=["root_cause"]
            )
        changes["root_cause"] = data.root_cause.strip()
    if t.needs_capa_settled:
        unsettled = [c for c in capa_actions(session, dev) if _capa_status(c) == "open"]
        if unsettled:
            ids = ", ".join(f"#{c.id}" for c in unsettled)
            raise Refused(
                f"CAPA actions not done: {ids}; complete them or carry them into another "
                "deviation before closing",
                code="capa_open",
                capa=[c.id for c in unsettled],
            )
    before = snapshot(session, dev)
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
        signed = {**before, **changes, "version": dev.version + 1}
        sig = signatures.sign(
            session,
            actor=actor,
            password=data.signature.password,
            meaning=data.signature.meaning,
            username=data.signature.username,
            record_type="deviation",
            record_id=dev.number,
            content=signed,
        )
        changes.update(signature_id=sig.id, closed_by_id=actor.user.id, closed_at=sig.signed_at)
    elif data.signature is not None:
        raise BadRequest(f"{data.action} takes no signature", code="unexpected_field")
    _save(session, dev, changes)
    after = snapshot(session, dev)
    if sig is not None:
        after["signature"] = signatures.manifestation(sig)
    _record(
        session,
        actor,
        f"deviation.{data.action}",
        dev,
        before,
        after,
        data.reason,
        signature_id=sig.id if sig else None,
    )
    return dev


def _require_active(dev: Deviation, what: str) -> None:
    if dev.state not in ACTIVE:
        raise Refused(
            f"deviation {dev.number} is closed: {what} is no longer possible; raise a new "
            "deviation that references it",
            code="deviation_closed",
        )


def change_link(session: Session, *, number: str, data: LinkChange, actor: Actor) -> Deviation:
    """Link a record to a deviation, or unlink one (with a reason): one audited event."""
    dev = get_deviation(session, number, actor)
    _require_staff(actor, "changing a deviation's links")
    _require_active(dev, "changing its links")
    target = _resolve(session, actor, data.kind, data.ref)
    current = [
        x for x in active_links(session, dev) if (x.kind, x.ref) == (target.kind, target.ref)
    ]
    before = snapshot(session, dev)
    if data.unlink:
        if not current:
            raise Refused(
                f"{target.kind} {target.ref} is not linked to {dev.number}", code="not_linked"
            )
        if blank(data.reason):
            raise Refused("unlinking needs a reason", code="missing_fields", missing=["reason"])
        for link in current:
            link.removed_at, link.removed_by_id = utcnow(), actor.user.id
            session.add(link)
        action = "deviation.unlink"
    else:
        if current:
            raise Conflict(
                f"{target.kind} {target.ref} is linked to {dev.number} already", code="linked"
            )
        _check_org(session, target, dev.org_id)
        _add_link(session, dev, target, actor)
        action = "deviation.link"
    session.flush()
    _save(session, dev, {})
    lot_id = target.lot_id
    if target.sample_id is not None:
        lot_id = session.get(Sample, target.sample_id).lot_id
    _record(
        session,
        actor,
        action,
        dev,
        before,
        snapshot(session, dev),
        data.reason,
        lot_id=lot_id or _lot_of(session, dev),
    )
    return dev


def add_capa(session: Session, *, number: str, data: CapaIn, actor: Actor) -> CapaAction:
    """Add a CAPA action (QA) with its owner and due date."""
    dev = get_deviation(session, number, actor)
    _require_qa(actor, "adding a CAPA action")
    _require_active(dev, "adding CAPA actions")
    owner = session.exec(select(User).where(User.username == data.owner)).first()
    if owner is None or not owner.active or owner.username == "system":
        raise NotFound(f"no active user {data.owner!r}", code="unknown_user")
    owner_org = session.get(Organisation, owner.org_id)
    if owner_org.kind != "centre" or owner.role not in LAB:
        raise Refused(
            f"{owner.username} cannot own a CAPA action: owners are the centre's staff",
            code="bad_owner",
        )
    return _new_capa(session, dev, actor, data.description, owner.id, data.due_on)


def _new_capa(
    session: Session,
    dev: Deviation,
    actor: Actor,
    description: str,
    owner_id: int,
    due_on: date,
    *,
    carried_from: CapaAction | None = None,
    reason: str | None = None,
) -> CapaAction:
    before = snapshot(session, dev)
    capa = CapaAction(
        deviation_id=dev.id,
        description=description,
        owner_id=owner_id,
        due_on=due_on,
        created_by_id=actor.user.id,
        carried_from_id=carried_from.id if carried_from else None,
    )
    session.add(capa)
    session.flush()
    _save(session, dev, {})
    action = "deviation.capa_carried_in" if carried_from else "deviation.capa_add"
    _record(session, actor, action, dev, before, snapshot(session, dev), reason)
    return capa


def _get_capa(session: Session, dev: Deviation, capa_id: int) -> CapaAction:
    capa = session.get(CapaAction, capa_id) if 0 < capa_id <= 2**31 - 1 else None
    if capa is None or capa.deviation_id != dev.id:
        raise NotFound(f"{dev.number} has no CAPA action #{capa_id}", code="unknown_capa")
    return capa


def _require_open_capa(capa: CapaAction) -> None:
    status = _capa_status(capa)
    if status != "open":
        raise Refused(f"CAPA action #{capa.id} is {status} already", code="capa_settled")


def complete_capa(
    session: Session, *, number: str, capa_id: int, data: CapaComplete, actor: Actor
) -> CapaAction:
    """Mark a CAPA action done (its owner or QA), with how its effectiveness was checked."""
    dev = get_deviation(session, number, actor)
    capa = _get_capa(session, dev, capa_id)
    if actor.user.id != capa.owner_id and actor.role not in QA:
        raise Forbidden("a CAPA action is completed by its owner or by QA", code="role_required")
    _require_active(dev, "completing CAPA actions")
    _require_open_capa(capa)
    if blank(data.effectiveness_check):
        raise Refused(
            "say how the action's effectiveness was checked",
            code="missing_fields",
            missing=["effectiveness_check"],
        )
    before = snapshot(session, dev)
    capa.done_at, capa.done_by_id = utcnow(), actor.user.id
    capa.effectiveness_check = data.effectiveness_check.strip()
    session.add(capa)
    session.flush()
    _save(session, dev, {})
    _record(session, actor, "deviation.capa_complete", dev, before, snapshot(session, dev))
    return capa


def carry_capa(
    session: Session, *, number: str, capa_id: int, data: CapaCarry, actor: Actor
) -> CapaAction:
    """Carry an unfinished CAPA action into another open deviation (QA, with a reason)."""
    dev = get_deviation(session, number, actor)
    capa = _get_capa(session, dev, capa_id)
    _require_qa(actor, "carrying a CAPA action")
    _require_active(dev, "carrying its CAPA actions")
    _require_open_capa(capa)
    target = get_deviation(session, data.to, actor)
    if target.id == dev.id:
        raise Refused("a CAPA action is carried into another deviation", code="same_deviation")
    if target.state not in ACTIVE:
        raise Refused(f"{target.number} is closed; carry into an open one", code="deviation_closed")
    if target.org_id != dev.org_id:
        raise Refused(
            f"{target.number} concerns another organisation", code="link_other_organisation"
        )
    before = snapshot(session, dev)
    copy = _new_capa(
        session,
        target,
        actor,
        capa.description,
        capa.owner_id,
        capa.due_on,
        carried_from=capa,
        reason=f"carried from {dev.number}: {data.reason}",
    )
    capa.carried_to_id = copy.id
    session.add(capa)
    session.flush()
    _save(session, dev, {})
    after = {**snapshot(session, dev), "carried_to": target.number}
    _record(session, actor, "deviation.capa_carry", dev, before, after, data.reason)
    return capa
