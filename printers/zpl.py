"""Pure ZPL II rendering: label content + template -> printer bytes (no I/O here)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from printers.errors import LabelError, LabelFitError

__all__ = [
    "BarcodeField",
    "LabelContent",
    "LabelPlan",
    "Layout",
    "TEMPLATES",
    "Template",
    "TextField",
    "code128_modules",
    "datamatrix_modules",
    "fh_escape",
    "get_template",
    "plan_label",
    "RenderedBatch",
    "render_batch",
    "render_format",
    "render_label",
    "render_recall",
    "text_width_dots",
]

# Barcode values are ids, not prose: a closed set keeps them readable by every scanner and keeps
# out ^ ~ (ZPL prefixes), _ (our ^FH indicator and Data Matrix escape) and > (Code 128 invocation).
BARCODE_RE = re.compile(r"[0-9A-Za-z\-./:+#*=,()]{1,48}")
FORMAT_NAME_RE = re.compile(r"[A-Z0-9]{1,8}")

HEX_INDICATOR = "_"
# Escape character for ^BX (its parameter g). The default is "~", the control prefix itself;
# an explicit one that can never occur in a barcode value keeps the data literal.
DM_ESCAPE = "_"
REPRINT_TEXT = "REPRINT"

# Field numbers used by stored formats (^DF/^XF): 1 = barcode value, 2 = reprint mark (under
# the Data Matrix of side layouts), 3 = every text line after the first, as one field block
# (^FB, lines joined by \&): one field instead of one per line keeps a recall short.
FN_BARCODE = 1
FN_REPRINT = 2
FN_FIRST_LINE = 3
FN_BLOCK = FN_FIRST_LINE

# Advance widths of the resident scalable font (^A0) as a fraction of the font width parameter,
# measured per character class on rendered labels; rounded up so the estimate is an upper bound.
_ADVANCE_CLASSES: tuple[tuple[str, float], ...] = (
    (" .,:;'!|/()[]iljftI", 0.31),
    ('r"`', 0.36),
    ("abcdeghknopqsuvxyzJLETFZ#$0123456789?", 0.52),
    ("ABCDGHKNOPQRSUVXY&", 0.64),
    ("w", 0.67),
    ("mM", 0.77),
    ("W@", 0.84),
)
_ADVANCE = {ch: adv for chars, adv in _ADVANCE_CLASSES for ch in chars}
# Anything else (hyphen, plus, percent, non-ASCII, glyphs we have not measured) is assumed wide.
_ADVANCE_DEFAULT = 0.95
_WIDTH_SAFETY = 1.05

# ECC 200 square symbols: (modules per side, data codewords).
_DM_SQUARE = (
    (10, 3),
    (12, 5),
    (14, 8),
    (16, 12),
    (18, 18),
    (20, 22),
    (22, 30),
    (24, 36),
    (26, 44),
    (32, 62),
    (36, 86),
    (40, 114),
    (44, 144),
)
C128_QUIET_MODULES = 10


@dataclass(frozen=True)
class LabelContent:
    """What goes on one label: the encoded value and the human-readable lines."""

    barcode: str
    title: str
    lot: str | None = None
    date: str | None = None
    coi_short: str | None = None
    extra: tuple[str, ...] = ()
    reprint: bool = False

    def text_lines(self) -> list[tuple[str, str]]:
        """Return (field name, text) for every human-readable line, in print order."""
        lines = [("barcode", self.barcode), ("title", self.title)]
        if self.lot:
            lines.append(("lot", f"Lot {self.lot}"))
        if self.date:
            lines.append(("date", self.date))
        if self.coi_short:
            lines.append(("coi_short", self.coi_short))
        lines.extend((f"extra[{i}]", text) for i, text in enumerate(self.extra) if text)
        return [(name, text) for name, text in lines if text]


@dataclass(frozen=True)
class Layout:
    """Geometry of a template in inches; converted to dots per template dpi."""

    kind: Literal["side", "linear", "bag"]
    margin_in: float
    font_in: float
    dm_module_in: float = 0.0
    dm_modules: int = 0
    c128_module_in: float = 0.0
    bar_height_in: float = 0.0


@dataclass(frozen=True)
class Template:
    """A label stock: size, printer resolution and layout."""

    name: str
    code: str
    width_in: float
    height_in: float
    dpi: int
    layout: Layout

    def dots(self, inches: float) -> int:
        """Convert inches to printer dots at this template's resolution."""
        return int(round(inches * self.dpi))

    @property
    def width_dots(self) -> int:
        """Label width in dots (^PW)."""
        return self.dots(self.width_in)

    @property
    def height_dots(self) -> int:
        """Label length in dots (^LL)."""
        return self.dots(self.height_in)


