"""ZPL rendering: exact bytes, ^FH escaping, fit checks, and scannable output for every template."""

from __future__ import annotations

import io
import re

import pypdfium2
import pytest
import zplkit
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageOps
from printer_sim_util import decode_image, decode_png

from printers.errors import LabelError, LabelFitError
from printers.pdf import label_pdf, sheet_pdf
from printers.preview import barcode_png, barcode_svg, label_png
from printers.zpl import (
    NO_STORED_FORMAT,
    TEMPLATES,
    LabelContent,
    code128_modules,
    fh_escape,
    get_template,
    plan_label,
    render_batch,
    render_format,
    render_label,
    render_recall,
    text_width_dots,
)

FULL = LabelContent(
    barcode="S26-000123-E",
    title="PBMC",
    lot="LV-2026-0042",
    date="2026-11-29",
    coi_short="COI-26-000123-K",
    reprint=True,
)

TEST_LABELS = [
    FULL,
    LabelContent("S26-000001-A", "T-cell product"),
    LabelContent("S26-999999-Z", "Vector harvest", lot="AAV9-0007", date="2027-01-31"),
    LabelContent("V26-000042-7", "Vector vial", lot="LV-12", coi_short="COI-26-000042-X"),
    LabelContent("B26-000045", "Box 9x9", extra=("F-03 / R2",), reprint=True),
]


# Templates with a stored format (a final-product label is always sent whole).
STORED = sorted(n for n, t in TEMPLATES.items() if t.layout.kind not in NO_STORED_FORMAT)


def zpl_images(zpl: bytes, template) -> list[Image.Image]:
    """Render ZPL with zplkit at the template's size and resolution."""
    options = zplkit.Options(
        width=template.width_dots, height=template.height_dots, dpi=template.dpi
    )
    doc = zplkit.render(zpl, options)
    return [Image.open(io.BytesIO(scene.png())).convert("L") for scene in doc.labels]


def test_known_label_exact_bytes():
    expected = (
        b"^XA\n"
        b"^CI28\n"
        b"^PW260^LL102^LH0,0\n"
        b"^FO6,6^BXN,4,200,,,,_^FH_^FDS26-000123-E^FS\n"
        b"^FO76,6^A0N,15,15^FH_^FDS26-000123-E^FS\n"
        b"^FO76,23^A0N,15,15^FH_^FDPBMC^FS\n"
        b"^FO76,40^A0N,15,15^FH_^FDLot LV-2026-0042^FS\n"
        b"^FO76,57^A0N,15,15^FH_^FD2026-11-29^FS\n"
        b"^FO76,74^A0N,15,15^FH_^FDCOI-26-000123-K^FS\n"
        b"^FO6,74^A0N,15,15^FH_^FDREPRINT^FS\n"
        b"^XZ\n"
    )
    assert render_label(FULL, get_template("cryovial-203")) == expected


def test_stored_format_and_recall_exact_bytes():
    t = get_template("cryovial", dpi=203)
    assert render_format(t) == (
        b"^XA\n"
        b"^DFR:CV203.ZPL^FS\n"
        b"^CI28\n"
        b"^PW260^LL102^LH0,0\n"
        b"^FO6,6^BXN,4,200,,,,_^FN1^FS\n"
        b"^FO76,6^A0N,15,15^FN1^FS\n"
        # The lines after the first: one field block, 4 lines at the separate lines' pitch.
        b"^FO76,23^A0N,15,15^FB184,4,2^FN3^FS\n"
        b"^FO6,74^A0N,15,15^FN2^FS\n"
        b"^XZ\n"
    )
    assert render_recall(LabelContent("S26-000123-E", "PBMC"), t) == (
        b"^XA^XFCV203^FS^FN1^FDS26-000123-E^FS^FN3^FDPBMC^FS^XZ"
    )
    # ^FH only where an escape is needed; a backslash in the block is doubled, ^CI28 repeated
    # for non-ASCII text; REPRINT goes to its own field under the Data Matrix.
    odd = LabelContent("S26-000123-E", "CAR-T a\\&b", lot="Zürich_1", reprint=True)
    assert render_recall(odd, t) == (
        b"^XA^CI28^XFCV203^FS^FN1^FDS26-000123-E^FS^FN2^FDREPRINT^FS"
        b"^FN3^FH_^FDCAR-T a\\\\&b\\&Lot Z_C3_BCrich_5F1^FS^XZ"
    )


