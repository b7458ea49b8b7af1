"""Query-string models: whole numbers written as digits only, no unknown parameters."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

_DIGITS = re.compile(r"^[0-9]{1,12}$")


class QueryModel(BaseModel):
    """Base for query parameters; '0.0' or '1e3' for a count or cursor is malformed, not 0."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _digits_for_integers(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields[info.field_name]
        if isinstance(value, str) and "int" in str(field.annotation) and not _DIGITS.match(value):
            raise ValueError("must be a whole number written with digits only")
        return value
