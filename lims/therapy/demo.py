"""The demo centre's cell therapy data: product codes, a patient, an episode under way."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from lims import samples
from lims.accounts.users import Actor
from lims.quality import oos, results
from lims.signatures import SignatureIn
from lims.therapy import episodes, patients, products
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
    for person in spec.get("patients", []):
        p = patients.register_patient(
            session,
            data=patients.PatientIn(**{k: v for k, v in person.items() if k != "episode"}),
            actor=qa,
        )
        plan = person.get("episode")
        if plan:
            ep = _episode(session, p.coi, plan, qa=qa, tech=tech)
            if plan.get("product") and password:
                _product(session, ep, plan["product"], qa=qa, tech=tech, password=password)


def _episode(
    session: Session, coi: str, plan: dict[str, Any], *, qa: Actor, tech: Actor
) -> Episode:
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
    for action in plan["moves"]:
        fields: dict[str, Any] = {}
        if episodes.TRANSITIONS[action].custody:
            fields = {"bag": bag.barcode, "coi": coi}
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
    return ep


def _product(
    session: Session,
    ep: Episode,
    plan: dict[str, Any],
    *,
    qa: Actor,
    tech: Actor,
    password: str,
) -> None:
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
