"""Cold-chain shipments of released product to clinical sites: the manifest, the data logger,
the product's temperature limits, and receipt at the site by scanning each bag and its COI.

A shipment moves along its table (data, like the episodes'): packed -> dispatched ->
received_at_site | rejected, and packed -> cancelled. Dispatch ships each episode on the manifest
and receipt receives it at the site through the episode machine (episodes.move), so the COI
check and its deviation are the episodes' own. Logger readings are imported from a CSV file; a
reading outside the limits marks the shipment and opens a deviation linked to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from lims import audit, samples
from lims.accounts.users import Actor, system_actor
from lims.errors import BadRequest, Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line, Text, blank
from lims.models import Deviation, DeviationLink, Organisation, Sample, utcnow
from lims.quality import deviations
from lims.roles import LAB, QA, SITE
from lims.therapy import episodes, product_release, products
from lims.therapy.models import Episode, LoggerReading, ProductCode, Shipment, ShipmentContainer

STATES = ("packed", "dispatched", "received_at_site", "rejected", "cancelled")
# Readings come from the logger once the box is on its way, and may be read out at the site.
READABLE = ("dispatched", "received_at_site", "rejected")


@dataclass(frozen=True)
class ShipmentTransition:
    action: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    needs_reason: bool = False
    description: str = ""


TRANSITIONS: dict[str, ShipmentTransition] = {
    t.action: t
    for t in (
        ShipmentTransition(
            "dispatch",
            frozenset({"packed"}),
            "dispatched",
            frozenset(LAB),
            description="the box leaves the centre; every episode on it is shipped",
        ),
        ShipmentTransition(
            "receive",
            frozenset({"dispatched"}),
            "received_at_site",
            frozenset(LAB + SITE),
            description="the site scans every bag and its COI and takes delivery",
        ),
        ShipmentTransition(
            "reject",
            frozenset({"dispatched"}),
            "rejected",
            frozenset(QA + SITE),
            needs_reason=True,
            description="the site refuses the box (reason)",
        ),
        ShipmentTransition(
            "cancel",
            frozenset({"packed"}),
            "cancelled",
            frozenset(LAB),
            needs_reason=True,
            description="the box will not be sent (reason)",
        ),
    )
}


def allowed_actions(state: str) -> list[str]:
    """Return the actions the table allows from state, in table order."""
    return [a for a, t in TRANSITIONS.items() if state in t.sources]


class ContainerIn(Input):
    bag: Line = Field(min_length=1, max_length=64, description="the bag's barcode, scanned")
    coi: Line = Field(min_length=1, max_length=64, description="the COI on its label, scanned")
    episode: Line | None = Field(
        default=None, max_length=32, description="the episode, when the COI has several open"
    )


class ShipmentCreate(Input):
    site: Line = Field(min_length=1, max_length=64, description="the clinical site's name")
    product_code: Line = Field(min_length=1, max_length=8, description="ISBT 128 code")
    shipper: Line = Field(min_length=1, max_length=200, description="courier and service")
    logger_id: Line = Field(min_length=1, max_length=64, description="the data logger's id")
    containers: list[ContainerIn] = Field(min_length=1, max_length=50)


class ContainersIn(Input):
    containers: list[ContainerIn] = Field(min_length=1, max_length=50)
    version: int | None = Field(default=None, ge=1)


class ScanIn(Input):
    bag: Line = Field(min_length=1, max_length=64, description="the bag's barcode, scanned")
    coi: Line = Field(min_length=1, max_length=64, description="the COI on its label, scanned")


class ReceiptIn(Input):
    scans: list[ScanIn] = Field(min_length=1, max_length=50)
    version: int | None = Field(default=None, ge=1)


class ShipmentTransitionIn(Input):
    action: Line = Field(min_length=1, max_length=32, description="cancel or reject")
    reason: Text | None = Field(default=None, max_length=2000)
    version: int | None = Field(default=None, ge=1)


class AcknowledgeIn(Input):
    reason: Text = Field(min_length=1, max_length=2000, description="what QA found and decided")
    version: int | None = Field(default=None, ge=1)


# --- who sees what ----------------------------------------------------------------------------


def _visible(actor: Actor, s: Shipment) -> bool:
    """A clinical site sees what was sent to it; a client its own material; the centre all."""
    if actor.role == "site":
        return s.site_id == actor.org.id and s.dispatched_at is not None
    return actor.can_see(s.org_id)


def find_shipment(session: Session, number: str, actor: Actor) -> Shipment | None:
    """Return the shipment numbered number if the actor may see it, else None."""
    s = session.exec(select(Shipment).where(Shipment.number == number.strip().upper())).first()
    if s is None or not _visible(actor, s):
        return None
    return s


def get_shipment(session: Session, number: str, actor: Actor) -> Shipment:
    """Return a shipment the actor may see; one they may not does not exist (404)."""
    s = find_shipment(session, number, actor)
    if s is None:
        raise NotFound(f"no shipment {number!r}", code="unknown_shipment")
    return s


def list_shipments(session: Session, actor: Actor, *, state: str | None = None) -> list[Shipment]:
    """Return the shipments the actor may see, newest first."""
    if state and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}", code="bad_filter")
    stmt = select(Shipment).order_by(col(Shipment.id).desc()).limit(500)
    if actor.role == "site":
        stmt = stmt.where(
            Shipment.site_id == actor.org.id, col(Shipment.dispatched_at).is_not(None)
        )
    elif not actor.sees_all:
        stmt = stmt.where(Shipment.org_id == actor.org.id)
    if state:
        stmt = stmt.where(Shipment.state == state)
    return list(session.exec(stmt).all())


def _link_target(session: Session, actor: Actor, ref: str) -> tuple[str, int]:
    s = find_shipment(session, ref, actor)
    if s is None:
        raise NotFound(f"no shipment {ref!r}", code="unknown_shipment")
    return s.number, s.org_id


# A deviation may name a shipment: quality finds it through this (it may not import therapy).
deviations.LINK_RESOLVERS["shipment"] = _link_target


def containers(session: Session, s: Shipment) -> list[tuple[ShipmentContainer, Sample, Episode]]:
    """Return the manifest: each container with its sample and episode, in packing order."""
    stmt = (
        select(ShipmentContainer, Sample, Episode)
        .join(Sample, col(Sample.id) == ShipmentContainer.sample_id)
        .join(Episode, col(Episode.id) == ShipmentContainer.episode_id)
        .where(ShipmentContainer.shipment_id == s.id)
        .order_by(col(ShipmentContainer.id))
    )
    return [(c, smp, ep) for c, smp, ep in session.exec(stmt).all()]


def _ts(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def snapshot(session: Session, s: Shipment) -> dict[str, Any]:
    """Return the shipment's state as audit events record it (COIs, never patient identifiers)."""
    return {
        "state": s.state,
        "version": s.version,
        "site": session.get(Organisation, s.site_id).name,
        "shipper": s.shipper,
        "logger_id": s.logger_id,
        "limits_c": [s.min_temp_c, s.max_temp_c],
        "manifest": [
            {"bag": smp.barcode, "episode": ep.number, "coi": c.coi}
            for c, smp, ep in containers(session, s)
        ],
        "reason": s.reason,
        "held_by": s.held_by,
        "excursion": s.excursion,
    }


