"""Exceptions raised by the printer package."""

from __future__ import annotations


class PrinterError(Exception):
    """Base class for every error raised by the printers package."""


class LabelError(PrinterError, ValueError):
    """Label content is unusable (bad characters, unknown template)."""


class LabelFitError(LabelError):
    """A field does not fit the label; the label is refused rather than clipped."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class StatusParseError(PrinterError, ValueError):
    """A printer reply (~HS, ~HI) is malformed."""


class PrinterUnreachable(PrinterError):
    """The printer's port cannot be opened or went away (unplugged, EIO, refused)."""

    # True when the bytes of the failing write were all handed to the OS before the error.
    wrote_all: bool = False


class PrinterNotReady(PrinterError):
    """The printer is silent or reports a fault; nothing is sent to it."""

    def __init__(self, reason: str, status: object | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
