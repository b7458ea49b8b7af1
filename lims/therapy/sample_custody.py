"""The COI check on custody moves of a treatment episode's samples (receive, ship, hand-over).

A sample that carries an episode's COI is that patient's material: when it changes hands
through the sample moves (the API's transitions, the bench, bulk moves), the COI on its label
is scanned and checked by the rule the episode's own custody moves use
(`episodes.coi_mismatch`). A mismatch stops the move, opens a critical deviation and holds the
episode until QA acknowledges it, exactly as at the episode's moves.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from lims import custody, samples
from lims.accounts.users import Actor
from lims.errors import Refused
from lims.inputs import blank
from lims.models import Sample
from lims.therapy.episodes import coi_mismatch, mismatch_refusal
from lims.therapy.models import Episode

# The sample moves that change who or where holds the material.
CHANGES_OF_CUSTODY = frozenset({"receive", "ship", "hand_over", "infuse"})


def episode_of(session: Session, sample: Sample) -> Episode | None:
    """Return the latest episode whose COI the sample carries, in its organisation, or None."""
    return session.exec(
        select(Episode)
        .where(Episode.coi == sample.coi, Episode.org_id == sample.org_id)
        .order_by(col(Episode.id).desc())
        .limit(1)
    ).first()


def check_sample_custody(
    session: Session,
    sample: Sample,
    t: custody.Transition,
    data: samples.TransitionIn,
    actor: Actor,
) -> None:
    """Refuse a change of custody of an episode's sample without its COI scanned, or with
    another COI (deviation, hold), or while its episode is held by an earlier mismatch.

    A bag is infused only as its episode's infusion (bag and wristband scanned at the bedside):
    the sample's own move 'infuse' follows the episode's, never precedes it.
    """
    if t.action not in CHANGES_OF_CUSTODY:
        return
    ep = episode_of(session, sample) if sample.coi else None
    if t.action == "infuse" and (ep is None or ep.state != "infused"):
        raise Refused(
            f"{sample.barcode} is infused only through its treatment episode's infusion "
            "(the bag and the patient's wristband scanned at the bedside)",
            code="episode_move_required",
        )
    if ep is None:
        return
    done = custody.DONE_WORDS.get(t.action, t.action)
    if blank(data.coi):
        raise Refused(
            f"{sample.barcode} is material of treatment episode {ep.number}: to be {done} it "
            "needs the COI on its label scanned (coi)",
            code="missing_fields",
            missing=["coi"],
            episode=ep.number,
        )
    if ep.held_by:
        raise Refused(
            f"{sample.barcode} is material of {ep.number}, held since a COI mismatch "
            f"(deviation {ep.held_by}): QA acknowledges the mismatch before it changes hands",
            code="episode_held",
            deviation=ep.held_by,
        )
    what = coi_mismatch(ep, bag=sample, label_coi=data.coi, wristband=None)
    if what is not None:
        raise mismatch_refusal(session, ep, actor, t.action, sample, what)


samples.CUSTODY_CHECKS.append(check_sample_custody)