# The demo centre's vial of lot AAV9-2611-001 (lims.labels.sample_label of S26-000001-Y).
DEMO_VIAL = LabelContent(
    barcode="S26-000001-Y",
    title="Vector vial",
    lot="AAV9-2611-001",
    date="EXP 2028-11-02",
    coi_short="COI-26-000001-W",
)
# Bytes of the demo vial's label per template: (full label, recall, stored format).
DEMO_VIAL_BYTES = {
    "cryovial-203": (290, 112, 166),
    "cryovial-300": (296, 112, 169),
    "tube-2ml-203": (295, 112, 169),
    "tube-2ml-300": (300, 112, 173),
    "box-203": (294, 112, 145),
    "box-300": (302, 112, 150),
    "bag-203": (344, 112, 180),
    "bag-300": (352, 112, 186),
}


@pytest.mark.parametrize("name", sorted(DEMO_VIAL_BYTES))
def test_a_recall_is_at_most_40_percent_of_a_full_label(name):
    template = TEMPLATES[name]
    full, recall, fmt = (
        len(render_label(DEMO_VIAL, template)),
        len(render_recall(DEMO_VIAL, template)),
        len(render_format(template)),
    )
    assert (full, recall, fmt) == DEMO_VIAL_BYTES[name]
    assert recall * 100 <= 40 * full
    # Every test label too, whatever its fields.
    for content in TEST_LABELS:
        try:
            whole = render_label(content, template)
        except LabelError:
            continue
        assert len(render_recall(content, template)) * 100 <= 40 * len(whole), content


@pytest.mark.parametrize("name", sorted(DEMO_VIAL_BYTES))
def test_each_job_gets_the_stored_format_only_when_it_saves_bytes(name):
    template = TEMPLATES[name]
    full, recall, fmt = DEMO_VIAL_BYTES[name]
    for n in range(1, 7):
        batch = render_batch([DEMO_VIAL] * n, template)
        stored = n >= 2 and fmt + n * recall < n * full
        assert (batch.format_bytes is not None) == stored, n
        assert batch.total_bytes == (fmt + n * recall if stored else n * full), n
        assert batch.total_bytes <= n * full
    # One label goes whole; from two on the format pays for itself.
    assert render_batch([DEMO_VIAL], template).format_bytes is None
    assert render_batch([DEMO_VIAL] * 2, template).format_bytes is not None
    # Forced either way, as a caller may ask.
    assert render_batch([DEMO_VIAL], template, stored=True).format_bytes is not None
    assert render_batch([DEMO_VIAL] * 5, template, stored=False).format_bytes is None


@pytest.mark.parametrize("base", ["cryovial", "tube-2ml", "box", "bag"])
def test_the_demo_vial_label_fits_at_300_dpi_as_at_203(base):
    low, high = get_template(base, 203), get_template(base, 300)
    # A text line is as wide at 300 dpi as at 203, in inches (1.48 times the dots, within a
    # dot's rounding per edge): a label that fits one fits the other.
    width = {t.dpi: plan_label(DEMO_VIAL, t).texts[0].max_width for t in (low, high)}
    assert width[300] / width[203] == pytest.approx(300 / 203, abs=0.05), width
    (img,) = zpl_images(render_label(DEMO_VIAL, high), high)
    for tf in plan_label(DEMO_VIAL, high).texts:
        band = img.crop((tf.x, tf.y, tf.x + tf.max_width, tf.y + tf.height))
        ink = ImageOps.invert(band).getbbox()
        assert ink is not None and ink[2] <= text_width_dots(tf.text, tf.width) <= tf.max_width
    decoded = decode_image(img.convert("RGB"), border=20)
    assert {text for _kind, text in decoded} == {DEMO_VIAL.barcode}


