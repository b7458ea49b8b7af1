"""Label printer drivers: ZPL, status parsing, serial transport, the claimed-job loop, simulator.

Rule of the house: nothing here imports the lims package or Flask.
"""

from printers.driver import BatchOutcome, ZplPrinter
from printers.errors import (
    LabelError,
    LabelFitError,
    PrinterError,
    PrinterNotReady,
    PrinterUnreachable,
    StatusParseError,
)
from printers.status import PrinterInfo, PrinterStatus, parse_host_identification, parse_host_status
from printers.zpl import (
    TEMPLATES,
    LabelContent,
    Template,
    get_template,
    render_batch,
    render_format,
    render_label,
    render_recall,
)

__all__ = [
    "TEMPLATES",
    "BatchOutcome",
    "LabelContent",
    "LabelError",
    "LabelFitError",
    "PrinterError",
    "PrinterInfo",
    "PrinterNotReady",
    "PrinterStatus",
    "PrinterUnreachable",
    "StatusParseError",
    "Template",
    "ZplPrinter",
    "get_template",
    "parse_host_identification",
    "parse_host_status",
    "render_batch",
    "render_format",
    "render_label",
    "render_recall",
]
