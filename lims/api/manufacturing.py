"""Vector manufacturing: material kinds, material lots (GS1 receipt, QA release), genealogy."""

from __future__ import annotations

from apiflask import APIBlueprint
from apiflask.schemas import FileSchema
from flask import Response
from pydantic import Field

from lims.api import schemas
from lims.api.query import QueryModel
from lims.api.schemas import READ, WRITE, Out, SignatureOut, answers
from lims.boundary import current_actor, get_db, write
from lims.manufacturing import batch, batch_pdf, genealogy, materials
from lims.manufacturing.batch import (
    ApproveIn,
    BatchStart,
    ReviewIn,
    StepRecord,
    TemplateIn,
    VerifyIn,
)
from lims.manufacturing.genealogy import ConsumeIn
from lims.manufacturing.materials import (
    KindCreate,
    MaterialTransitionIn,
    ReceiveManual,
    ReceiveScan,
)

bp = APIBlueprint("manufacturing", __name__, url_prefix="/api", tag="Manufacturing")


class MaterialQuery(QueryModel):
    state: str | None = Field(
        default=None,
        pattern="^(quarantine|released|consumed|expired|rejected)$",
        description="quarantine, released, consumed, expired, rejected",
    )
    kind: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="material kind code",
    )


class MaterialKindOut(Out):
    code: str
    name: str
    category: str
    gtin: str | None
    supplier: str | None


class MaterialKindsOut(Out):
    kinds: list[MaterialKindOut]


class MaterialOut(Out):
    code: str = Field(description="our id of the material lot, e.g. MAT-26-000001")
    kind: str
    name: str
    category: str
    gtin: str | None
    supplier_lot: str
    serial: str | None
    expires_on: str
    state: str
    version: int
    received_by: str | None
    received_at: str
    released_by: str | None
    signature: SignatureOut | None
    allowed_actions: list[str]
    unusable_because: str | None = Field(description="why it may not go into a lot today")


class MaterialsOut(Out):
    materials: list[MaterialOut]


class GenealogyLotOut(Out):
    lot_number: str
    state: str
    vector: str


class GenealogyVialOut(Out):
    barcode: str
    state: str
    lot_number: str


class WhereUsedOut(Out):
    lots: list[GenealogyLotOut]
    vials: list[GenealogyVialOut]


class MadeFromMaterialOut(Out):
    material: str
    kind: str
    name: str
    category: str
    supplier_lot: str
    serial: str | None
    expires_on: str
    state: str


class MadeFromOut(Out):
    lot: str
    materials: list[MadeFromMaterialOut]
    lots: list[GenealogyLotOut]


class LotInputOut(Out):
    kind: str = Field(description="material or lot")
    ref: str
    name: str
    quantity: float | None
    unit: str | None
    recorded_by: str | None
    recorded_at: str


class LotInputsOut(Out):
    lot: str
    inputs: list[LotInputOut]


class ParameterOut(Out):
    name: str
    unit: str
    low: float | None
    high: float | None


class TemplateStepOut(Out):
    position: int
    name: str
    instructions: str | None
    verify: bool
    parameters: list[ParameterOut]


class TemplateOut(Out):
    code: str
    version: int
    name: str
    product: str
    state: str = Field(description="draft, approved or retired")
    written_by: str | None
    approved_by: str | None
    steps: list[TemplateStepOut]


class BatchValueOut(Out):
    name: str
    unit: str
    low: float | None
    high: float | None
    value: float | None
    in_range: bool | None = Field(description="false: out of range (flagged, deviation raised)")


class BatchStepOut(Out):
    position: int
    name: str
    instructions: str | None
    verify: bool
    state: str = Field(description="to do, done, awaiting verifier, verified")
    operator: str | None
    done_at: str | None
    equipment: str | None
    room: str | None
    verifier: str | None
    parameters: list[BatchValueOut]


class BatchReviewOut(Out):
    reviewed_by: str | None
    reviewed_at: str
    signature: SignatureOut


class BatchRecordOut(Out):
    lot: str
    template: str
    template_version: int
    started_by: str | None
    complete: bool
    next: int | None = Field(description="the step to do or verify next; null when complete")
    open: bool = Field(description="the lot is planned or in production: steps can be recorded")
    steps: list[BatchStepOut]
    review: BatchReviewOut | None = Field(description="QA's signed review; null until signed")
    review_blocker: str | None = Field(
        description="why you could not sign QA's review now; null: you may"
    )