def shipment_dict(session: Session, s: Shipment, *, with_timeline: bool = False) -> dict[str, Any]:
    """Return a shipment's JSON: manifest by bag, episode and COI; never patient identifiers."""
    code = session.get(ProductCode, s.product_code_id)
    manifest = containers(session, s)
    out: dict[str, Any] = {
        "number": s.number,
        "state": s.state,
        "version": s.version,
        "organisation": session.get(Organisation, s.org_id).name,
        "site": session.get(Organisation, s.site_id).name,
        "site_name": session.get(Organisation, s.site_id).display_name,
        "product_code": code.code,
        "product": code.description,
        "min_temp_c": s.min_temp_c,
        "max_temp_c": s.max_temp_c,
        "shipper": s.shipper,
        "logger_id": s.logger_id,
        "reason": s.reason,
        "held_by": s.held_by,
        "readings": s.readings,
        "excursion": s.excursion,
        "excursion_first": _ts(s.excursion_first),
        "excursion_last": _ts(s.excursion_last),
        "min_seen_c": s.min_seen_c,
        "max_seen_c": s.max_seen_c,
        "deviations": deviation_numbers(session, s),
        "dispatched_at": _ts(s.dispatched_at),
        "received_at": _ts(s.received_at),
        "created_at": _ts(s.created_at),
        "allowed_actions": allowed_actions(s.state),
        "containers": [
            {
                "bag": smp.barcode,
                "coi": ep.coi,
                "episode": ep.number,
                "episode_state": ep.state,
                "received_at": _ts(c.received_at),
            }
            for c, smp, ep in manifest
        ],
    }
    if with_timeline:
        seen: dict[int, Episode] = {ep.id: ep for _c, _s, ep in manifest}
        out["episodes"] = [
            {
                "number": ep.number,
                "coi": ep.coi,
                "state": ep.state,
                "timeline": _timeline(session, ep),
            }
            for ep in seen.values()
        ]
    return out


