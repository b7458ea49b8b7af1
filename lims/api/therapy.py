"""Cell therapy: patients and donors (QA/admin), treatment episodes, their moves and timeline."""

from __future__ import annotations

from apiflask import APIBlueprint
from pydantic import Field

from lims import samples
from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, Out, answers
from lims.boundary import current_actor, get_db, write
from lims.boundary.unit import record_now
from lims.therapy import episodes, patients, pools, products
from lims.therapy.episodes import AcknowledgeIn, EpisodeCreate, EpisodeTransitionIn
from lims.therapy.patients import PatientIn
from lims.therapy.pools import PoolIn
from lims.therapy.products import ProductCodeIn

bp = APIBlueprint("therapy", __name__, url_prefix="/api", tag="Cell therapy")


class EpisodeQuery(QueryModel):
    state: str | None = Field(default=None, max_length=32)
    coi: str | None = Field(default=None, max_length=64)


class PatientOut(Out):
    coi: str
    coi_scheme: str
    kind: str = Field(description="patient or donor")
    organisation: str
    full_name: str
    date_of_birth: str
    hospital_id: str


class PatientsOut(Out):
    patients: list[PatientOut]


class ProductCodeOut(Out):
    code: str
    description: str
    allogeneic: bool
    active: bool
    min_temp_c: float | None = Field(default=None, description="transit limit, degrees C")
    max_temp_c: float | None = Field(default=None, description="transit limit, degrees C")


class ProductCodesOut(Out):
    product_codes: list[ProductCodeOut]


class EpisodeSampleOut(Out):
    barcode: str
    state: str
    parent: str | None


class EpisodeOut(Out):
    number: str = Field(description="e.g. EP-26-0001")
    coi: str = Field(description="the patient's chain of identity; never their identifiers")
    kind: str
    organisation: str
    project: str
    state: str
    version: int
    reason: str | None
    held_by: str | None = Field(description="the deviation of a COI mismatch QA has to acknowledge")
    product_code: ProductCodeOut | None
    din: str | None = Field(description="ISBT 128 DIN (13 characters)")
    din_text: str | None = Field(description="as printed, with its check character")
    expires_on: str | None = Field(description="the released product's expiry date")
    samples: list[EpisodeSampleOut]
    allowed_actions: list[str]
    created_at: str


class EpisodesOut(Out):
    episodes: list[EpisodeOut]


class TimelineEventOut(Out):
    seq: int
    ts: str
    actor: str
    action: str
    entity_type: str = Field(description="episode or sample")
    entity_id: str
    reason: str | None


class TimelineOut(Out):
    episode: EpisodeOut
    timeline: list[TimelineEventOut]


schemas.MODELS.extend(
    [
        PatientOut,
        PatientsOut,
        ProductCodeOut,
        ProductCodesOut,
        EpisodeSampleOut,
        EpisodeOut,
        EpisodesOut,
        TimelineEventOut,
        TimelineOut,
    ]
)


@bp.get("/patients")
@answers(bp, PatientsOut, *READ, 403)
def list_patients():
    """List patients and donors with their identifiers (centre QA/admin; each read is audited)."""
    actor = current_actor()
    db = get_db()
    rows = patients.list_patients(db, actor)
    out = [patients.patient_dict(db, p) for p in rows]
    record_now(lambda w: patients.record_read(w, actor, rows, "GET /api/patients"))
    return {"patients": out}


@bp.get("/patients/<coi>")
@answers(bp, PatientOut, *READ, 403, 404)
def get_patient(coi: str):
    """Return one patient's identifiers by COI (centre QA/admin; the read is audited)."""
    actor = current_actor()
    db = get_db()
    p = patients.get_patient(db, coi, actor)
    out = patients.patient_dict(db, p)
    record_now(lambda w: patients.record_read(w, actor, [p], f"GET /api/patients/{p.coi}"))
    return out


@bp.post("/patients")
@answers(bp, PatientOut, *WRITE, 404, status=201)
@bp.input(PatientIn, arg_name="data")
@write
def register_patient(data: PatientIn):
    """Register a patient or donor; a COI is allocated unless an ISBT 128 one is given."""
    db = get_db()
    p = patients.register_patient(db, data=data, actor=current_actor())
    return patients.patient_dict(db, p), 201


