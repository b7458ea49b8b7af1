"""The pages of every area, each its own blueprint, nested once under the pages' parent."""

from lims.web import (
    accounts,
    audit,
    bench,
    deviations,
    home,
    lots,
    manufacturing,
    printing,
    quality,
    quality_trail,
    rooms,
    samples,
    shipments,
    storage,
    therapy,
)
from lims.web.common import bp

AREAS = (
    home,
    accounts,
    bench,
    samples,
    lots,
    quality,
    storage,
    audit,
    printing,
    deviations,
    quality_trail,
    therapy,
    shipments,
    rooms,
    manufacturing,
)
# Nested here, once per process: a blueprint cannot change after its first registration, and
# the parent's hooks (sign-in, CSRF, headers, error pages) then cover every area.
for _area in AREAS:
    bp.register_blueprint(_area.bp)
