"""The demo centre's cell therapy data: product codes, patients, episodes under way, and two
shipments to clinical sites (one delivered with its logger readings, one in transit)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from lims import samples
from lims.accounts.users import Actor, actor_for
from lims.models import Sample, User, utcnow
from lims.quality import oos, results
from lims.signatures import SignatureIn
from lims.therapy import episodes, isbt, logger, patients, products, shipments
from lims.therapy.models import Episode


def load(
    session: Session,
    spec: dict[str, Any],
    *,
    admin: Actor,
    qa: Actor,
    tech: Actor,
    password: str | None = None,
) -> None:
    """Load the "therapy" part of the demo file through the same operations users call."""
    for code in spec.get("product_codes", []):
        products.add_product_code(session, data=products.ProductCodeIn(**code), actor=admin)
    product_bags: dict[str, tuple[str, str]] = {}
    for person in spec.get("patients", []):
        p = patients.register_patient(
            session,
            data=patients.PatientIn(**{k: v for k, v in person.items() if k != "episode"}),
            actor=qa,
        )
        plan = person.get("episode")
        if plan:
            product = _episode(session, p.coi, plan, qa=qa, tech=tech, password=password)
            if product is not None:
                product_bags[person["hospital_id"]] = (product.barcode, p.coi)
    for plan in spec.get("shipments", []):
        if plan["patient"] in product_bags:  # released only when QA's password was given
            _shipment(session, plan, product_bags[plan["patient"]], tech=tech)


def _shipment(session: Session, plan: dict[str, Any], bag: tuple[str, str], *, tech: Actor) -> None:
    """Pack and dispatch a demo shipment; with a receiver, read its logger and deliver it."""
    barcode, coi = bag
    s = shipments.create(
        session,
        data=shipments.ShipmentCreate(
            site=plan["site"],
            product_code=plan["product_code"],
            shipper=plan["shipper"],
            logger_id=plan["logger_id"],
            containers=[shipments.ContainerIn(bag=barcode, coi=coi)],
        ),
        actor=tech,
    )
    shipments.dispatch(session, number=s.number, actor=tech)
    if not plan.get("received_by"):
        return
    # A dry shipper's logger: about -185 C, drifting a little as the nitrogen evaporates.
    start = utcnow() - timedelta(hours=plan["hours_ago"])
    step = plan["readings_every_min"]
    lines = ["time,temperature_c"]
    for i in range(plan["hours_ago"] * 60 // step):
        t = -186.0 + i * 0.02 + 0.6 * math.sin(i / 5)
        ts = start + timedelta(minutes=i * step)
        lines.append(f"{ts:%Y-%m-%dT%H:%M:%SZ},{t:.1f}")
    user = session.exec(select(User).where(User.username == plan["received_by"])).one()
    site = actor_for(session, user)
    logger.import_readings(session, number=s.number, text="\n".join(lines), actor=site)
    shipments.receive(
        session,
        number=s.number,
        data=shipments.ReceiptIn(scans=[shipments.ScanIn(bag=barcode, coi=coi)]),
        actor=site,
    )


def _episode(
    session: Session,
    coi: str,
    plan: dict[str, Any],
    *,
    qa: Actor,
    tech: Actor,
    password: str | None,
) -> Sample | None:
    """Enrol, collect and move an episode along its plan; return its cell product, if made.

    The product is registered with its QC reviewed just before QA's signed release (or after the
    last move when the plan stops short of release, so QA can release it on the page).
    """
    ep = episodes.enrol(
        session,
        data=episodes.EpisodeCreate(
            coi=coi, project=plan["project"], product_code=plan.get("product_code")
        ),
        actor=tech,
    )
    bag = samples.register_sample(
        session,
        actor=tech,
        data=samples.SampleCreate(coi=coi, project=plan["project"], **plan["bag"]),
    )
    product: Sample | None = None
    for action in plan["moves"]:
        fields: dict[str, Any] = {}
        if episodes.TRANSITIONS[action].custody:
            fields = {"bag": bag.barcode, "coi": coi}
        if action == "release":
            if password is None:
                break  # a signed release needs QA's password; the demo stops before it
            product = _product(session, ep, plan["product"], qa=qa, tech=tech, password=password)
            din = plan["din"]
            fields = {
                "din": din + isbt.din_check(din),
                "product_code": plan["product_code"],
                "expires_on": utcnow().date() + timedelta(days=plan.get("shelf_life_days", 180)),
                "signature": SignatureIn(password=password, meaning="release"),
            }
        episodes.transition(
            session,
            number=ep.number,
            data=episodes.EpisodeTransitionIn(action=action, **fields),
            actor=qa if action in ("release", "fail") else tech,
        )
        if action == "receive":
            samples.transition(
                session,
                barcode=bag.barcode,
                actor=tech,
                data=samples.TransitionIn(action="receive", condition=plan["condition"], coi=coi),
            )
    if product is None and plan.get("product") and password:
        product = _product(session, ep, plan["product"], qa=qa, tech=tech, password=password)
    return product


def _product(
    session: Session,
    ep: Episode,
    plan: dict[str, Any],
    *,
    qa: Actor,
    tech: Actor,
    password: str,
) -> Sample:
    """Register the episode's cell product in quarantine, QC recorded (tech) and reviewed (QA)."""
    fields = {k: v for k, v in plan.items() if k != "qc"}
    s = samples.register_sample(
        session, actor=tech, data=samples.SampleCreate(coi=ep.coi, **fields)
    )
    for action, extra in (("receive", {"condition": "intact", "coi": ep.coi}), ("quarantine", {})):
        samples.transition(
            session,
            barcode=s.barcode,
            actor=tech,
            data=samples.TransitionIn(action=action, **extra),
        )
    for test, result in plan.get("qc", []):
        qc = oos.record_sample_qc(
            session, sample=s, data=results.ResultIn(test=test, result=result), actor=tech
        )
        results.review(
            session,
            result=qc,
            actor=qa,
            data=results.ReviewIn(signature=SignatureIn(password=password, meaning="review")),
        )
    return s