# The OpenAPI document describes the models of lims.api.schemas; these join them.
schemas.MODELS.extend(
    [
        ParameterOut,
        TemplateStepOut,
        TemplateOut,
        BatchValueOut,
        BatchStepOut,
        BatchReviewOut,
        BatchRecordOut,
        MaterialKindOut,
        MaterialKindsOut,
        MaterialOut,
        MaterialsOut,
        GenealogyLotOut,
        GenealogyVialOut,
        WhereUsedOut,
        MadeFromMaterialOut,
        MadeFromOut,
        LotInputOut,
        LotInputsOut,
    ]
)


@bp.get("/material-kinds")
@answers(bp, MaterialKindsOut, *READ)
def list_kinds():
    """List the kinds of material the centre buys (each with its GTIN)."""
    kinds = materials.list_kinds(get_db(), current_actor())
    return {"kinds": [materials.kind_dict(k) for k in kinds]}


@bp.post("/material-kinds")
@answers(bp, MaterialKindOut, *WRITE, status=201)
@bp.input(KindCreate, arg_name="data")
@write
def create_kind(data: KindCreate):
    """Set up a kind of material (admin or QA): code, name, category, GTIN."""
    kind = materials.create_kind(get_db(), data=data, actor=current_actor())
    return materials.kind_dict(kind), 201


@bp.post("/materials/receive")
@answers(bp, MaterialOut, *WRITE, status=201)
@bp.input(ReceiveScan, arg_name="data")
@write
def receive_scan(data: ReceiveScan):
    """Receive an item by its supplier's GS1 barcode (GTIN, lot, expiry, serial) into quarantine."""
    db = get_db()
    mat = materials.receive_scan(
        db, data=data.data, symbology=data.symbology, actor=current_actor()
    )
    return materials.material_dict(db, mat), 201


@bp.post("/materials")
@answers(bp, MaterialOut, *WRITE, 404, status=201)
@bp.input(ReceiveManual, arg_name="data")
@write
def receive_manual(data: ReceiveManual):
    """Receive an item without a GS1 barcode (kind, supplier lot, expiry) into quarantine."""
    db = get_db()
    mat = materials.receive_manual(db, data=data, actor=current_actor())
    return materials.material_dict(db, mat), 201


@bp.get("/materials")
@answers(bp, MaterialsOut, *READ)
@bp.input(MaterialQuery, location="query", arg_name="q")
def list_materials(q: MaterialQuery):
    """List material lots, newest first (at most 1000), by state and kind."""
    db = get_db()
    rows = materials.list_materials(db, current_actor(), state=q.state, kind=q.kind)
    return {"materials": [materials.material_dict(db, m) for m in rows]}


@bp.get("/materials/<code>")
@answers(bp, MaterialOut, *READ, 404)
def get_material(code: str):
    """Return a material lot and why it may not be used now, if so."""
    db = get_db()
    return materials.material_dict(db, materials.get_material(db, code, current_actor()))


@bp.post("/materials/<code>/transitions")
@answers(bp, MaterialOut, *WRITE, 404, 429)
@bp.input(MaterialTransitionIn, arg_name="data")
@write
def transition(code: str, data: MaterialTransitionIn):
    """Release or reject (QA e-signature), mark consumed, or expire a material lot."""
    db = get_db()
    mat = materials.transition(db, code=code, data=data, actor=current_actor())
    return materials.material_dict(db, mat)


@bp.get("/materials/<code>/where-used")
@answers(bp, WhereUsedOut, *READ, 404)
def where_used(code: str):
    """Every lot and vial that consumed this material, directly or through other lots (recall)."""
    return genealogy.where_used(get_db(), code=code, actor=current_actor())


@bp.post("/lots/<lot>/inputs")
@answers(bp, LotInputsOut, *WRITE, 404, status=201)
@bp.input(ConsumeIn, arg_name="data")
@write
def add_input(lot: str, data: ConsumeIn):
    """Record a material (released, in date) or an intermediate lot going into this lot."""
    db = get_db()
    genealogy.consume(db, lot_number=lot, data=data, actor=current_actor())
    return _inputs(lot), 201


@bp.get("/lots/<lot>/inputs")
@answers(bp, LotInputsOut, *READ, 404)
def list_inputs(lot: str):
    """The direct inputs of a lot, as recorded."""
    return _inputs(lot)


def _inputs(lot: str) -> dict:
    return genealogy.lot_inputs(get_db(), lot_number=lot, actor=current_actor())


@bp.get("/lots/<lot>/made-from")
@answers(bp, MadeFromOut, *READ, 404)
def made_from(lot: str):
    """Everything this lot was made from: materials and intermediate lots, at any depth."""
    return genealogy.made_from(get_db(), lot_number=lot, actor=current_actor())


