"""The final-product label of a cell-therapy bag: DIN, product code, COI and expiry.

A treatment episode's cell product (a sample under its COI whose sample type has a release
specification) gets this label once QA released the episode under its DIN, product code and
expiry date: each as a Code 128 with its eye-readable text, on the product-bag stock
(`printers.zpl`, template `product-bag`), above the sample's own barcode.
"""

from __future__ import annotations

from sqlmodel import Session

from lims import labels
from lims.models import Sample
from lims.quality import release
from lims.therapy import isbt
from lims.therapy.models import ProductCode
from lims.therapy.sample_custody import episode_of

# ISBT 128 DIN as scanned (data identifier "=", the 13 characters, flags "00"); its check
# character is printed beside the text, never encoded.
FLAGS = "00"


def product_identity(session: Session, s: Sample) -> labels.ProductIdentity | None:
    """Return the title, date line and identity codes of a released episode's cell product."""
    if not s.coi:
        return None
    ep = episode_of(session, s)
    if ep is None or ep.din is None or ep.expires_on is None or ep.product_code_id is None:
        return None
    if ep.state in ("cancelled", "failed") or not release.needs_quality_release(session, s):
        return None
    code = session.get(ProductCode, ep.product_code_id)
    din = isbt.Din(ep.din, FLAGS, isbt.din_check(ep.din))
    expiry = ep.expires_on.isoformat()
    codes = (
        ("din", f"={ep.din}{FLAGS}", f"DIN {din.eye_readable()}"),
        ("product_code", code.code, f"PRODUCT {code.code}"),
        ("coi", s.coi, f"COI {s.coi}"),
        ("expiry", expiry, f"EXP {expiry}"),
    )
    return code.description, f"EXP {expiry}", codes


labels.PRODUCT_IDENTITY.append(product_identity)
