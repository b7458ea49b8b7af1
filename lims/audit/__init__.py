"""Append-only, hash-chained audit trail: `audit.record(...)`, `audit.verify(...)`, QA queries."""

from lims.audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_json,
    event_hash,
    record,
    record_by,
    ts_text,
    update_before_append,
)
from lims.audit.checkpoint import Checkpoint, CheckpointError, CheckpointStore
from lims.audit.describe import change_text, changes, record_text
from lims.audit.queries import (
    Filters,
    actions_in_trail,
    actors_named,
    count_events,
    event_dict,
    full_names,
    iter_events,
    iter_rows,
    lineage_count_after,
    lineage_events,
    lineage_newest_seq,
    query,
    ts_text_column,
)
from lims.audit.verification import VerifyResult, verify

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "Filters",
    "VerifyResult",
    "actions_in_trail",
    "actors_named",
    "canonical_json",
    "change_text",
    "changes",
    "count_events",
    "event_dict",
    "event_hash",
    "full_names",
    "iter_events",
    "iter_rows",
    "lineage_count_after",
    "lineage_events",
    "lineage_newest_seq",
    "query",
    "record",
    "record_text",
    "record_by",
    "ts_text",
    "ts_text_column",
    "update_before_append",
    "verify",
]