def _timeline(session: Session, ep: Episode) -> list[dict[str, Any]]:
    # Who did what and when: the trail never holds a patient identifier (patients.py).
    return [
        {k: e[k] for k in ("seq", "ts", "actor", "action", "entity_type", "entity_id")}
        for e in episodes.timeline(session, ep)
    ]


def deviation_numbers(session: Session, s: Shipment) -> list[str]:
    """Return the deviations that name the shipment, oldest first."""
    stmt = (
        select(Deviation.number)
        .join(DeviationLink, col(DeviationLink.deviation_id) == Deviation.id)
        .where(DeviationLink.kind == "shipment", DeviationLink.ref == s.number)
        .order_by(col(Deviation.id))
    )
    found = list(session.exec(stmt).all())
    if s.held_by and s.held_by not in found:
        found.append(s.held_by)
    return found


def readings(session: Session, s: Shipment) -> list[tuple[datetime, float]]:
    """Return the shipment's logger readings, by time."""
    stmt = (
        select(LoggerReading.ts, LoggerReading.temp_c)
        .where(LoggerReading.shipment_id == s.id)
        .order_by(col(LoggerReading.ts), col(LoggerReading.id))
    )
    return [(ts, t) for ts, t in session.exec(stmt).all()]


# --- changing ---------------------------------------------------------------------------------


def _require_staff(actor: Actor, what: str) -> None:
    if not (actor.sees_all and actor.role in LAB):
        raise Forbidden(f"{what} is for the centre's staff", code="role_required")


def _record(
    session: Session,
    actor: Actor,
    action: str,
    s: Shipment,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    reason: str | None = None,
) -> None:
    audit.record_by(
        session,
        actor,
        action=action,
        entity_type="shipment",
        entity_id=s.number,
        before=before,
        after=after,
        reason=reason,
        org_id=s.org_id,
    )


def _save(session: Session, s: Shipment, changes: dict[str, Any]) -> None:
    old = s.version
    changes = {**changes, "version": old + 1, "updated_at": utcnow()}
    res = session.connection().execute(
        update(Shipment).where(Shipment.id == s.id, Shipment.version == old).values(**changes)
    )
    if res.rowcount != 1:
        raise Conflict(
            f"shipment {s.number} was changed by someone else; reload it", code="version_conflict"
        )
    for k, v in changes.items():
        set_committed_value(s, k, v)


def _check_version(s: Shipment, version: int | None) -> None:
    if version is not None and version != s.version:
        raise Conflict(
            f"shipment {s.number} is at version {s.version}, not {version}; reload it",
            code="version_conflict",
            current_version=s.version,
        )


