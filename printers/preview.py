"""Previews for screens: Code 128 barcodes (PNG/SVG, python-barcode) and whole labels (PNG)."""

from __future__ import annotations

import io

import barcode
from barcode.writer import ImageWriter, SVGWriter
from PIL import Image, ImageDraw, ImageFont
from reportlab.graphics.barcode.ecc200datamatrix import ECC200DataMatrix

from printers.zpl import LabelContent, LabelPlan, Template, plan_label

__all__ = ["barcode_png", "barcode_svg", "label_png", "render_plan"]


def _code128(value: str) -> barcode.Barcode:
    return barcode.get("code128", value)


def barcode_png(value: str, module_px: int = 2, height_px: int = 60, text: bool = True) -> bytes:
    """Render value as a Code 128 PNG (with the human-readable line unless text=False)."""
    options = {
        "module_width": module_px * 25.4 / 300,  # python-barcode sizes in mm at its dpi
        "module_height": height_px * 25.4 / 300,
        "dpi": 300,
        "write_text": text,
        "quiet_zone": 10 * module_px * 25.4 / 300,
    }
    buf = io.BytesIO()
    barcode.get("code128", value, writer=ImageWriter()).write(buf, options)
    return buf.getvalue()


def barcode_svg(value: str, text: bool = True) -> bytes:
    """Render value as a Code 128 SVG document."""
    buf = io.BytesIO()
    barcode.get("code128", value, writer=SVGWriter()).write(buf, {"write_text": text})
    return buf.getvalue()


class _RectRecorder:
    """Stand-in canvas that records the module rectangles a reportlab barcode draws."""

    def __init__(self) -> None:
        self.rects: list[tuple[float, float, float, float]] = []

    def rect(self, x: float, y: float, w: float, h: float, **_: object) -> None:
        self.rects.append((x, y, w, h))

    def __getattr__(self, name: str):  # colour and state calls are irrelevant to a bitmap
        return lambda *a, **k: None


def _datamatrix_modules(value: str) -> list[tuple[int, int]]:
    symbol = ECC200DataMatrix(value=value, barWidth=1)
    symbol.x = symbol.y = 0
    symbol.wrap(0, 0)
    recorder = _RectRecorder()
    symbol.canv = recorder
    symbol.draw()
    rows = symbol.row_modules
    # reportlab's y grows upwards; flip to image rows.
    return [(int(x), rows - 1 - int(y)) for x, y, _w, _h in recorder.rects]


def render_plan(plan: LabelPlan, scale: int = 1) -> Image.Image:
    """Draw a planned label as a 1-bit image at the printer's resolution times scale."""
    t: Template = plan.template
    img = Image.new("1", (t.width_dots * scale, t.height_dots * scale), 1)
    draw = ImageDraw.Draw(img)
    for bc in plan.barcodes:
        if bc.kind == "code128":
            bits = _code128(bc.data).build()[0]
            for i, bit in enumerate(bits):
                if bit == "1":
                    x = (bc.x + i * bc.module) * scale
                    draw.rectangle(
                        [
                            x,
                            bc.y * scale,
                            x + bc.module * scale - 1,
                            (bc.y + bc.height) * scale - 1,
                        ],
                        fill=0,
                    )
        else:
            box = bc.box or bc.width_dots
            cell = max(1, box // 44) * scale
            for mx, my in _datamatrix_modules(bc.data):
                x, y = bc.x * scale + mx * cell, bc.y * scale + my * cell
                draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=0)
    for tf in plan.texts:
        font = ImageFont.load_default(size=max(6, int(tf.height * scale * 0.9)))
        draw.text((tf.x * scale, tf.y * scale), tf.text, font=font, fill=0)
    return img


def label_png(content: LabelContent, template: Template, scale: int = 2) -> bytes:
    """Render a preview PNG of the whole label (same plan as the ZPL and PDF paths)."""
    img = render_plan(plan_label(content, template), scale)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