def test_a_field_block_prints_the_same_pixels_with_odd_text():
    template = get_template("cryovial-203")
    for content in (
        # (zplkit draws no accented letter: the simulator's test prints those)
        LabelContent("S26-000123-E", "a\\&b \\\\", lot="Zurich_1", reprint=True),
        LabelContent("S26-000123-E", "PBMC"),
        LabelContent("S26-000123-E", "^XZ~JA", date="2026-11-29"),
    ):
        (full,) = zpl_images(render_label(content, template), template)
        stored = zpl_images(render_format(template) + render_recall(content, template), template)
        assert ImageChops.difference(full, stored[-1]).getbbox() is None, content


def test_box_label_uses_code128_exact_bytes():
    out = render_label(LabelContent("B26-000045", "Box 9x9"), get_template("box-203"))
    assert out == (
        b"^XA\n^CI28\n^PW406^LL203^LH0,0\n"
        b"^FO20,8^BY2^BCN,61,N,N,N,N^FH_^FDB26-000045^FS\n"
        b"^FO8,77^A0N,17,17^FH_^FDB26-000045^FS\n"
        b"^FO8,96^A0N,17,17^FH_^FDBox 9x9^FS\n"
        b"^XZ\n"
    )


def test_fh_escape_prefixes_and_utf8():
    assert fh_escape("a^b~c_d\\e") == "a_5Eb_7Ec_5Fd_5Ce"
    assert fh_escape("Müller é") == "M_C3_BCller _C3_A9"
    assert fh_escape("plain text 123") == "plain text 123"


@given(st.text(alphabet=st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), max_size=40))
def test_fh_escape_round_trips_and_never_emits_prefixes(text):
    escaped = fh_escape(text)
    assert "^" not in escaped and "~" not in escaped
    assert all(0x20 <= ord(c) <= 0x7E for c in escaped)
    decoded = re.sub(r"_([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), escaped)
    assert decoded.encode("latin-1") == text.encode("utf-8")


def test_injection_in_text_cannot_add_commands():
    hostile = LabelContent("S26-000123-E", "X^XZ^XA^FDevil", lot="~JA", extra=("é~HS",))
    out = render_label(hostile, get_template("bag-203"))
    assert out.count(b"^XA") == 1 and out.count(b"^XZ") == 1
    assert b"~" not in out
    assert b"^FH_^FDX_5EXZ_5EXA_5EFDevil^FS" in out
    assert b"^FH_^FDLot _7EJA^FS" in out
    assert b"^FH_^FD_C3_A9_7EHS^FS" in out


@given(
    title=st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_categories=["Cs"]),
        max_size=12,
    ),
    reprint=st.booleans(),
)
@settings(max_examples=60)
def test_any_text_renders_one_format_or_refuses(title, reprint):
    content = LabelContent("S26-000123-E", title or "x", reprint=reprint)
    for template in (get_template("cryovial-203"), get_template("bag-300")):
        try:
            out = render_label(content, template)
        except LabelError:
            continue
        assert out.startswith(b"^XA\n") and out.endswith(b"^XZ\n")
        assert out.count(b"^XA") == 1 and out.count(b"^XZ") == 1 and b"~" not in out


def test_control_characters_and_bad_barcodes_are_refused():
    with pytest.raises(LabelError, match="title: control character"):
        render_label(LabelContent("S26-000123-E", "PB\nMC"), get_template("cryovial-203"))
    for bad in ("", "S26^XZ", "S26~JA", "S26_1", "S26 000", "é", "S" * 49):
        with pytest.raises(LabelError, match="barcode"):
            render_label(LabelContent(bad, "PBMC"), get_template("cryovial-203"))


def test_text_too_wide_names_the_field():
    long_title = LabelContent("S26-000123-E", "Cryopreserved peripheral blood mononuclear cells")
    with pytest.raises(LabelFitError, match="^title: text .* dots wide") as err:
        render_label(long_title, get_template("cryovial-203"))
    assert err.value.field == "title"
    with pytest.raises(LabelFitError) as err:
        render_label(
            LabelContent("S26-000123-E", "PBMC", lot="LV-2026-0042-EXTENDED-LOT"),
            get_template("cryovial-300"),
        )
    assert err.value.field == "lot"


