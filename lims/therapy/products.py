"""The centre's catalogue of ISBT 128 product description codes (set up by admin)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlmodel import Session, col, select

from lims.accounts.users import Actor
from lims.errors import Conflict, Forbidden, NotFound, Refused
from lims.inputs import Input, Line
from lims.masterdata import add_record
from lims.therapy.isbt import check_product_code
from lims.therapy.models import ProductCode


class ProductCodeIn(Input):
    code: Line = Field(min_length=1, max_length=8, description="ISBT 128 code, e.g. S1234")
    description: Line = Field(min_length=1, max_length=200)
    allogeneic: bool = Field(default=False, description="donor material for other patients")
    min_temp_c: float | None = Field(
        default=None, ge=-273, le=100, description="lowest temperature in transit, degrees C"
    )
    max_temp_c: float | None = Field(
        default=None, ge=-273, le=100, description="highest temperature in transit, degrees C"
    )


def product_dict(p: ProductCode) -> dict[str, Any]:
    """Return a catalogue entry's JSON."""
    return {
        "code": p.code,
        "description": p.description,
        "allogeneic": p.allogeneic,
        "active": p.active,
        "min_temp_c": p.min_temp_c,
        "max_temp_c": p.max_temp_c,
    }


def list_product_codes(session: Session) -> list[ProductCode]:
    """Return the catalogue, by code."""
    return list(session.exec(select(ProductCode).order_by(col(ProductCode.code))).all())


def get_product_code(session: Session, code: str) -> ProductCode:
    """Return an active catalogue entry, or refuse a code the centre has not set up."""
    value = check_product_code(code)
    p = session.exec(select(ProductCode).where(ProductCode.code == value)).first()
    if p is None:
        raise NotFound(
            f"product code {value} is not in the centre's catalogue (flask setup product-code)",
            code="unknown_product_code",
        )
    if not p.active:
        raise Refused(f"product code {value} is withdrawn", code="product_code_withdrawn")
    return p


def add_product_code(session: Session, *, data: ProductCodeIn, actor: Actor) -> ProductCode:
    """Add a product description code to the catalogue (admin)."""
    if actor.role != "admin" or not actor.sees_all:
        raise Forbidden(
            "the product catalogue is set up by the centre's admin", code="role_required"
        )
    code = check_product_code(data.code)
    check_limits(data.min_temp_c, data.max_temp_c)
    if session.exec(select(ProductCode.id).where(ProductCode.code == code)).first():
        raise Conflict(f"product code {code} exists already", code="exists")
    p = ProductCode(
        code=code,
        description=data.description.strip(),
        allogeneic=data.allogeneic,
        min_temp_c=data.min_temp_c,
        max_temp_c=data.max_temp_c,
    )
    return add_record(session, actor, p, "product_code", code, product_dict(p))


def check_limits(low: float | None, high: float | None) -> None:
    """Refuse transit limits that are half given or the wrong way round."""
    if (low is None) != (high is None):
        raise Refused(
            "give both the lowest and the highest transit temperature, or neither",
            code="temperature_limits",
        )
    if low is not None and high is not None and low >= high:
        raise Refused(
            f"the lowest transit temperature ({low} C) must be below the highest ({high} C)",
            code="temperature_limits",
        )