def _check_move(s: Shipment, action: str, role: str) -> ShipmentTransition:
    t = TRANSITIONS[action]
    if role not in t.roles:
        raise Forbidden(
            f"{action} needs the role {' or '.join(sorted(t.roles))}; you are {role}",
            code="role_required",
        )
    if s.state not in t.sources:
        allowed = allowed_actions(s.state)
        raise Refused(
            f"a shipment that is {s.state.replace('_', ' ')} cannot be {t.target.replace('_', ' ')}"
            f"; allowed: {', '.join(allowed) or 'none (closed)'}",
            code="illegal_transition",
            state=s.state,
            allowed=allowed,
        )
    return t


def list_sites(session: Session) -> list[Organisation]:
    """Return the clinical sites product may be shipped to, by name."""
    stmt = select(Organisation).where(Organisation.kind == "clinical_site")
    return list(session.exec(stmt.order_by(col(Organisation.name))).all())


def _site(session: Session, name: str) -> Organisation:
    org = session.exec(select(Organisation).where(Organisation.name == name.strip())).first()
    if org is None or org.kind != "clinical_site":
        raise NotFound(
            f"no clinical site {name!r} (flask --app app setup clinical-site)",
            code="unknown_site",
        )
    return org


def _pack(
    session: Session, s: Shipment, data: ContainerIn, actor: Actor, packed: set[int]
) -> ShipmentContainer:
    """Put one bag on the manifest after checking it is the released product of its episode."""
    bag = samples.get_sample(session, data.bag, actor)
    if bag.id in packed:
        raise BadRequest(f"bag {bag.barcode} is on the manifest twice", code="duplicate_container")
    busy = session.exec(
        select(Shipment.number)
        .join(ShipmentContainer, col(ShipmentContainer.shipment_id) == Shipment.id)
        .where(
            ShipmentContainer.sample_id == bag.id,
            col(Shipment.state).in_(("packed", "dispatched", "received_at_site")),
        )
    ).first()
    if busy is not None:
        raise Conflict(f"bag {bag.barcode} is on shipment {busy} already", code="already_shipped")
    if data.episode:
        ep = episodes.get_episode(session, data.episode, actor)
    else:
        open_eps = session.exec(
            select(Episode).where(
                Episode.coi == bag.coi,
                Episode.org_id == bag.org_id,
                col(Episode.state).not_in(tuple(episodes.TERMINAL)),
            )
        ).all()
        if len(open_eps) != 1:
            raise Refused(
                f"bag {bag.barcode}'s COI has {len(open_eps) or 'no'} open episodes; "
                "name the episode it is the product of",
                code="episode_required",
            )
        ep = open_eps[0]
    # The COI rule is the episodes' own: a mismatch stops packing and opens a deviation.
    episodes.refuse_mismatch(session, ep, actor=actor, action="ship", bag=bag, label_coi=data.coi)
    if ep.state != "released":
        raise Refused(
            f"episode {ep.number} is {ep.state.replace('_', ' ')}: only released product ships",
            code="episode_not_released",
        )
    if bag.id not in {p.id for p in product_release.final_products(session, ep)}:
        raise Refused(
            f"bag {bag.barcode} is not {ep.number}'s cell product: only the released final "
            "product ships",
            code="not_final_product",
        )
    if ep.product_code_id != s.product_code_id:
        raise Refused(
            f"episode {ep.number}'s product is not this shipment's; pack it in another",
            code="product_mismatch",
        )
    if ep.org_id != s.org_id:
        raise Refused(
            "a shipment carries one organisation's material; pack this bag in another",
            code="organisation_mismatch",
        )
    c = ShipmentContainer(
        shipment_id=s.id, sample_id=bag.id, episode_id=ep.id, coi=data.coi.strip().upper()
    )
    session.add(c)
    packed.add(bag.id)
    return c


