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
from lims.audit.queries import (
    Filters,
    count_events,
    event_dict,
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
    "canonical_json",
    "count_events",
    "event_dict",
    "event_hash",
    "iter_events",
    "iter_rows",
    "lineage_count_after",
    "lineage_events",
    "lineage_newest_seq",
    "query",
    "record",
    "record_by",
    "ts_text",
    "ts_text_column",
    "update_before_append",
    "verify",
]