@dataclass(frozen=True)
class TextField:
    """One line of text placed on the label."""

    name: str
    x: int
    y: int
    height: int
    width: int
    text: str
    fn: int
    max_width: int = 0


@dataclass(frozen=True)
class BarcodeField:
    """One symbol placed on the label (Code 128 or Data Matrix)."""

    kind: Literal["code128", "datamatrix"]
    x: int
    y: int
    module: int
    height: int
    data: str
    width_dots: int
    height_dots: int
    box: int = 0  # side of the square reserved for a Data Matrix, in dots


@dataclass(frozen=True)
class LabelPlan:
    """Every field of one label with its position in dots; shared by ZPL, PDF and preview."""

    template: Template
    barcodes: tuple[BarcodeField, ...]
    texts: tuple[TextField, ...]


@dataclass(frozen=True)
class _Slots:
    dm: tuple[int, int, int, int] | None  # x, y, module, reserved side in dots
    c128: tuple[int, int, int, int] | None  # x, y, module, bar height
    lines: tuple[tuple[int, int], ...]  # (x, y) of each text line
    line_width: int
    font: int
    reprint: tuple[int, int, int, int] | None  # x, y, font, width (side layout only)
    gap: int = 0  # dots between two text lines (pitch = font + gap)


_LAYOUTS = {
    "cryovial": (
        1.28,
        0.5,
        Layout("side", margin_in=0.03, font_in=0.075, dm_module_in=0.02, dm_modules=16),
    ),
    "tube-2ml": (
        1.5,
        0.75,
        Layout("side", margin_in=0.04, font_in=0.09, dm_module_in=0.025, dm_modules=18),
    ),
    "box": (
        2.0,
        1.0,
        Layout("linear", margin_in=0.04, font_in=0.085, c128_module_in=0.01, bar_height_in=0.3),
    ),
    "bag": (
        4.0,
        2.0,
        Layout(
            "bag",
            margin_in=0.04,
            font_in=0.12,
            dm_module_in=0.03,
            dm_modules=22,
            c128_module_in=0.015,
            bar_height_in=0.45,
        ),
    ),
}
_CODES = {"cryovial": "CV", "tube-2ml": "T2", "box": "BX", "bag": "BG"}


def _build_templates() -> dict[str, Template]:
    out: dict[str, Template] = {}
    for base, (w, h, layout) in _LAYOUTS.items():
        for dpi in (203, 300):
            name = f"{base}-{dpi}"
            out[name] = Template(name, f"{_CODES[base]}{dpi}", w, h, dpi, layout)
    return out


TEMPLATES: dict[str, Template] = _build_templates()


def get_template(name: str, dpi: int | None = None) -> Template:
    """Return the template called name ("cryovial-300"), or name at dpi ("cryovial", 300)."""
    key = name if dpi is None else f"{name}-{dpi}"
    if key not in TEMPLATES and dpi is None and f"{name}-203" in TEMPLATES:
        key = f"{name}-203"
    try:
        return TEMPLATES[key]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise LabelError(f"unknown label template {key!r} (known: {known})") from None


def fh_escape(text: str) -> str:
    """Escape text for a ^FH_ field: ^ ~ _ \\ and every non-ASCII byte become _XX (UTF-8)."""
    out = []
    for byte in text.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and chr(byte) not in "^~_\\":
            out.append(chr(byte))
        else:
            out.append(f"{HEX_INDICATOR}{byte:02X}")
    return "".join(out)