def create(session: Session, *, data: ShipmentCreate, actor: Actor) -> Shipment:
    """Pack a shipment: site, product (its transit limits), shipper, logger and the bags."""
    _require_staff(actor, "packing a shipment")
    site = _site(session, data.site)
    code = products.get_product_code(session, data.product_code)
    if code.min_temp_c is None or code.max_temp_c is None:
        raise Refused(
            f"product code {code.code} has no transit temperature limits; the admin sets them "
            "(flask --app app setup product-code ... --min-temp --max-temp)",
            code="no_temperature_limits",
        )
    first = samples.get_sample(session, data.containers[0].bag, actor)
    now = utcnow()
    serial = samples.next_serial(session, f"shipment-{now.year}")
    s = Shipment(
        number=f"SH-{now.year % 100:02d}-{serial:04d}",
        org_id=first.org_id,
        site_id=site.id,
        product_code_id=code.id,
        min_temp_c=code.min_temp_c,
        max_temp_c=code.max_temp_c,
        shipper=data.shipper.strip(),
        logger_id=data.logger_id.strip(),
    )
    session.add(s)
    session.flush()
    packed: set[int] = set()
    for c in data.containers:
        _pack(session, s, c, actor, packed)
    session.flush()
    _record(session, actor, "shipment.pack", s, None, snapshot(session, s))
    return s


def add_containers(session: Session, *, number: str, data: ContainersIn, actor: Actor) -> Shipment:
    """Put more bags on a packed shipment's manifest."""
    _require_staff(actor, "packing a shipment")
    s = get_shipment(session, number, actor)
    _check_version(s, data.version)
    if s.state != "packed":
        raise Refused(
            f"shipment {s.number} is {s.state.replace('_', ' ')}: only a packed box takes bags",
            code="illegal_transition",
            state=s.state,
            allowed=allowed_actions(s.state),
        )
    before = snapshot(session, s)
    packed = {c.sample_id for c, _s, _e in containers(session, s)}
    for c in data.containers:
        _pack(session, s, c, actor, packed)
    session.flush()
    _save(session, s, {})
    _record(session, actor, "shipment.add_containers", s, before, snapshot(session, s))
    return s


def _per_episode(
    manifest: list[tuple[ShipmentContainer, Sample, Episode]],
) -> dict[int, list[tuple[ShipmentContainer, Sample, Episode]]]:
    out: dict[int, list[tuple[ShipmentContainer, Sample, Episode]]] = {}
    for row in manifest:
        out.setdefault(row[2].id, []).append(row)
    return out


def _move_episode(
    session: Session,
    s: Shipment,
    rows: list[tuple[ShipmentContainer, Sample, Episode]],
    action: str,
    coi_of: dict[str, str],
    actor: Actor,
) -> None:
    """Move one episode on the manifest with its first bag; its other bags follow in custody
    (one event each). coi_of: each bag's barcode -> the COI scanned or listed for it."""
    _c, bag, ep = rows[0]
    episodes.move(
        session,
        ep,
        data=episodes.EpisodeTransitionIn(action=action, bag=bag.barcode, coi=coi_of[bag.barcode]),
        actor=actor,
        bag=bag,
        shipment=s.number,
    )
    for _other, other_bag, _ep in rows[1:]:
        episodes.follow(
            session,
            ep,
            action=action,
            bag=other_bag,
            label_coi=coi_of[other_bag.barcode],
            actor=actor,
            shipment=s.number,
        )


