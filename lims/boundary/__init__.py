"""The request boundary: one unit of work per request, who is asking, JSON errors."""

from lims.boundary.api import accepts_nul, error_response, keeps_secret, write
from lims.boundary.auth import current_actor, require
from lims.boundary.unit import get_db

__all__ = [
    "accepts_nul",
    "current_actor",
    "error_response",
    "get_db",
    "keeps_secret",
    "require",
    "write",
]
