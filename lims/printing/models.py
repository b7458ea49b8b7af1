"""What a worker last heard from each printer (~HS): device state, not GMP data.

One row per report, appended: two workers reporting at once never fight over one row, and the
queue page reads the newest per printer. A printer's state is not a record of the product, so
it is not in the audit trail; what it did to a job is, in the job's own events.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from lims.models import utcnow


class PrinterCheck(SQLModel, table=True):
    __tablename__ = "printer_check"
    __table_args__ = (Index("ix_printer_check_printer", "printer_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    printer_id: int = Field(foreign_key="printer.id")
    checked_at: datetime = Field(default_factory=utcnow)
    ready: bool
    # In words: "ready", or what stops it ("paper out, head open", "no answer to ~HS").
    summary: str = Field(max_length=500)
    job_id: int | None = Field(default=None, foreign_key="print_job.id")
    worker: str | None = Field(default=None, max_length=200)