def dispatch(
    session: Session, *, number: str, actor: Actor, version: int | None = None
) -> Shipment:
    """Send the box: every episode on the manifest is shipped by the episode machine."""
    if not (actor.sees_all and actor.role in LAB):
        raise Forbidden("dispatch is for the centre's staff", code="role_required")
    s = get_shipment(session, number, actor)
    _check_version(s, version)
    _check_move(s, "dispatch", actor.role)
    manifest = containers(session, s)
    if not manifest:
        raise Refused(f"shipment {s.number} has no bags on it", code="empty_manifest")
    for rows in _per_episode(manifest).values():
        ep = rows[0][2]
        for other, other_bag, _ep in rows[1:]:
            episodes.refuse_mismatch(
                session, ep, actor=actor, action="ship", bag=other_bag, label_coi=other.coi
            )
        _move_episode(session, s, rows, "ship", {b.barcode: c.coi for c, b, _e in rows}, actor)
    before = snapshot(session, s)
    _save(session, s, {"state": "dispatched", "dispatched_at": utcnow()})
    _record(session, actor, "shipment.dispatch", s, before, snapshot(session, s))
    return s


def _held_refusal(s: Shipment, actor: Actor, err: Refused | None, what: str) -> Refused:
    """Make a receipt refusal hold the shipment: with the episode's COI deviation (err), or a
    deviation of its own linked to the shipment (a bag that is not on the manifest)."""
    number = s.number
    if err is None:
        err = Refused(
            f"MANIFEST MISMATCH - STOP: {what}; receipt refused, set the bag aside",
            code="manifest_mismatch",
            shipment=number,
        )
    first = err.after_rollback

    def hold(db: Session, config: Any) -> None:
        if first is not None:
            first(db, config)
            dev_number = err.extra["deviation"]
        else:
            raiser = actor if actor.sees_all and actor.role in LAB else system_actor(db)
            dev = deviations.raise_deviation(
                db,
                actor=raiser,
                title=f"Manifest mismatch at receipt of {number}",
                severity="critical",
                description=f"{actor.username} scanned at receipt of shipment {number}: {what}. "
                "The receipt was refused.",
                links=[("shipment", number)],
                source="COI check",
            )
            dev_number = dev.number
            err.message = f"{err.message}; deviation {dev_number} opened, QA acknowledges it"
            err.extra["deviation"] = dev_number
        row = db.exec(select(Shipment).where(Shipment.number == number)).one()
        before = snapshot(db, row)
        _save(db, row, {"held_by": dev_number})
        _record(
            db,
            actor,
            "shipment.receipt_refused",
            row,
            before,
            {**snapshot(db, row), "found": what},
            reason=err.message,
        )

    err.after_rollback = hold
    return err


def receive(session: Session, *, number: str, data: ReceiptIn, actor: Actor) -> Shipment:
    """Take delivery at the site: every bag on the manifest scanned with the COI on its label.

    A bag that is not on the manifest, or whose COI is not its episode's, stops the receipt,
    opens a critical deviation and holds the shipment until QA acknowledges it.
    """
    if actor.role not in LAB + SITE:
        raise Forbidden(
            f"receipt needs a site, technician, qa or admin role; you are {actor.role}",
            code="role_required",
        )
    if actor.role in LAB and not actor.sees_all:
        raise Forbidden("receipt is for the site's or the centre's staff", code="role_required")
    s = get_shipment(session, number, actor)
    _check_version(s, data.version)
    _check_move(s, "receive", actor.role)
    if s.held_by:
        raise Refused(
            f"{s.number} is held since a mismatch at receipt (deviation {s.held_by}): QA "
            "acknowledges it before the receipt is tried again",
            code="shipment_held",
            deviation=s.held_by,
        )
    manifest = containers(session, s)
    by_bag = {smp.barcode: (c, smp, ep) for c, smp, ep in manifest}
    scanned: dict[str, str] = {}
    for scan in data.scans:
        code = scan.bag.strip().upper()
        if code in scanned:
            raise BadRequest(f"bag {code} is scanned twice", code="duplicate_scan")
        if code not in by_bag:
            raise _held_refusal(s, actor, None, f"bag {code} is not on the manifest of {s.number}")
        _c, bag, ep = by_bag[code]
        try:
            episodes.refuse_mismatch(
                session, ep, actor=actor, action="receive_at_site", bag=bag, label_coi=scan.coi
            )
        except Refused as err:
            raise _held_refusal(s, actor, err, err.message) from None
        scanned[code] = scan.coi
    missing = [b for b in by_bag if b not in scanned]
    if missing:
        raise Refused(
            f"scan every bag on the manifest before taking delivery; not yet: {', '.join(missing)}",
            code="containers_missing",
            missing=missing,
        )
    now = utcnow()
    for rows in _per_episode(manifest).values():
        _move_episode(session, s, rows, "receive_at_site", scanned, actor)
    session.connection().execute(
        update(ShipmentContainer)
        .where(ShipmentContainer.shipment_id == s.id)
        .values(received_at=now)
    )
    before = snapshot(session, s)
    _save(session, s, {"state": "received_at_site", "received_at": now})
    _record(
        session,
        actor,
        "shipment.receive",
        s,
        before,
        {**snapshot(session, s), "scanned": sorted(scanned)},
    )
    return s


