"""What a worker last heard from each printer (~HS): device state, not GMP data.

One row per change of state, appended: two workers reporting at once never fight over one row,
and the queue page reads the newest per printer. The same state heard again only moves
checked_at. A change between ready, not ready and no answer is also in the audit trail (see
lims.printing.status); what the printer did to a job is in the job's own events.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, true
from sqlmodel import Field, SQLModel

from lims.models import utcnow


class PrinterCheck(SQLModel, table=True):
    __tablename__ = "printer_check"
    __table_args__ = (Index("ix_printer_check_printer", "printer_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    printer_id: int = Field(foreign_key="printer.id")
    # Last heard (moves on with each report of the same state); since: when this state began.
    checked_at: datetime = Field(default_factory=utcnow)
    since: datetime = Field(default_factory=utcnow)
    ready: bool
    # In words: "ready", or what stops it ("paper out, head open", "no answer to ~HS").
    summary: str = Field(max_length=500)
    # False: nothing answered ~HS (silent, unplugged, port missing); "no answer" is a state too.
    answered: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    job_id: int | None = Field(default=None, foreign_key="print_job.id")
    worker: str | None = Field(default=None, max_length=200)
