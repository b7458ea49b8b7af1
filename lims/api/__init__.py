"""JSON API blueprints (OpenAPI at /openapi.json, docs at /docs)."""

from __future__ import annotations

from apiflask import APIFlask


def register(app: APIFlask) -> None:
    """Register every API blueprint on app."""
    from lims.api import (
        admin,
        audit,
        deviations,
        lots,
        manufacturing,
        printing,
        quality,
        reports,
        rooms,
        samples,
        scans,
        schemas,
        shipments,
        therapy,
        trail,
    )

    schemas.register(app)
    for module in (
        samples,
        lots,
        quality,
        audit,
        admin,
        scans,
        reports,
        printing,
        deviations,
        trail,
        therapy,
        shipments,
        rooms,
        manufacturing,
    ):
        app.register_blueprint(module.bp)