def transition(
    session: Session, *, number: str, data: ShipmentTransitionIn, actor: Actor
) -> Shipment:
    """Cancel a packed shipment or reject a dispatched one, with a reason."""
    if data.action not in ("cancel", "reject"):
        raise Refused(
            f"unknown action {data.action!r}: cancel or reject here; dispatch and receive "
            "have their own requests",
            code="unknown_action",
        )
    t = TRANSITIONS[data.action]
    if actor.role not in t.roles or (actor.role in LAB and not actor.sees_all):
        raise Forbidden(
            f"{t.action} needs the role {' or '.join(sorted(t.roles))}; you are {actor.role}",
            code="role_required",
        )
    s = get_shipment(session, number, actor)
    _check_version(s, data.version)
    _check_move(s, t.action, actor.role)
    if blank(data.reason):
        raise Refused(f"{t.action} needs a reason", code="missing_fields", missing=["reason"])
    if t.action == "reject":
        # Its episodes are not left 'shipped': each is returned, in front of QA (fail, or the
        # bag back at the centre), one event each. The bags stay in transit until the centre
        # scans them back in (receive): nobody has them in hand yet.
        for ep in {ep.id: ep for _c, _s, ep in containers(session, s)}.values():
            if ep.state == "shipped":
                episodes.move(
                    session,
                    ep,
                    data=episodes.EpisodeTransitionIn(
                        action="return",
                        reason=f"shipment {s.number} rejected: {data.reason.strip()}"[:2000],
                    ),
                    actor=actor,
                )
    before = snapshot(session, s)
    _save(session, s, {"state": t.target, "reason": data.reason.strip()})
    _record(session, actor, f"shipment.{t.action}", s, before, snapshot(session, s), data.reason)
    return s


def acknowledge(session: Session, *, number: str, data: AcknowledgeIn, actor: Actor) -> Shipment:
    """QA acknowledges the mismatch that holds a shipment (and its episode), with a reason."""
    if actor.role not in QA:
        raise Forbidden(
            f"acknowledging a mismatch needs the role qa; you are {actor.role}",
            code="role_required",
        )
    s = get_shipment(session, number, actor)
    _check_version(s, data.version)
    if not s.held_by:
        raise Refused(f"{s.number} is not held: nothing to acknowledge", code="not_held")
    if blank(data.reason):
        raise Refused("acknowledging needs a reason", code="missing_fields", missing=["reason"])
    held_by = s.held_by
    for _c, _smp, ep in containers(session, s):
        if ep.held_by == held_by:
            # The episode was held by the same COI mismatch: its own acknowledgement, its event.
            episodes.acknowledge_mismatch(
                session,
                number=ep.number,
                data=episodes.AcknowledgeIn(reason=data.reason),
                actor=actor,
            )
    before = snapshot(session, s)
    _save(session, s, {"held_by": None})
    _record(
        session,
        actor,
        "shipment.acknowledge_mismatch",
        s,
        before,
        {**snapshot(session, s), "deviation": held_by},
        reason=data.reason,
    )
    return s


# --- data-logger readings ---------------------------------------------------------------------
