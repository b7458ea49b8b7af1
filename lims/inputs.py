"""Shared pieces of the JSON request models: exact types, and text a label or record can hold.

Pydantic's default (lax) mode turns `true` into 1.0 and `"yes"` into True. In a GMP record a
volume of `true` or a QC result of `"yes"` is a client bug, not data: request bodies are
validated strictly (a JSON number may still fill a float field), and free text refuses control
and invisible formatting characters, which print as nothing on a label and can make an audit
line read differently from what it holds (a right-to-left override, a terminal escape).
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    ValidationError,
)

# Joiners shape letters in several scripts (Persian, Devanagari) and are fine in a name.
_JOINERS = frozenset("\u200c\u200d")


# Control and invisible formatting characters, and the Unicode line and paragraph separators
# (U+2028, U+2029), which break a line in some viewers and in Python's splitlines().
_REFUSED = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _check(value: str, allowed: frozenset[str]) -> str:
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in _REFUSED:
            raise ValueError(
                f"must not contain control or invisible formatting characters (found {ch!r})"
            )
    return value


def check_line(value: str) -> str:
    """Return value if it is one line of visible text, else raise ValueError saying why."""
    return _check(value, _JOINERS)


def check_text(value: str) -> str:
    """Return value if it is visible text (line breaks and tabs allowed), else ValueError."""
    return _check(value, _JOINERS | frozenset("\n\r\t"))


# One line that is stored, shown and printed: names, codes, a lot's vector.
Line = Annotated[str, AfterValidator(check_line)]
# Free text that may run over lines (a reason, a condition), otherwise as Line.
Text = Annotated[str, AfterValidator(check_text)]


def _day_text(value: Any) -> Any:
    if isinstance(value, date | str):
        return value
    # Lax parsing would read 0 as 1970-01-01.
    raise ValueError("give a date as text, like 2027-06-30")


# A calendar day, written in JSON as text (ISO 8601).
Day = Annotated[date, Strict(False), BeforeValidator(_day_text)]


class Input(BaseModel):
    """Base of the request bodies: unknown fields refused, JSON types taken exactly."""

    model_config = ConfigDict(extra="forbid", strict=True)


def blank(value: object) -> bool:
    """Tell whether a given value counts as not given (None, or text of only spaces)."""
    return value is None or (isinstance(value, str) and not value.strip())


def describe(err: ValidationError, hints: dict[str, str] | None = None) -> tuple[str, str]:
    """Return (field, what is wrong) of a validation error's first problem, as a person says it.

    hints: what a value must look like, by the regular expression it failed to match.
    """
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "input"
    ctx = first.get("ctx") or {}
    if "pattern" in ctx:
        said = (hints or {}).get(ctx["pattern"], first["msg"])
    elif "max_length" in ctx:
        said = f"at most {ctx['max_length']} characters"
    elif first["type"] == "value_error":
        said = str(ctx.get("error", first["msg"]))
    else:
        said = first["msg"]
    return where, said