def test_too_many_lines_names_the_first_that_does_not_fit():
    content = LabelContent("S26-000123-E", "PBMC", lot="L1", date="2026-11-29", extra=("a", "b"))
    with pytest.raises(LabelFitError, match="holds 5 text lines") as err:
        render_label(content, get_template("cryovial-203"))
    assert err.value.field == "extra[1]"


def test_barcode_too_wide_or_too_big():
    long_id = "S26-000123-E-ALIQUOT-0001-2"
    with pytest.raises(LabelFitError, match="Code 128") as err:
        render_label(LabelContent(long_id, "Box"), get_template("box-203"))
    assert err.value.field == "barcode"
    with pytest.raises(LabelFitError, match="Data Matrix") as err:
        render_label(
            LabelContent("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "PBMC"), get_template("cryovial-203")
        )
    assert err.value.field == "barcode"


def test_unknown_template_and_format_name():
    with pytest.raises(LabelError, match="unknown label template"):
        get_template("petri-dish")
    with pytest.raises(LabelError, match="stored format name"):
        render_format(get_template("box-203"), name="bad name")


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_scans_when_printed(name):
    """Render each template with zplkit, decode with zxing: the decoded text is the barcode."""
    template = TEMPLATES[name]
    rendered = 0
    for content in TEST_LABELS:
        try:
            zpl = render_label(content, template)
        except LabelFitError:
            continue  # refused is acceptable; a clipped label is not
        (img,) = zpl_images(zpl, template)
        assert img.size == (template.width_dots, template.height_dots)
        decoded = decode_image(img)
        assert decoded, f"nothing decoded on {name} for {content.barcode}"
        assert {text for _fmt, text in decoded} == {content.barcode}
        kinds = {fmt for fmt, _ in decoded}
        expected = {b.kind for b in plan_label(content, template).barcodes}
        assert kinds == {"Code 128" if k == "code128" else "Data Matrix" for k in expected}
        rendered += 1
    assert rendered >= 4


@pytest.mark.parametrize("name", STORED)
def test_stored_format_prints_the_same_pixels(name):
    template = TEMPLATES[name]
    content = TEST_LABELS[0]
    (full,) = zpl_images(render_label(content, template), template)
    stored = zpl_images(render_format(template) + render_recall(content, template), template)
    assert ImageChops.difference(full, stored[-1]).getbbox() is None


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_text_stays_inside_the_label(name):
    """The fit estimate is an upper bound of the ink zplkit draws; nothing reaches the edge."""
    template = TEMPLATES[name]
    wide = LabelContent("S26-000123-E", "WWWWWWW", lot="MMMM", date="2026-11-29", reprint=True)
    plan = plan_label(wide, template)
    (img,) = zpl_images(render_label(wide, template), template)
    for tf in plan.texts:
        # Only the text's own column: a Data Matrix may share the band on the other side.
        band = img.crop((tf.x, tf.y, tf.x + tf.max_width, tf.y + tf.height))
        ink = ImageOps.invert(band).getbbox()
        assert ink is not None
        assert ink[2] <= text_width_dots(tf.text, tf.width) <= tf.max_width
        assert tf.x + ink[2] < template.width_dots


def test_code128_width_matches_printer_rendering():
    template = get_template("box-300")
    content = LabelContent("B26-000045", "Box 9x9")
    (bc,) = plan_label(content, template).barcodes
    (img,) = zpl_images(render_label(content, template), template)
    bars = ImageOps.invert(img.crop((0, bc.y, template.width_dots, bc.y + bc.height))).getbbox()
    assert bars[0] == bc.x
    assert bars[2] - bars[0] == code128_modules("B26-000045") * bc.module == bc.width_dots


def test_stored_format_saves_bytes():
    contents = TEST_LABELS[:4] * 24
    template = get_template("cryovial-300")
    full = render_batch(contents, template, stored=False)
    stored = render_batch(contents, template, stored=True)
    assert full.format_bytes is None and len(full.labels) == len(stored.labels) == 96
    assert stored.total_bytes < 0.75 * full.total_bytes


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_pdf_label_scans(name):
    template = TEMPLATES[name]
    for content in TEST_LABELS[:3]:
        pdf = label_pdf(content, template)
        doc = pypdfium2.PdfDocument(pdf)
        assert len(doc) == 1
        page = doc[0]
        assert page.get_size() == pytest.approx((template.width_in * 72, template.height_in * 72))
        text = page.get_textpage().get_text_range()
        assert content.title in text and content.barcode in text
        img = page.render(scale=600 / 72).to_pil()
        decoded = decode_image(img, border=40)
        assert {t for _f, t in decoded} == {content.barcode}


def test_pdf_sheet_holds_every_label():
    contents = TEST_LABELS[:3] * 20
    pdf = sheet_pdf(contents, get_template("cryovial-203"))
    doc = pypdfium2.PdfDocument(pdf)
    found: list[str] = []
    for page in doc:
        found += [t for _f, t in decode_image(page.render(scale=600 / 72).to_pil(), border=0)]
    assert sorted(found) == sorted(c.barcode for c in contents)


def test_previews_scan():
    assert decode_png(barcode_png("S26-000123-E")) == [("Code 128", "S26-000123-E")]
    assert barcode_svg("S26-000123-E").lstrip().startswith(b"<?xml")
    decoded = decode_png(label_png(FULL, get_template("bag-203")))
    assert sorted(decoded) == [("Code 128", "S26-000123-E"), ("Data Matrix", "S26-000123-E")]


PRODUCT = LabelContent(
    barcode="S26-000123-E",
    title="Autologous CAR-T cells, cryopreserved bag",
    date="EXP 2027-01-31",
    coi_short="COI-26-000123-K",
    codes=(
        ("din", "=G12349865432100", "DIN G1234 98 654321 00 H"),
        ("product_code", "S0001", "PRODUCT S0001"),
        ("coi", "COI-26-000123-K", "COI COI-26-000123-K"),
        ("expiry", "2027-01-31", "EXP 2027-01-31"),
    ),
)


@pytest.mark.parametrize("name", ["product-bag-203", "product-bag-300"])
def test_a_final_product_label_scans_each_code_with_its_text(name):
    """DIN, product code, COI and expiry each decode from the printed label, with the sample's
    own barcode; each code's eye-readable text is printed under it."""
    template = TEMPLATES[name]
    zpl = render_label(PRODUCT, template)
    (img,) = zpl_images(zpl, template)
    decoded = decode_image(img)
    wanted = {value for _n, value, _t in PRODUCT.codes} | {PRODUCT.barcode}
    assert {text for _fmt, text in decoded} == wanted
    assert {fmt for fmt, _ in decoded} == {"Code 128"}
    plan = plan_label(PRODUCT, template)
    texts = [t.text for t in plan.texts]
    for _n, _value, text in PRODUCT.codes:
        assert text in texts
        assert text.encode() in zpl
    # Each code's text sits under its own symbol, above the next.
    bars = sorted(plan.barcodes, key=lambda b: b.y)
    for bc, nxt in zip(bars, bars[1:], strict=False):
        under = [t for t in plan.texts if bc.y + bc.height <= t.y < nxt.y]
        assert under, bc.data
    # Sent whole: no stored format holds a product label's fields.
    assert render_batch([PRODUCT] * 3, template).format_bytes is None
    pdf = label_pdf(PRODUCT, template)
    page = pypdfium2.PdfDocument(pdf)[0]
    found = {t for _f, t in decode_image(page.render(scale=600 / 72).to_pil(), border=40)}
    assert found == wanted


def test_a_cryovial_label_refuses_a_products_codes():
    with pytest.raises(LabelFitError, match="product-bag"):
        plan_label(PRODUCT, get_template("cryovial-203"))
