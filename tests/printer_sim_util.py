"""Shared helpers for the printer tests: sample label contents and barcode decoding."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image, ImageOps

from printers.zpl import LabelContent


def sample_contents(n: int, title: str = "PBMC") -> list[LabelContent]:
    """Return n distinct sample labels S26-000001-A ... in order."""
    return [
        LabelContent(
            barcode=f"S26-{i:06d}-A",
            title=title,
            lot="LV-2026-0042",
            date="2026-11-29",
            coi_short=f"COI-26-{i:06d}-K",
        )
        for i in range(1, n + 1)
    ]


def decode_image(img: Image.Image, border: int = 20) -> list[tuple[str, str]]:
    """Decode every barcode in img; return (format, text) pairs."""
    padded = ImageOps.expand(img.convert("L"), border=border, fill=255)
    return [(str(r.format), r.text) for r in zxingcpp.read_barcodes(padded)]


def decode_png(png: bytes) -> list[tuple[str, str]]:
    """Decode every barcode in a PNG."""
    return decode_image(Image.open(io.BytesIO(png)))
