"""Measure the advance of every printable ASCII character of ZPL font ^A0 on an independent
renderer (zplkit), at every font size our label templates print.

`python -m tests.printers.font_widths` prints the table printers/zpl.py keeps; the font-width
tests measure again and compare, so the table cannot drift from what is printed.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict

import zplkit
from PIL import Image, ImageOps

from printers.zpl import TEMPLATES, LabelContent, fh_escape, plan_label

PRINTABLE_ASCII = "".join(chr(i) for i in range(0x20, 0x7F))
RUN = 10  # a run of one glyph: its advance is the step between the first and the last copy
_ORIGIN = 10


def font_sizes() -> list[int]:
    """Return every ^A0 font width the templates print, REPRINT marks included."""
    sizes: set[int] = set()
    probe = LabelContent("S26-000123-E", "PBMC", lot="L", date="d", coi_short="c", reprint=True)
    for template in TEMPLATES.values():
        sizes.update(t.width for t in plan_label(probe, template).texts)
    return sorted(sizes)


def ink_right(text: str, font: int, dpi: int = 203) -> int | None:
    """Return how far right of its origin text inks at font (dots), or None for no ink."""
    width = _ORIGIN * 2 + (len(text) + 2) * font
    height = font * 2 + _ORIGIN
    zpl = (
        f"^XA^CI28^PW{width}^LL{height}^LH0,0^FO{_ORIGIN},{_ORIGIN}"
        f"^A0N,{font},{font}^FH_^FD{fh_escape(text)}^FS^XZ"
    ).encode()
    doc = zplkit.render(zpl, zplkit.Options(width=width, height=height, dpi=dpi))
    img = Image.open(io.BytesIO(doc.labels[0].png())).convert("L")
    box = ImageOps.invert(img).getbbox()
    return None if box is None else box[2] - _ORIGIN


def advance(ch: str, font: int) -> float:
    """Return ch's advance at font as a fraction of the font width (measured, not looked up)."""
    if ch == " ":
        # A space has no ink: measure it between two inked letters.
        return (ink_right("x" + " " * RUN + "x", font) - ink_right("xx", font)) / RUN / font
    one, run = ink_right(ch, font), ink_right(ch * RUN, font)
    if one is None or run is None:  # a hairline glyph the renderer drops at a small size
        return 0.0
    return (run - one) / (RUN - 1) / font


def measure() -> dict[str, float]:
    """Return the largest advance of each printable ASCII character over the template sizes."""
    sizes = font_sizes()
    return {ch: max(advance(ch, size) for size in sizes) for ch in PRINTABLE_ASCII}


def table_source(advances: dict[str, float]) -> str:
    """Return printers/zpl.py's _ADVANCE_CLASSES literal: characters grouped by advance."""
    groups: dict[float, list[str]] = defaultdict(list)
    for ch, adv in advances.items():
        groups[math.ceil(adv * 100) / 100].append(ch)
    lines = ["_ADVANCE_CLASSES: tuple[tuple[str, float], ...] = ("]
    for adv in sorted(groups):
        lines.append(f"    ({''.join(groups[adv])!r}, {adv:.2f}),")
    lines.append(")")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table_source(measure()))
