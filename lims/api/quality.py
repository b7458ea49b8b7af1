"""Quality: specifications, cell product QC and release rules, OOS investigations."""

from __future__ import annotations

from apiflask import APIBlueprint
from pydantic import Field

from lims import samples
from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, answers
from lims.boundary import current_actor, get_db, write
from lims.quality import oos, release, results, specs
from lims.quality.oos import OosTransitionIn, RetestIn
from lims.quality.results import ResultIn, ReviewIn
from lims.quality.specs import SpecIn, SpecTransitionIn

bp = APIBlueprint("quality", __name__, url_prefix="/api", tag="Quality")


class SpecQuery(QueryModel):
    product: str | None = Field(default=None, max_length=64)
    state: str | None = Field(default=None, pattern="^(draft|approved|superseded|retired)$")


class OosQuery(QueryModel):
    open: bool = Field(default=False, description="only investigations still open")


@bp.get("/specs")
@answers(bp, schemas.SpecsOut, *READ)
@bp.input(SpecQuery, location="query", arg_name="q")
def list_specs(q: SpecQuery):
    """List the specification versions (all products and stages)."""
    current_actor()  # any signed-in user reads the specifications
    rows = specs.list_specs(get_db(), product=q.product, state=q.state)
    return {"specifications": [specs.spec_summary(x) for x in rows]}


@bp.post("/specs")
@answers(bp, schemas.SpecOut, *WRITE, 413, status=201)
@bp.input(SpecIn, arg_name="data")
@write
def create_spec(data: SpecIn):
    """Write the next version of a specification as a draft (QA or admin)."""
    db = get_db()
    spec = specs.create_draft(db, data=data, actor=current_actor())
    return specs.spec_dict(db, spec), 201


@bp.get("/specs/<code>/<int:version>")
@answers(bp, schemas.SpecOut, *READ, 404)
def get_spec(code: str, version: int):
    """Return one specification version with its limits and sampling plan."""
    current_actor()
    db = get_db()
    return specs.spec_dict(db, specs.get_spec(db, code, version))


@bp.post("/specs/<code>/<int:version>/transitions")
@answers(bp, schemas.SpecOut, *WRITE, 404, 413)
@bp.input(SpecTransitionIn, arg_name="data")
@write
def transition_spec(code: str, version: int, data: SpecTransitionIn):
    """Approve (QA e-signature, not the author), retire or discard a specification version."""
    db = get_db()
    spec = specs.transition_spec(db, code=code, version=version, data=data, actor=current_actor())
    return specs.spec_dict(db, spec)


@bp.get("/samples/<barcode>/qc")
@answers(bp, schemas.SampleQcOut, *READ, 404)
def sample_qc(barcode: str):
    """Return a cell product's QC results against its specification, and what release needs."""
    db = get_db()
    s = samples.get_sample(db, barcode, current_actor())
    return release.sample_qc_dict(db, s, current_actor())


@bp.post("/samples/<barcode>/qc")
@answers(bp, schemas.SampleQcOut, *WRITE, 404, 413, status=201)
@bp.input(ResultIn, arg_name="data")
@write
def record_sample_qc(barcode: str, data: ResultIn):
    """Record a cell product's QC result, judged against its sample type's specification."""
    db = get_db()
    s = samples.get_sample(db, barcode, current_actor())
    oos.record_sample_qc(db, sample=s, data=data, actor=current_actor())
    return release.sample_qc_dict(
        db, samples.get_sample(db, barcode, current_actor()), current_actor()
    ), 201


@bp.post("/samples/<barcode>/qc/<int:result_id>/review")
@answers(bp, schemas.SampleQcOut, *WRITE, 404, 413)
@bp.input(ReviewIn, arg_name="data")
@write
def review_sample_qc(barcode: str, result_id: int, data: ReviewIn):
    """Review a cell product's QC result (QA e-signature 'review'; not its recorder)."""
    db = get_db()
    s = samples.get_sample(db, barcode, current_actor())
    results.review_of(db, result_id=result_id, sample=s, data=data, actor=current_actor())
    return release.sample_qc_dict(
        db, samples.get_sample(db, barcode, current_actor()), current_actor()
    )


@bp.get("/oos")
@answers(bp, schemas.OosListOut, *READ)
@bp.input(OosQuery, location="query", arg_name="q")
def list_oos(q: OosQuery):
    """List the out-of-specification investigations you may see, newest first."""
    db = get_db()
    rows, _total = oos.list_oos(db, current_actor(), open_only=q.open)
    return {"oos": oos.oos_summaries(db, rows)}


@bp.get("/oos/<int:oos_id>")
@answers(bp, schemas.OosOut, *READ, 404)
def get_oos(oos_id: int):
    """Return an investigation: the result that opened it, its retests, phase and moves."""
    db = get_db()
    return oos.oos_dict(db, oos.get_oos(db, oos_id, current_actor()))


@bp.post("/oos/<int:oos_id>/transitions")
@answers(bp, schemas.OosOut, *WRITE, 404, 413)
@bp.input(OosTransitionIn, arg_name="data")
@write
def transition_oos(oos_id: int, data: OosTransitionIn):
    """Move an investigation on (phase II, confirmed, invalidated): reason and QA e-signature."""
    db = get_db()
    x = oos.transition_oos(db, oos_id=oos_id, data=data, actor=current_actor())
    return oos.oos_dict(db, x)


@bp.post("/oos/<int:oos_id>/retests")
@answers(bp, schemas.OosOut, *WRITE, 404, 413, status=201)
@bp.input(RetestIn, arg_name="data")
@write
def record_retest(oos_id: int, data: RetestIn):
    """Record a retest inside an open investigation (the original result stays)."""
    db = get_db()
    oos.record_retest(db, oos_id=oos_id, data=data, actor=current_actor())
    return oos.oos_dict(db, oos.get_oos(db, oos_id, current_actor())), 201