@bp.get("/product-codes")
@answers(bp, ProductCodesOut, *READ)
def list_product_codes():
    """List the centre's ISBT 128 product description codes."""
    current_actor()
    rows = products.list_product_codes(get_db())
    return {"product_codes": [products.product_dict(p) for p in rows]}


@bp.post("/product-codes")
@answers(bp, ProductCodeOut, *WRITE, status=201)
@bp.input(ProductCodeIn, arg_name="data")
@write
def add_product_code(data: ProductCodeIn):
    """Add a product description code to the catalogue (admin)."""
    p = products.add_product_code(get_db(), data=data, actor=current_actor())
    return products.product_dict(p), 201


@bp.get("/episodes")
@answers(bp, EpisodesOut, *READ)
@bp.input(EpisodeQuery, location="query", arg_name="q")
def list_episodes(q: EpisodeQuery):
    """List the treatment episodes you may see, newest first."""
    db = get_db()
    rows = episodes.list_episodes(db, current_actor(), state=q.state, coi=q.coi)
    return {"episodes": [episodes.episode_dict(db, e) for e in rows]}


@bp.post("/episodes")
@answers(bp, EpisodeOut, *WRITE, 404, status=201)
@bp.input(EpisodeCreate, arg_name="data")
@write
def enrol(data: EpisodeCreate):
    """Enrol a registered patient or donor: open a treatment episode under their COI."""
    db = get_db()
    ep = episodes.enrol(db, data=data, actor=current_actor())
    return episodes.episode_dict(db, ep), 201


@bp.get("/episodes/<number>")
@answers(bp, TimelineOut, *READ, 404)
def get_episode(number: str):
    """Return an episode and its chain of identity as a timeline (its and its samples' events)."""
    db = get_db()
    ep = episodes.get_episode(db, number, current_actor())
    return {"episode": episodes.episode_dict(db, ep), "timeline": episodes.timeline(db, ep)}


@bp.post("/episodes/<number>/transitions")
@answers(bp, EpisodeOut, *WRITE, 404)
@bp.input(EpisodeTransitionIn, arg_name="data")
@write
def transition(number: str, data: EpisodeTransitionIn):
    """Move an episode; a change of custody scans the bag and its COI (and the wristband at
    infusion): a COI that is not the episode's is refused (422) and opens a deviation."""
    db = get_db()
    ep = episodes.transition(db, number=number, data=data, actor=current_actor())
    return episodes.episode_dict(db, ep)


class PoolParentOut(Out):
    barcode: str
    coi: str
    state: str


class PoolOut(Out):
    barcode: str
    coi: str
    lineage: str | None
    parents: list[PoolParentOut]


schemas.MODELS.extend([PoolParentOut, PoolOut])


@bp.post("/pools")
@answers(bp, PoolOut, *WRITE, 404, status=201)
@bp.input(PoolIn, arg_name="data")
@write
def make_pool(data: PoolIn):
    """Pool several parents into one derivative: one COI only, unless the product is allogeneic."""
    db = get_db()
    pool = pools.make_pool(db, data=data, actor=current_actor())
    return pools.pool_dict(db, pool), 201


@bp.get("/pools/<barcode>")
@answers(bp, PoolOut, *READ, 404)
def get_pool(barcode: str):
    """Return a sample with the parents it was pooled from (none: not a pool)."""
    db = get_db()
    s = samples.get_sample(db, barcode, current_actor())
    return pools.pool_dict(db, s)


@bp.post("/episodes/<number>/acknowledge")
@answers(bp, EpisodeOut, *WRITE, 404)
@bp.input(AcknowledgeIn, arg_name="data")
@write
def acknowledge(number: str, data: AcknowledgeIn):
    """QA acknowledges the COI mismatch that holds an episode (with a reason); the deviation
    stays open for its investigation."""
    db = get_db()
    ep = episodes.acknowledge_mismatch(db, number=number, data=data, actor=current_actor())
    return episodes.episode_dict(db, ep)
