"""Pooled derivatives: several parent samples make one new sample (multi-parent lineage).

The rule of identity: a pool mixes material of one COI only, and carries that COI; a pool of
several COIs is allowed only for a product whose code is flagged allogeneic (donor material
made for other patients), and then gets a COI of its own, its parents listed in the lineage.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlmodel import Session, col, select

from lims import audit, custody, samples
from lims.accounts.users import Actor
from lims.errors import BadRequest, Forbidden, NotFound, Refused
from lims.identifiers import coi_id, sample_barcode
from lims.inputs import Input, Line
from lims.models import Project, Sample, SampleType, utcnow
from lims.roles import LAB
from lims.therapy import products
from lims.therapy.models import PoolParent

MAX_PARENTS = 50


class PoolIn(Input):
    parents: list[Line] = Field(min_length=2, max_length=MAX_PARENTS, description="barcodes")
    sample_type: Line = Field(min_length=1, max_length=64)
    volume: float | None = Field(default=None, gt=0, lt=1e7)
    unit: Line | None = Field(default=None, max_length=16)
    container: Line | None = Field(default=None, max_length=32)
    product_code: Line | None = Field(
        default=None, max_length=8, description="ISBT 128 code; allogeneic ones may mix COIs"
    )


def pool_coi_refusal(cois: list[str], allogeneic: bool) -> str | None:
    """Say why parents of these COIs may not be pooled, or None. Pure: the rule, once."""
    distinct = sorted(set(cois))
    if len(distinct) > 1 and not allogeneic:
        return (
            f"a pool may mix material of one COI only: these parents carry {', '.join(distinct)}; "
            "only a product whose code is flagged allogeneic may pool several"
        )
    return None


def pool_parents(session: Session, pool: Sample) -> list[Sample]:
    """Return a pool's parents, oldest first (the same order on both engines)."""
    ids = select(PoolParent.parent_id).where(PoolParent.pool_id == pool.id)
    stmt = select(Sample).where(col(Sample.id).in_(ids)).order_by(col(Sample.id))
    return list(session.exec(stmt).all())


def make_pool(session: Session, *, data: PoolIn, actor: Actor) -> Sample:
    """Register one pooled derivative of several parents, as one audit event."""
    if actor.role not in LAB:
        raise Forbidden("pooling needs a technician, qa or admin role", code="role_required")
    wanted = [b.strip().upper() for b in data.parents]
    if len(set(wanted)) != len(wanted):
        raise BadRequest("a parent is listed twice", code="duplicate_barcode")
    parents = [samples.get_sample(session, b, actor) for b in wanted]
    for p in parents:
        if p.state in custody.TERMINAL or p.state == "registered":
            raise Refused(
                f"parent {p.barcode} is {p.state}; pool only material in hand",
                code="parent_unusable",
            )
    if len({p.project_id for p in parents}) != 1:
        raise Refused("a pool's parents must all be of one project", code="project_mismatch")
    stype = session.exec(select(SampleType).where(SampleType.code == data.sample_type)).first()
    if stype is None:
        raise NotFound(f"no sample type {data.sample_type!r}", code="unknown_sample_type")
    code = products.get_product_code(session, data.product_code) if data.product_code else None
    why = pool_coi_refusal([p.coi for p in parents], bool(code and code.allogeneic))
    if why is not None:
        raise Refused(why, code="coi_mix_refused", cois=sorted({p.coi for p in parents}))
    year = utcnow().year
    if len({p.coi for p in parents}) == 1:
        coi, scheme = parents[0].coi, parents[0].coi_scheme
    else:
        coi, scheme = coi_id(year, samples.next_serial(session, f"coi-{year}")), "local"
    first = parents[0]
    pool = Sample(
        barcode=sample_barcode(year, samples.next_serial(session, f"sample-{year}")),
        sample_type_id=stype.id,
        project_id=first.project_id,
        org_id=first.org_id,
        volume=data.volume,
        unit=data.unit,
        container=data.container,
        lineage="pool",
        coi=coi,
        coi_scheme=scheme,
    )
    session.add(pool)
    session.flush()
    for p in parents:
        session.add(PoolParent(pool_id=pool.id, parent_id=p.id))
    session.flush()
    after: dict[str, Any] = {
        **samples.snapshot(session, pool),
        "sample_type": stype.code,
        "project": session.get(Project, first.project_id).code,
        "coi": coi,
        "lineage": "pool",
        "parents": [{"barcode": p.barcode, "coi": p.coi} for p in parents],
        "product_code": code.code if code else None,
    }
    audit.record_by(
        session,
        actor,
        action="sample.pool",
        entity_type="sample",
        entity_id=pool.barcode,
        after=after,
        org_id=pool.org_id,
    )
    return pool


def pool_dict(session: Session, pool: Sample) -> dict[str, Any]:
    """Return a pool with its parents and their COIs."""
    return {
        **samples.sample_dict(session, pool),
        "parents": [
            {"barcode": p.barcode, "coi": p.coi, "state": p.state}
            for p in pool_parents(session, pool)
        ],
    }
