"""QA records read from the trail: filters for a QA reader, chain-of-custody PDFs, CSV exports."""

from lims.reports.coa import Certificate, certificate, record_issue
from lims.reports.csv import (
    CSV_COLUMNS,
    EXPORT_COLUMNS,
    HUMAN_COLUMNS,
    checkpoint_for_export,
    csv_batches,
    csv_chunks,
    csv_text,
    export_csv,
)
from lims.reports.data import ReportData, lot_data, sample_data
from lims.reports.filters import as_utc, check_may_verify, filters_for, lineage, people_named
from lims.reports.pdf import (
    checkpoint_statement,
    export_pdf,
    lot_report,
    render,
    sample_report,
    verify_statement,
)

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_COLUMNS",
    "HUMAN_COLUMNS",
    "Certificate",
    "ReportData",
    "as_utc",
    "certificate",
    "check_may_verify",
    "checkpoint_for_export",
    "checkpoint_statement",
    "csv_batches",
    "csv_chunks",
    "csv_text",
    "export_csv",
    "export_pdf",
    "filters_for",
    "lineage",
    "lot_data",
    "lot_report",
    "people_named",
    "record_issue",
    "render",
    "sample_data",
    "sample_report",
    "verify_statement",
]