def text_width_dots(text: str, font_width: int) -> int:
    """Return an upper bound of the printed width of text in font ^A0 at font_width dots."""
    units = sum(_ADVANCE.get(ch, _ADVANCE_DEFAULT) for ch in text)
    # The last glyph's ink may overhang its advance, hence the extra tenth of a character.
    return math.ceil((units * _WIDTH_SAFETY + 0.1) * font_width)


def code128_modules(data: str) -> int:
    """Return the width in modules of data as Code 128 subset B (start, data, check, stop)."""
    return 11 * (len(data) + 2) + 13


def datamatrix_modules(data: str) -> int:
    """Return the side in modules of the square ECC 200 symbol for data (ASCII encodation)."""
    raw = data.encode("utf-8")
    # Digit pairs share one codeword; bytes above 127 need an upper shift (two codewords).
    codewords = 0
    i = 0
    while i < len(raw):
        if raw[i : i + 2].isdigit() and len(raw[i : i + 2]) == 2:
            codewords += 1
            i += 2
        else:
            codewords += 2 if raw[i] > 127 else 1
            i += 1
    for side, capacity in _DM_SQUARE:
        if codewords <= capacity:
            return side
    raise LabelFitError("barcode", f"{codewords} codewords exceed the largest Data Matrix")


def _module_dots(template: Template, inches: float) -> int:
    """Return a Data Matrix module in whole dots, never wider than the design's size."""
    return max(1, math.floor(inches * template.dpi + 1e-9))


