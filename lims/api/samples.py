"""Samples: register, read, list, transitions, aliquots, history, genealogy."""

from __future__ import annotations

from apiflask import APIBlueprint
from pydantic import ConfigDict, Field

from lims import samples
from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, answers
from lims.boundary import current_actor, get_db, write
from lims.inputs import Input, Line, Text
from lims.samples import AliquotIn, SampleCreate, TransitionIn

bp = APIBlueprint("samples", __name__, url_prefix="/api", tag="Samples")


class SampleQuery(QueryModel):
    model_config = ConfigDict(extra="forbid")
    state: str | None = Field(default=None, max_length=32)
    lot: str | None = Field(default=None, max_length=64)
    project: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=64)
    cursor: int | None = Field(default=None, ge=0, le=2**31 - 1)  # INTEGER ids
    before: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="a prev_cursor: the page before it"
    )
    sort: str | None = Field(
        default=None,
        max_length=16,
        description="created (default, oldest first), updated, barcode, coi, state, type, "
        "project, lot, location or holder; '-' first for descending (-created: newest first)",
    )
    limit: int = Field(default=100, ge=1, le=1000)


class BulkItem(Input):
    barcode: Line = Field(min_length=1, max_length=64)
    version: int | None = Field(default=None, ge=1)
    position: Line | None = Field(default=None, max_length=8)


class BulkTransitionIn(Input):
    """One action applied to many samples (a rack at receipt): all or nothing."""

    action: Line = Field(min_length=1, max_length=32)
    samples: list[BulkItem] = Field(min_length=1, max_length=500)
    condition: Text | None = Field(default=None, max_length=200)
    location: Line | None = Field(default=None, max_length=64)
    custodian: Line | None = Field(default=None, max_length=64)
    destination: Text | None = Field(default=None, max_length=200)
    reason: Text | None = Field(default=None, max_length=2000)


@bp.post("/samples")
@answers(bp, schemas.SampleOut, *WRITE, 404, 413, status=201)
@bp.input(SampleCreate, arg_name="data")
@write
def create_sample(data: SampleCreate):
    """Register a sample; the barcode and (for new material) the COI are assigned."""
    db = get_db()
    s = samples.register_sample(db, data=data, actor=current_actor())
    return samples.sample_dict(db, s), 201


@bp.get("/samples")
@answers(bp, schemas.SamplePage, *READ)
@bp.input(SampleQuery, location="query", arg_name="q")
def list_samples(q: SampleQuery):
    """List samples you may see; filter by state, lot, project, location (any case)."""
    db = get_db()
    page = samples.sample_page(
        db,
        current_actor(),
        state=q.state,
        lot=q.lot,
        project=q.project,
        location=q.location,
        sort=q.sort,
        after=q.cursor,
        before=q.before,
        limit=q.limit,
        default_sort="created",
    )
    return {
        "samples": [samples.sample_dict(db, s) for s in page.rows],
        "next_cursor": page.next_cursor,
        "prev_cursor": page.prev_cursor,
        "total": page.total,
        "sort": page.sort,
    }


@bp.get("/samples/<barcode>")
@answers(bp, schemas.SampleOut, *READ, 404)
def get_sample(barcode: str):
    """Return one sample."""
    db = get_db()
    return samples.sample_dict(db, samples.get_sample(db, barcode, current_actor()))


@bp.post("/samples/<barcode>/transitions")
@answers(bp, schemas.SampleOut, *WRITE, 404, 413)
@bp.input(TransitionIn, arg_name="data")
@write
def transition(barcode: str, data: TransitionIn):
    """Move a sample along its custody table (send the version you saw to catch races)."""
    db = get_db()
    s = samples.transition(db, barcode=barcode, data=data, actor=current_actor())
    return samples.sample_dict(db, s)


@bp.post("/transitions")
@answers(bp, schemas.SamplesOut, *WRITE, 404, 413)
@bp.input(BulkTransitionIn, arg_name="data")
@write
def bulk_transition(data: BulkTransitionIn):
    """Apply one action to many samples in one transaction (e.g. receive a 96-tube rack)."""
    db = get_db()
    common = data.model_dump(exclude={"samples"})
    items = [
        (
            item.barcode,
            TransitionIn(**common, version=item.version, position=item.position),
        )
        for item in data.samples
    ]
    done = samples.transition_many(db, items=items, actor=current_actor())
    return {"samples": [samples.sample_dict(db, s) for s in done]}


@bp.post("/samples/<barcode>/aliquots")
@answers(bp, schemas.AliquotsOut, *WRITE, 404, 413, status=201)
@bp.input(AliquotIn, arg_name="data")
@write
def create_aliquots(barcode: str, data: AliquotIn):
    """Split a sample into aliquots; they inherit its COI, lot and project."""
    db = get_db()
    children = samples.aliquot(db, barcode=barcode, data=data, actor=current_actor())
    return {"aliquots": [samples.sample_dict(db, c) for c in children]}, 201


@bp.get("/samples/<barcode>/history")
@answers(bp, schemas.HistoryOut, *READ, 404)
def history(barcode: str):
    """Return the sample's custody events, oldest first, and the events of its label print jobs."""
    db = get_db()
    who = current_actor()
    s = samples.get_sample(db, barcode, who)
    return {
        "barcode": s.barcode,
        "events": samples.history(db, s),
        "label_events": samples.label_history(db, s, who),
    }


@bp.get("/samples/<barcode>/genealogy")
@answers(bp, schemas.GenealogyOut, *READ, 404)
def genealogy(barcode: str):
    """Return the sample's ancestors and descendants."""
    db = get_db()
    return samples.genealogy(db, samples.get_sample(db, barcode, current_actor()))
