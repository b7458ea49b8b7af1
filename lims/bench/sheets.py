"""Printable bench sheets: the command codes and a person's badge, as Code 128 barcodes (PDF).

A bench is driven by scans: the codes a technician would otherwise type with gloves on are
printed once, laminated and kept beside the scanner.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from reportlab.graphics.barcode import code128
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas
from sqlmodel import Session, select

from lims import scanning
from lims.accounts.users import Actor
from lims.errors import NotFound, Refused
from lims.models import User

# Wide enough bars for a hand scanner at arm's length on a laser print.
_BAR_WIDTH = 0.38 * mm
_BAR_HEIGHT = 14 * mm


@dataclass(frozen=True)
class Code:
    """One scannable code on a sheet, with what it does in words."""

    data: str
    words: str


_COMMAND_WORDS = {
    "RECEIVE": "receive mode: tubes that arrived (a patient's bag: its COI label first)",
    "QUARANTINE": "quarantine mode",
    "STORE": "store mode: then scan the box",
    "CHECKOUT": "check out mode: tubes into your custody",
    "CHECKIN": "check in mode: then scan the box",
    "HANDOVER": "hand-over mode: then the expected COI label",
    "DISPOSE": "dispose mode: then a reason",
    "RECEIVE-MATERIAL": "receive material mode: scan the supplier GS1 barcodes",
    "USE-MATERIAL": "use material mode: the lot's label, then the materials going into it",
    "DONE": "end the task (you stay signed in)",
    "LOGOUT": "sign off this bench",
    "ACK": "acknowledge the refusals on screen (a stop also needs a QA badge)",
}


def command_codes() -> list[tuple[str, list[Code]]]:
    """Return the sheet's sections: commands, reasons and conditions, each a list of codes."""
    commands = [
        Code(f"CMD:{name}", _COMMAND_WORDS.get(name, name.lower())) for name in scanning.COMMANDS
    ]
    reasons = [Code(f"CMD:REASON:{k}", f"reason: {v}") for k, v in scanning.REASONS.items()]
    conditions = [
        Code(f"CMD:CONDITION:{k}", f"condition: {v}") for k, v in scanning.CONDITIONS.items()
    ]
    return [
        ("Commands", commands),
        ("Reasons (dispose mode)", reasons),
        ("Conditions (receive mode)", conditions),
    ]


def command_sheet() -> bytes:
    """Return the PDF sheet of every command code, as Code 128 barcodes with their meaning."""
    sheet = _Sheet("Bench command codes", "Scan a code instead of typing it. Print at 100 %.")
    for title, codes in command_codes():
        sheet.heading(title)
        for code in codes:
            sheet.code(code)
    return sheet.finish()


def badge_sheet(session: Session, *, username: str, actor: Actor) -> bytes:
    """Return the PDF of a person's badge code (the admin's, or one's own)."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None or not (actor.role == "admin" or actor.user.id == user.id):
        # Only an administrator learns whether someone else has an account.
        raise NotFound(f"no badge sheet for {username[:64]!r} for you", code="unknown_user")
    if not user.badge:
        raise Refused(
            f"{user.full_name} has no badge yet: an administrator gives one with "
            f"`flask --app app user badge {user.username} CODE`",
            code="no_badge",
        )
    sheet = _Sheet(
        f"Badge of {user.full_name}",
        "Keep it as you keep a key: it signs you in at a bench and unlocks your bench page.",
    )
    sheet.heading(f"{user.full_name} ({user.username}, {user.role.replace('_', ' ')})")
    for _ in range(3):
        sheet.code(Code(user.badge, f"badge of {user.full_name}"))
    return sheet.finish()


class _Sheet:
    """An A4 page (or more) of barcodes, each with its text and meaning beside it."""

    def __init__(self, title: str, note: str) -> None:
        self.buf = io.BytesIO()
        self.pdf = canvas.Canvas(self.buf, pagesize=A4)
        self.pdf.setTitle(title)
        self.title, self.note = title, note
        self.width, self.height = A4
        self._page()

    def _page(self) -> None:
        self.pdf.setFont("Helvetica-Bold", 16)
        self.pdf.drawString(20 * mm, self.height - 20 * mm, self.title)
        self.pdf.setFont("Helvetica", 9)
        self.pdf.drawString(20 * mm, self.height - 26 * mm, self.note)
        self.y = self.height - 34 * mm

    def _room(self, needed: float) -> None:
        if self.y - needed < 15 * mm:
            self.pdf.showPage()
            self._page()

    def heading(self, text: str) -> None:
        self._room(10 * mm + _BAR_HEIGHT + 10 * mm)
        self.pdf.setFont("Helvetica-Bold", 12)
        self.pdf.drawString(20 * mm, self.y - 5 * mm, text)
        self.y -= 9 * mm

    def code(self, code: Code) -> None:
        self._room(_BAR_HEIGHT + 9 * mm)
        bars = code128.Code128(
            code.data, barWidth=_BAR_WIDTH, barHeight=_BAR_HEIGHT, humanReadable=False
        )
        # The quiet zones stay white: nothing is drawn within 10 modules of the bars.
        bars.drawOn(self.pdf, 20 * mm, self.y - _BAR_HEIGHT)
        text_x = 20 * mm + bars.width + 8 * mm
        self.pdf.setFont("Courier-Bold", 11)
        self.pdf.drawString(text_x, self.y - 5 * mm, code.data)
        self.pdf.setFont("Helvetica", 9)
        self.pdf.drawString(text_x, self.y - 10 * mm, code.words)
        self.y -= _BAR_HEIGHT + 8 * mm

    def finish(self) -> bytes:
        self.pdf.showPage()
        self.pdf.save()
        return self.buf.getvalue()
