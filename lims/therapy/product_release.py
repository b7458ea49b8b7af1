"""The quality rules of releasing an episode's cell product (QA, e-signed, in episodes.py).

The final product of an episode is every sample under its COI whose sample type has a release
specification (a cell product, lims.quality.release), still in hand. The episode is released
only when each of them could be released itself: the sampling plan met, results passed and
reviewed, no open or confirmed OOS, four eyes (who recorded a result does not release), and no
critical deviation or open/confirmed OOS on it or on anything it was made from (a pool's
parents included).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from lims import custody
from lims.accounts.users import Actor
from lims.errors import Refused
from lims.models import Sample
from lims.quality import deviations, oos, release
from lims.therapy.models import Episode


def final_products(session: Session, ep: Episode) -> list[Sample]:
    """Return the episode's cell products still in hand, oldest first."""
    stmt = (
        select(Sample)
        .where(Sample.coi == ep.coi, Sample.org_id == ep.org_id)
        .order_by(col(Sample.id))
    )
    return [
        s
        for s in session.exec(stmt).all()
        if s.state not in custody.TERMINAL and release.needs_quality_release(session, s)
    ]


def release_refusal(session: Session, ep: Episode, actor: Actor) -> list[Sample]:
    """Refuse (422, the rule in the code) releasing ep; return the products it releases."""
    products = final_products(session, ep)
    if not products:
        raise Refused(
            f"{ep.number} has no cell product to release: register the final product under "
            f"COI {ep.coi} (a sample type with a release specification) and record its QC",
            code="no_final_product",
        )
    for s in products:
        deviations.refuse_release(session, what=f"{ep.number}'s product {s.barcode}", sample=s)
        oos.refuse_release_of_derivative(
            session, what=f"{ep.number}'s product {s.barcode}", sample=s
        )
        release.sample_release_refusal(session, s, actor)
    return products