def _slots(template: Template) -> _Slots:
    lay = template.layout
    width, height = template.width_dots, template.height_dots
    margin = template.dots(lay.margin_in)
    font = template.dots(lay.font_in)
    gap = max(1, round(font * 0.12))
    pitch = font + gap
    dm = c128 = reprint = None
    if lay.kind == "side":
        # Rounded down: a module rounded up (7.5 -> 8 dots on tube-2ml-300) grows the symbol's
        # square by a module per module and takes it from the text beside it, so a line that
        # fits at 203 dpi was refused at 300.
        module = _module_dots(template, lay.dm_module_in)
        side = module * lay.dm_modules
        dm = (margin, margin, module, side)
        x0 = margin + side + max(module, margin)
        y0 = margin
        line_right = width - margin
        ry = margin + side + module
        reprint = (margin, ry, min(font, height - margin - ry), side)
    else:
        module = template.dots(lay.c128_module_in)
        bar_h = template.dots(lay.bar_height_in)
        c128 = (max(margin, C128_QUIET_MODULES * module), margin, module, bar_h)
        x0 = margin
        y0 = margin + bar_h + margin
        line_right = width - margin
        if lay.kind == "bag":
            dm_module = _module_dots(template, lay.dm_module_in)
            side = dm_module * lay.dm_modules
            dm = (width - margin - side, y0, dm_module, side)
            line_right = dm[0] - max(dm_module, margin)
    count = max(0, (height - margin - y0 + gap) // pitch)
    lines = tuple((x0, y0 + i * pitch) for i in range(count))
    return _Slots(dm, c128, lines, line_right - x0, font, reprint, gap)


def _check_text(name: str, text: str) -> None:
    for ch in text:
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            raise LabelError(f"{name}: control character {ch!r} is not printable on a label")


def plan_label(content: LabelContent, template: Template) -> LabelPlan:
    """Place every field of content on template; raise LabelFitError if anything would clip."""
    if not BARCODE_RE.fullmatch(content.barcode):
        raise LabelError(
            f"barcode: {content.barcode!r} is not a valid barcode value "
            "(1-48 of A-Z a-z 0-9 - . / : + # * = , ( ))"
        )
    slots = _slots(template)
    name = template.name
    barcodes: list[BarcodeField] = []
    if slots.dm is not None:
        x, y, module, side = slots.dm
        need = datamatrix_modules(content.barcode)
        if need * module > side:
            raise LabelFitError(
                "barcode",
                f"Data Matrix for {content.barcode!r} needs {need}x{need} modules "
                f"({need * module} dots); {name} has room for {side} dots",
            )
        size = need * module
        barcodes.append(
            BarcodeField("datamatrix", x, y, module, size, content.barcode, size, size, side)
        )
    if slots.c128 is not None:
        x, y, module, bar_h = slots.c128
        bar_w = code128_modules(content.barcode) * module
        room = template.width_dots - x - max(C128_QUIET_MODULES * module, x)
        if bar_w > room:
            raise LabelFitError(
                "barcode",
                f"Code 128 for {content.barcode!r} is {bar_w} dots wide at {module} dots per "
                f"module; {name} has room for {room} dots with quiet zones",
            )
        barcodes.append(BarcodeField("code128", x, y, module, bar_h, content.barcode, bar_w, bar_h))

    lines = content.text_lines()
    for field_name, text in lines:
        _check_text(field_name, text)
    reprint_field: TextField | None = None
    if content.reprint:
        if slots.reprint is not None:
            rx, ry, rfont, rwidth = slots.reprint
            if rfont < 8 or text_width_dots(REPRINT_TEXT, rfont) > rwidth:
                raise LabelFitError("reprint", f"no room for the REPRINT mark on {name}")
            reprint_field = TextField(
                "reprint", rx, ry, rfont, rfont, REPRINT_TEXT, FN_REPRINT, rwidth
            )
        else:
            lines.append(("reprint", REPRINT_TEXT))
    if len(lines) > len(slots.lines):
        first_out = lines[len(slots.lines)][0]
        raise LabelFitError(
            first_out,
            f"no room: {name} holds {len(slots.lines)} text lines, the content has {len(lines)} "
            f"({', '.join(n for n, _ in lines)})",
        )
    texts: list[TextField] = []
    for i, ((field_name, text), (x, y)) in enumerate(zip(lines, slots.lines, strict=False)):
        need = text_width_dots(text, slots.font)
        if need > slots.line_width:
            raise LabelFitError(
                field_name,
                f"text {text!r} is about {need} dots wide at font {slots.font}; "
                f"{name} has {slots.line_width} dots for it",
            )
        fn = FN_BARCODE if i == 0 else FN_FIRST_LINE + i - 1
        texts.append(
            TextField(field_name, x, y, slots.font, slots.font, text, fn, slots.line_width)
        )
    if reprint_field is not None:
        texts.append(reprint_field)
    return LabelPlan(template, tuple(barcodes), tuple(texts))


def _header(template: Template) -> list[str]:
    # ^PW/^LL/^LH/^CI persist in the printer between formats, so every label sets them.
    return ["^CI28", f"^PW{template.width_dots}^LL{template.height_dots}^LH0,0"]


def _barcode_cmd(bc: BarcodeField) -> str:
    if bc.kind == "datamatrix":
        return f"^FO{bc.x},{bc.y}^BXN,{bc.module},200,,,,{DM_ESCAPE}"
    return f"^FO{bc.x},{bc.y}^BY{bc.module}^BCN,{bc.height},N,N,N,N"


def _text_cmd(x: int, y: int, height: int, width: int) -> str:
    return f"^FO{x},{y}^A0N,{height},{width}"


def render_label(content: LabelContent, template: Template) -> bytes:
    """Render one complete label (^XA...^XZ) as ZPL II bytes."""
    plan = plan_label(content, template)
    cmds = ["^XA", *_header(template)]
    for bc in plan.barcodes:
        cmds.append(f"{_barcode_cmd(bc)}^FH{HEX_INDICATOR}^FD{fh_escape(bc.data)}^FS")
    for t in plan.texts:
        cmds.append(
            f"{_text_cmd(t.x, t.y, t.height, t.width)}^FH{HEX_INDICATOR}^FD{fh_escape(t.text)}^FS"
        )
    cmds.append("^XZ")
    return ("\n".join(cmds) + "\n").encode("ascii")


def _format_name(template: Template, name: str | None) -> str:
    name = template.code if name is None else name
    if not FORMAT_NAME_RE.fullmatch(name):
        raise LabelError(f"stored format name {name!r} must be 1-8 of A-Z 0-9")
    return name


def render_format(template: Template, name: str | None = None) -> bytes:
    """Render the stored format (^DF) for template: every field placed, data left to ^FN.

    The text lines after the first are one field block (^FB) at the same pitch as separate
    lines, so a recall carries them as one field; the block reaches the label's edge, as a
    separate line would, so a line is never wrapped where a full label would not wrap it.
    """
    slots = _slots(template)
    cmds = ["^XA", f"^DFR:{_format_name(template, name)}.ZPL^FS", *_header(template)]
    if slots.dm is not None:
        x, y, module, _side = slots.dm
        cmds.append(f"^FO{x},{y}^BXN,{module},200,,,,{DM_ESCAPE}^FN{FN_BARCODE}^FS")
    if slots.c128 is not None:
        x, y, module, bar_h = slots.c128
        cmds.append(f"^FO{x},{y}^BY{module}^BCN,{bar_h},N,N,N,N^FN{FN_BARCODE}^FS")
    if slots.lines:
        x, y = slots.lines[0]
        cmds.append(f"{_text_cmd(x, y, slots.font, slots.font)}^FN{FN_BARCODE}^FS")
    if len(slots.lines) > 1:
        x, y = slots.lines[1]
        block = f"^FB{template.width_dots - x},{len(slots.lines) - 1},{slots.gap}"
        cmds.append(f"{_text_cmd(x, y, slots.font, slots.font)}{block}^FN{FN_BLOCK}^FS")
    if slots.reprint is not None:
        rx, ry, rfont, _w = slots.reprint
        cmds.append(f"{_text_cmd(rx, ry, rfont, rfont)}^FN{FN_REPRINT}^FS")
    cmds.append("^XZ")
    return ("\n".join(cmds) + "\n").encode("ascii")


def _recall_field(fn: int, escaped: str, plain: bool) -> str:
    # ^FH only when the data holds an escape: most ids and names need none.
    return f"^FN{fn}{'' if plain else '^FH' + HEX_INDICATOR}^FD{escaped}^FS"


def render_recall(content: LabelContent, template: Template, name: str | None = None) -> bytes:
    r"""Render one label as a recall (^XF) of the stored format: field data only, no newlines.

    In the field block a backslash is written ``\\`` (``\&`` breaks the line there);
    ^CI28 is repeated only for non-ASCII text (the format sets it for the fields).
    """
    plan = plan_label(content, template)
    first = fh_escape(content.barcode)
    cmds = ["^XA", f"^XF{_format_name(template, name)}^FS"]
    cmds.append(_recall_field(FN_BARCODE, first, first == content.barcode))
    block = [t.text for t in plan.texts if t.fn >= FN_BLOCK]
    if any(t.fn == FN_REPRINT for t in plan.texts):
        cmds.append(_recall_field(FN_REPRINT, REPRINT_TEXT, True))
    if block:
        joined = "\\&".join(fh_escape(line).replace(f"{HEX_INDICATOR}5C", "\\\\") for line in block)
        cmds.append(_recall_field(FN_BLOCK, joined, HEX_INDICATOR not in joined))
    if not all(t.text.isascii() for t in plan.texts):
        cmds.insert(1, "^CI28")
    cmds.append("^XZ")
    return "".join(cmds).encode("ascii")


@dataclass(frozen=True)
class RenderedBatch:
    """Bytes for a batch: the stored format (or None) and one payload per label."""

    format_bytes: bytes | None
    labels: tuple[bytes, ...] = field(default_factory=tuple)

    @property
    def total_bytes(self) -> int:
        """Return the number of bytes the batch puts on the wire."""
        return len(self.format_bytes or b"") + sum(len(b) for b in self.labels)


def render_batch(
    contents: list[LabelContent], template: Template, stored: bool | None = None
) -> RenderedBatch:
    """Render a batch: one ^DF download and ^XF recalls, or full labels.

    stored=None chooses per batch: the stored format only for two labels or more, and only
    when the format and the recalls together are fewer bytes than the full labels. A single
    label goes whole: a format used once saves next to nothing and leaves state in the printer.
    """
    if stored is False or (stored is None and len(contents) < 2):
        return RenderedBatch(None, tuple(render_label(c, template) for c in contents))
    recalls = RenderedBatch(
        render_format(template), tuple(render_recall(c, template) for c in contents)
    )
    if stored:
        return recalls
    full = RenderedBatch(None, tuple(render_label(c, template) for c in contents))
    return recalls if recalls.total_bytes < full.total_bytes else full
