"""Query-string models: whole numbers written as digits only, no unknown parameters."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

_DIGITS = re.compile(r"^[0-9]{1,12}$")
# Pydantic reads a bare number as seconds since 1970: `until=0.5` was a time, not an error.
_NUMBER = re.compile(r"^\s*[-+]?[0-9._]*(e[-+]?[0-9]+)?\s*$", re.IGNORECASE)


class QueryModel(BaseModel):
    """Base for query parameters; '0.0' for a count, or '0.5' for a time, is malformed."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _digits_for_integers(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields[info.field_name]
        if isinstance(value, str) and "int" in str(field.annotation) and not _DIGITS.match(value):
            raise ValueError("must be a whole number written with digits only")
        if isinstance(value, str) and "datetime" in str(field.annotation) and _NUMBER.match(value):
            raise ValueError("give a time as ISO 8601 text, like 2026-01-31T12:00:00Z")
        return value
