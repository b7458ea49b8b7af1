"""Cold-chain shipments to clinical sites: pack, dispatch, logger readings, receipt by scans."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app
from pydantic import Field

from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, Out, answers
from lims.boundary import current_actor, get_db, write
from lims.inputs import Input
from lims.therapy import logger, shipments
from lims.therapy.shipments import (
    AcknowledgeIn,
    ContainersIn,
    ReceiptIn,
    ShipmentCreate,
    ShipmentTransitionIn,
)

bp = APIBlueprint("shipments", __name__, url_prefix="/api", tag="Cell therapy shipments")


class ShipmentQuery(QueryModel):
    state: str | None = Field(default=None, max_length=32)


class DispatchIn(Input):
    version: int | None = Field(default=None, ge=1, description="the version you last saw")


class ReadingsIn(Input):
    # No maxLength: the request's own limit (1 MiB, 413) bounds it, about 30,000 readings.
    csv: str = Field(
        min_length=1,
        description="the logger's CSV: time (ISO 8601, UTC if no offset), temperature in C",
    )


class ContainerOut(Out):
    bag: str
    coi: str = Field(description="the chain of identity; never the patient's identifiers")
    episode: str
    episode_state: str
    received_at: str | None


class ShipmentOut(Out):
    number: str = Field(description="e.g. SH-26-0001")
    state: str = Field(description="packed, dispatched, received_at_site, rejected, cancelled")
    version: int
    organisation: str = Field(description="whose material travels")
    site: str = Field(description="the clinical site it goes to")
    site_name: str
    product_code: str
    product: str
    min_temp_c: float
    max_temp_c: float
    shipper: str
    logger_id: str
    reason: str | None
    held_by: str | None = Field(description="the deviation of a mismatch QA acknowledges")
    readings: int
    excursion: bool
    excursion_first: str | None
    excursion_last: str | None
    min_seen_c: float | None
    max_seen_c: float | None
    deviations: list[str]
    dispatched_at: str | None
    received_at: str | None
    created_at: str | None
    allowed_actions: list[str]
    containers: list[ContainerOut]


class EventOut(Out):
    seq: int
    ts: str
    actor: str
    action: str
    entity_type: str
    entity_id: str


class ShipmentEpisodeOut(Out):
    number: str
    coi: str
    state: str
    timeline: list[EventOut]


class ShipmentDetailOut(ShipmentOut):
    episodes: list[ShipmentEpisodeOut]


class ShipmentsOut(Out):
    shipments: list[ShipmentOut]


class ImportOut(Out):
    shipment: ShipmentOut
    imported: dict = Field(
        description="import number, readings, outside_limits, gaps, min/max seen, deviation opened"
    )


schemas.MODELS.extend(
    [
        ContainerOut,
        ShipmentOut,
        EventOut,
        ShipmentEpisodeOut,
        ShipmentDetailOut,
        ShipmentsOut,
        ImportOut,
    ]
)


@bp.get("/shipments")
@answers(bp, ShipmentsOut, *READ)
@bp.input(ShipmentQuery, location="query", arg_name="q")
def list_shipments(q: ShipmentQuery):
    """List the shipments you may see (a clinical site: those sent to it), newest first."""
    db = get_db()
    rows = shipments.list_shipments(db, current_actor(), state=q.state)
    return {"shipments": [shipments.shipment_dict(db, s) for s in rows]}


@bp.post("/shipments")
@answers(bp, ShipmentOut, *WRITE, 404, status=201)
@bp.input(ShipmentCreate, arg_name="data")
@write
def create(data: ShipmentCreate):
    """Pack a shipment: clinical site, product (its transit limits), shipper, logger, bags."""
    db = get_db()
    s = shipments.create(db, data=data, actor=current_actor())
    return shipments.shipment_dict(db, s), 201


@bp.get("/shipments/<number>")
@answers(bp, ShipmentDetailOut, *READ, 404)
def get_shipment(number: str):
    """Return a shipment: manifest, limits, readings summary and each episode's timeline."""
    db = get_db()
    s = shipments.get_shipment(db, number, current_actor())
    return shipments.shipment_dict(db, s, with_timeline=True)


@bp.post("/shipments/<number>/containers")
@answers(bp, ShipmentOut, *WRITE, 404)
@bp.input(ContainersIn, arg_name="data")
@write
def add_containers(number: str, data: ContainersIn):
    """Put more bags (scanned with their COI) on a packed shipment."""
    db = get_db()
    s = shipments.add_containers(db, number=number, data=data, actor=current_actor())
    return shipments.shipment_dict(db, s)


@bp.post("/shipments/<number>/dispatch")
@answers(bp, ShipmentOut, *WRITE, 404)
@bp.input(DispatchIn, arg_name="data")
@write
def dispatch(number: str, data: DispatchIn):
    """Send the box: each episode on the manifest is shipped (its COI checked)."""
    db = get_db()
    s = shipments.dispatch(db, number=number, actor=current_actor(), version=data.version)
    return shipments.shipment_dict(db, s)


@bp.post("/shipments/<number>/readings")
@answers(bp, ImportOut, *WRITE, 404)
@bp.input(ReadingsIn, arg_name="data")
@write
def import_readings(number: str, data: ReadingsIn):
    """Import the data logger's CSV; a reading outside the limits opens a deviation."""
    db = get_db()
    actor = current_actor()
    out = logger.import_readings(
        db, number=number, text=data.csv, actor=actor, max_gap=logger.max_gap(current_app.config)
    )
    s = shipments.get_shipment(db, number, actor)
    return {"shipment": shipments.shipment_dict(db, s), "imported": out}


@bp.post("/shipments/<number>/receive")
@answers(bp, ShipmentOut, *WRITE, 404)
@bp.input(ReceiptIn, arg_name="data")
@write
def receive(number: str, data: ReceiptIn):
    """Take delivery at the site by scanning every bag and its COI; a mismatch stops it (422)."""
    db = get_db()
    s = shipments.receive(db, number=number, data=data, actor=current_actor())
    return shipments.shipment_dict(db, s)


@bp.post("/shipments/<number>/transitions")
@answers(bp, ShipmentOut, *WRITE, 404)
@bp.input(ShipmentTransitionIn, arg_name="data")
@write
def transition(number: str, data: ShipmentTransitionIn):
    """Cancel a packed shipment, or reject a dispatched one at the site, with a reason."""
    db = get_db()
    s = shipments.transition(db, number=number, data=data, actor=current_actor())
    return shipments.shipment_dict(db, s)


@bp.post("/shipments/<number>/acknowledge")
@answers(bp, ShipmentOut, *WRITE, 404)
@bp.input(AcknowledgeIn, arg_name="data")
@write
def acknowledge(number: str, data: AcknowledgeIn):
    """QA acknowledges the mismatch at receipt that holds a shipment, with a reason."""
    db = get_db()
    s = shipments.acknowledge(db, number=number, data=data, actor=current_actor())
    return shipments.shipment_dict(db, s)
