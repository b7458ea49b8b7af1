"""Deviations and CAPA: raise, list, read, investigate and close (QA e-signature), links, CAPA."""

from __future__ import annotations

from apiflask import APIBlueprint
from pydantic import Field

from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, Out, SignatureOut, answers
from lims.boundary import current_actor, get_db, write
from lims.quality import deviations
from lims.quality.deviations import (
    CapaCarry,
    CapaComplete,
    CapaIn,
    DeviationCreate,
    DeviationTransitionIn,
    LinkChange,
)

bp = APIBlueprint("deviations", __name__, url_prefix="/api", tag="Deviations")


class DeviationQuery(QueryModel):
    state: str | None = Field(
        default=None, max_length=16, description="open, investigation, closed"
    )
    severity: str | None = Field(default=None, max_length=16, description="minor, major, critical")
    lot: str | None = Field(default=None, max_length=64, description="linked to this lot")
    sample: str | None = Field(default=None, max_length=64, description="linked to this sample")


class DeviationLinkOut(Out):
    kind: str = Field(description="lot, sample, room, print_job or shipment")
    ref: str
    added_by: str | None = None
    added_at: str | None = None


class CapaOut(Out):
    id: int
    description: str
    owner: str | None
    due_on: str
    done_at: str | None
    done_by: str | None
    effectiveness_check: str | None
    carried_to: str | None = Field(description="the deviation that took it over")
    carried_from: str | None
    status: str = Field(description="open, done or carried")
    overdue: bool


class DeviationOut(Out):
    number: str = Field(description="e.g. DEV-26-0001")
    title: str
    description: str
    severity: str
    category: str | None
    organisation: str
    state: str
    version: int
    root_cause: str | None
    references: str | None = Field(description="the earlier deviation this one follows up")
    source: str | None
    raised_by: str | None
    raised_at: str
    closed_by: str | None
    closed_at: str | None
    links: list[DeviationLinkOut]
    capa: list[CapaOut]
    signature: SignatureOut | None
    allowed_actions: list[str]
    blocks_release: bool = Field(description="critical and not closed: linked lots/samples held")


class DeviationLine(Out):
    number: str
    title: str
    severity: str
    state: str
    organisation: str
    raised_at: str
    links: list[DeviationLinkOut]


class DeviationsOut(Out):
    deviations: list[DeviationLine]


# The OpenAPI document describes the models of lims.api.schemas; these join them.
schemas.MODELS.extend([DeviationLinkOut, CapaOut, DeviationOut, DeviationLine, DeviationsOut])


def _answer(number: str) -> dict:
    db = get_db()
    return deviations.deviation_dict(db, deviations.get_deviation(db, number, current_actor()))


@bp.post("/deviations")
@answers(bp, DeviationOut, *WRITE, 404, status=201)
@bp.input(DeviationCreate, arg_name="data")
@write
def raise_deviation(data: DeviationCreate):
    """Raise a deviation (centre staff), linked to the lots, samples, rooms, print jobs it hits."""
    db = get_db()
    dev = deviations.create_deviation(db, data=data, actor=current_actor())
    return deviations.deviation_dict(db, dev), 201


@bp.get("/deviations")
@answers(bp, DeviationsOut, *READ)
@bp.input(DeviationQuery, location="query", arg_name="q")
def list_deviations(q: DeviationQuery):
    """List the deviations you may see, newest first."""
    db = get_db()
    rows = deviations.list_deviations(
        db, current_actor(), state=q.state, severity=q.severity, lot=q.lot, sample=q.sample
    )
    return {"deviations": deviations.summaries(db, rows)}


@bp.get("/deviations/<number>")
@answers(bp, DeviationOut, *READ, 404)
def get_deviation(number: str):
    """Return a deviation with its links, CAPA actions and closing signature."""
    return _answer(number)


@bp.post("/deviations/<number>/transitions")
@answers(bp, DeviationOut, *WRITE, 404, 429)
@bp.input(DeviationTransitionIn, arg_name="data")
@write
def transition(number: str, data: DeviationTransitionIn):
    """Investigate or close (QA; closing needs root cause, settled CAPA and an e-signature)."""
    dev = deviations.transition(get_db(), number=number, data=data, actor=current_actor())
    return _answer(dev.number)


@bp.post("/deviations/<number>/links")
@answers(bp, DeviationOut, *WRITE, 404)
@bp.input(LinkChange, arg_name="data")
@write
def change_link(number: str, data: LinkChange):
    """Link a record to the deviation, or unlink one with a reason."""
    dev = deviations.change_link(get_db(), number=number, data=data, actor=current_actor())
    return _answer(dev.number)


@bp.post("/deviations/<number>/capa")
@answers(bp, DeviationOut, *WRITE, 404, status=201)
@bp.input(CapaIn, arg_name="data")
@write
def add_capa(number: str, data: CapaIn):
    """Add a CAPA action (QA): what, who, by when."""
    deviations.add_capa(get_db(), number=number, data=data, actor=current_actor())
    return _answer(number), 201


@bp.post("/deviations/<number>/capa/<int:capa_id>/complete")
@answers(bp, DeviationOut, *WRITE, 404)
@bp.input(CapaComplete, arg_name="data")
@write
def complete_capa(number: str, capa_id: int, data: CapaComplete):
    """Mark a CAPA action done (its owner or QA), saying how its effectiveness was checked."""
    deviations.complete_capa(
        get_db(), number=number, capa_id=capa_id, data=data, actor=current_actor()
    )
    return _answer(number)


@bp.post("/deviations/<number>/capa/<int:capa_id>/carry")
@answers(bp, DeviationOut, *WRITE, 404)
@bp.input(CapaCarry, arg_name="data")
@write
def carry_capa(number: str, capa_id: int, data: CapaCarry):
    """Carry an unfinished CAPA action into another open deviation (QA, with a reason)."""
    deviations.carry_capa(
        get_db(), number=number, capa_id=capa_id, data=data, actor=current_actor()
    )
    return _answer(number)