@bp.get("/lots/<lot>/where-used")
@answers(bp, WhereUsedOut, *READ, 404)
def lot_where_used(lot: str):
    """Every lot and vial made from this (intermediate) lot."""
    return genealogy.used_in_lot(get_db(), lot_number=lot, actor=current_actor())


@bp.post("/process-templates")
@answers(bp, TemplateOut, *WRITE, status=201)
@bp.input(TemplateIn, arg_name="data")
@write
def create_template(data: TemplateIn):
    """Write a process template draft (QA): steps in order, parameters with unit and range."""
    db = get_db()
    tpl = batch.create_template(db, data=data, actor=current_actor())
    return batch.template_dict(db, tpl), 201


@bp.get("/process-templates/<code>/<int:version>")
@answers(bp, TemplateOut, *READ, 404)
def get_template(code: str, version: int):
    """Return one version of a process template."""
    db = get_db()
    current_actor()
    return batch.template_dict(db, batch.get_template(db, code, version))


@bp.post("/process-templates/<code>/<int:version>/approve")
@answers(bp, TemplateOut, *WRITE, 404, 429)
@bp.input(ApproveIn, arg_name="data")
@write
def approve_template(code: str, version: int, data: ApproveIn):
    """Approve a draft (QA e-signature 'approval', not its author); the one before retires."""
    db = get_db()
    tpl = batch.approve_template(db, code=code, version=version, data=data, actor=current_actor())
    return batch.template_dict(db, tpl)


@bp.post("/lots/<lot>/batch-record")
@answers(bp, BatchRecordOut, *WRITE, 404, status=201)
@bp.input(BatchStart, arg_name="data")
@write
def start_batch(lot: str, data: BatchStart):
    """Open a lot's batch record on the approved version of a process template."""
    db = get_db()
    batch.start(db, lot_number=lot, data=data, actor=current_actor())
    return batch.batch_dict(db, lot_number=lot, actor=current_actor()), 201


@bp.get("/lots/<lot>/batch-record")
@answers(bp, BatchRecordOut, *READ, 404)
def get_batch(lot: str):
    """Return a lot's batch record: every step as executed, or still to do."""
    return batch.batch_dict(get_db(), lot_number=lot, actor=current_actor())


@bp.post("/lots/<lot>/batch-record/steps/<int:position>")
@answers(bp, BatchRecordOut, *WRITE, 404, status=201)
@bp.input(StepRecord, arg_name="data")
@write
def record_step(lot: str, position: int, data: StepRecord):
    """Record a step as done by you: values (out of range: flagged, deviation), equipment, room."""
    db = get_db()
    batch.record_step(db, lot_number=lot, position=position, data=data, actor=current_actor())
    return batch.batch_dict(db, lot_number=lot, actor=current_actor()), 201


@bp.post("/lots/<lot>/batch-record/steps/<int:position>/verify")
@answers(bp, BatchRecordOut, *WRITE, 404, 429)
@bp.input(VerifyIn, arg_name="data")
@write
def verify_step(lot: str, position: int, data: VerifyIn):
    """Verify a step someone else did (e-signature 'review')."""
    db = get_db()
    batch.verify_step(db, lot_number=lot, position=position, data=data, actor=current_actor())
    return batch.batch_dict(db, lot_number=lot, actor=current_actor())


@bp.post("/lots/<lot>/batch-record/review")
@answers(bp, BatchRecordOut, *WRITE, 404, 429, status=201)
@bp.input(ReviewIn, arg_name="data")
@write
def review_batch(lot: str, data: ReviewIn):
    """Sign (QA, meaning 'review') that the lot's complete batch record was reviewed.

    Refused (422) while a step is not done or verified, and to anyone who recorded or verified
    a step (four eyes); 409 once it is reviewed. A lot with a batch record is released only
    after this review.
    """
    db = get_db()
    batch.review(db, lot_number=lot, data=data, actor=current_actor())
    return batch.batch_dict(db, lot_number=lot, actor=current_actor()), 201


@bp.get("/lots/<lot>/batch-record.pdf")
@answers(bp, None, *READ, 404)
@bp.output(
    FileSchema(type="string", format="binary"),
    content_type="application/pdf",
    description="the batch record",
)
def batch_record_pdf(lot: str):
    """Return a lot's batch record as a PDF: steps, values, signatures, materials and expiry."""
    data = batch_pdf.batch_record_pdf(get_db(), lot_number=lot, actor=current_actor())
    return Response(
        data,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="batch-record-{lot}.pdf"',
            "Cache-Control": "no-store",
        },
    )
