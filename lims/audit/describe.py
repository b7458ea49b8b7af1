"""Events in words, for people reading the trail: what record, and what changed in it."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

# A summary is a cell or a line: a whole record's JSON stays in the raw columns.
SUMMARY_LIMIT = 400


def record_text(entity_type: str | None, entity_id: str | None) -> str:
    """Return the record an event is about as a reader says it: 'sample S26-000123-K'."""
    kind = (entity_type or "").replace("_", " ")
    return f"{kind} {entity_id}".strip() if entity_id else kind


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, list):
        return "; ".join(_plain(v) for v in value)
    return str(value)


def changes(before: Any, after: Any) -> list[tuple[str, str, str]]:
    """Return (field, before, after) for every field an event changed (version left out)."""
    before, after = before or {}, after or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [("", _plain(before), _plain(after))]
    out = []
    for key in dict.fromkeys([*before, *after]):
        b, a = before.get(key), after.get(key)
        if b == a or key == "version":
            continue
        if isinstance(b, list) and isinstance(a, list):
            # A list (a lot's QC results): what left it and what joined it.
            b, a = [x for x in b if x not in a], [x for x in a if x not in b]
        out.append((key, _plain(b), _plain(a)))
    return out


@lru_cache(maxsize=4096)
def _loads(raw: str | None) -> Any:
    # Cached: one event's "after" is most often the next event's "before" of the same record,
    # read again moments later in an export. The parsed value is only read, never changed.
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # not JSON: shown as it is


def _scalar(v: Any) -> str:
    return "" if v is None else v if type(v) is str else _plain(v)


def change_text(before_json: str | None, after_json: str | None) -> str:
    """Return one line saying what changed: 'state: received -> quarantine; location: BOX-0002'.

    Exports call it for every event (hundreds of thousands a second): plain loops, no helpers
    for the common case of two flat records.
    """
    if not before_json and not after_json:
        return ""
    before, after = _loads(before_json), _loads(after_json)
    parts = []
    if (before is None or type(before) is dict) and (after is None or type(after) is dict):
        before, after = before or {}, after or {}
        for key, a in after.items():
            b = before.get(key)
            if b == a or key == "version":
                continue
            if type(b) is list and type(a) is list:
                b, a = [x for x in b if x not in a], [x for x in a if x not in b]
            bt, at = _scalar(b), _scalar(a)
            parts.append(
                f"{key}: {bt} -> {at}" if bt and at else f"{key}: {at or bt + ' -> (none)'}"
            )
        for key, b in before.items():
            if key not in after and b is not None and key != "version":
                parts.append(f"{key}: {_scalar(b)} -> (none)")
    else:
        for key, b, a in changes(before, after):
            name = f"{key}: " if key else ""
            parts.append(f"{name}{b} -> {a}" if b and a else f"{name}{a or b + ' -> (none)'}")
    text = "; ".join(parts)
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 3] + "..."
