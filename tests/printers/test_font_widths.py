"""The text-width model of font ^A0 against an independent renderer (zplkit) and, for the
accented letters zplkit cannot draw, against two installed sans fonts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import ImageFont, ImageOps

from printers.errors import LabelFitError
from printers.zpl import (
    TEMPLATES,
    LabelContent,
    glyph_advance,
    plan_label,
    render_label,
    stand_in,
    text_width_dots,
)
from tests.printers.font_widths import PRINTABLE_ASCII, RUN, font_sizes, ink_right, measure
from tests.printers.test_printers_zpl import zpl_images

# Letters of the names a European centre prints (donors' home towns, staff, sample types).
NAME_LETTERS = (
    "àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝ"
    "ăąćčďęěğįłńňőřśşšţťůűųźżžĂĄĆČĎĘĚĞĮŁŃŇŐŘŚŞŠŢŤŮŰŲŹŻŽ"
    "ßæÆœŒøØđĐðþÞı"
)
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSansCondensed-Bold.ttf", "DejaVuSans.ttf")


@pytest.fixture(scope="module")
def measured() -> dict[str, float]:
    return measure()


def test_every_printable_character_has_its_measured_advance(measured):
    for ch in PRINTABLE_ASCII:
        # An upper bound, and a tight one: never more than a rounding step above the renderer.
        assert measured[ch] <= glyph_advance(ch) <= measured[ch] + 0.011, ch


@pytest.mark.parametrize("size", font_sizes())
def test_a_run_of_any_character_inks_inside_its_estimate(size):
    for ch in PRINTABLE_ASCII.strip():
        for text in (ch, ch * RUN):
            ink = ink_right(text, size)
            assert ink is None or ink <= text_width_dots(text, size), (ch, size)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # (trailing spaces take room on the line but leave no ink to measure)
    text=st.text(alphabet=PRINTABLE_ASCII, min_size=1, max_size=24).map(str.rstrip).filter(bool),
    size=st.sampled_from(font_sizes()),
)
@example(text="0:EEEITv|", size=18)  # found in CI: the rounding of nine narrow-ish advances
def test_any_ascii_text_inks_inside_its_estimate_and_near_it(text, size):
    ink = ink_right(text, size)
    estimate = text_width_dots(text, size)
    assert ink <= estimate
    # Not a blanket pessimism either: off by the last glyph's side bearings and overhang
    # allowance, and a rounding step per character (a whole dot at small sizes), at most.
    # ('0:EEEITv|' at 18 dots: 13 dots to spare, more than 0.02 x size per character allowed.)
    assert estimate - ink <= 0.4 * size + max(1.0, 0.02 * size) * len(text) + 2


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_longest_run_of_at_signs_that_fits_stays_in_its_column(name):
    """A run of the widest common glyph, as long as the plan allows, never inks past its line."""
    template = TEMPLATES[name]
    n = 1
    while True:
        try:
            plan_label(LabelContent("S26-000123-E", "@" * (n + 1)), template)
        except LabelFitError:
            break
        n += 1
    content = LabelContent("S26-000123-E", "@" * n)
    plan = plan_label(content, template)
    (img,) = zpl_images(render_label(content, template), template)
    title = next(t for t in plan.texts if t.text == content.title)
    # The line's band up to the next thing on it (a Data Matrix on the right, or the edge).
    right = min(
        [template.width_dots]
        + [
            bc.x
            for bc in plan.barcodes
            if bc.x > title.x and bc.y < title.y + title.height and title.y < bc.y + bc.height
        ]
    )
    band = img.crop((title.x, title.y, right, title.y + title.height))
    ink = ImageOps.invert(band).getbbox()
    assert ink is not None and ink[2] <= title.max_width < right - title.x, (name, n, ink)


@pytest.mark.parametrize("font_file", FONTS)
def test_an_accented_letter_is_no_wider_than_the_letter_it_is_measured_as(font_file):
    path = FONT_DIR / font_file
    if not path.exists():
        pytest.skip(f"{path} is not installed (Debian: fonts-dejavu-core, fonts-dejavu-extra)")
    font = ImageFont.truetype(str(path), 200)
    for letter in NAME_LETTERS:
        model = stand_in(letter)
        assert set(model) <= set(PRINTABLE_ASCII) and model != letter, letter
        assert font.getlength(letter) <= font.getlength(model) + 1, (letter, model, font_file)


def test_a_name_with_accents_needs_the_room_of_its_plain_letters():
    for accented, plain in (
        ("Zürich Ørsted", "Zurich Orsted"),
        ("Moelle osseuse prélevée", "Moelle osseuse prelevee"),
        ("Łódź, Gdańsk", "Lodz, Gdansk"),
    ):
        for size in font_sizes():
            assert text_width_dots(accented, size) == text_width_dots(plain, size), accented
    # A glyph we know nothing of is assumed as wide as the widest one.
    assert glyph_advance("→") == max(glyph_advance(ch) for ch in PRINTABLE_ASCII)
