"""The scan classifier: what a scanned string is by its shape alone (no database)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lims.identifiers import mod37_2, sample_barcode
from lims.scanning import MAX_SCAN_LENGTH, classify, classify_strict, printable

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
# Any code point, surrogates and control characters included: what a broken line can deliver.
any_char = st.characters(codec=None, exclude_categories=())


@settings(max_examples=500, deadline=None)
@given(
    data=st.one_of(st.text(any_char, max_size=600), st.binary(max_size=80).map(repr)),
    symbology=st.one_of(st.none(), st.text(any_char, max_size=4), st.sampled_from(["]C1", "]d2"])),
)
def test_any_string_is_resolved_or_refused_never_an_exception(data: str, symbology: str | None):
    # The strict form: classify() would hide a bug behind its safety net.
    parsed = classify_strict(data, symbology)
    assert parsed.kind in {"sample", "coi", "location", "command", "gs1", "code", "refused"}
    if parsed.kind == "refused":
        assert parsed.code and parsed.message
    else:
        assert parsed.value and parsed.code is None


@settings(max_examples=300, deadline=None)
@given(year=st.integers(0, 99), serial=st.integers(1, 999_999))
def test_every_valid_barcode_resolves_to_itself(year: int, serial: int):
    barcode = sample_barcode(year, serial)
    parsed = classify(barcode)
    assert (parsed.kind, parsed.value) == ("sample", barcode)
    # With the AIM identifier of Code 128 in front, as a serial scanner may send it.
    assert classify(barcode, "]C0").value == barcode


@settings(max_examples=300, deadline=None)
@given(year=st.integers(0, 99), serial=st.integers(1, 999_999), wrong=any_char)
def test_every_corruption_of_the_check_character_is_refused(year: int, serial: int, wrong: str):
    barcode = sample_barcode(year, serial)
    # Letter case is not a corruption: a keyboard-wedge scanner with caps lock on swaps it.
    if wrong.upper() == barcode[-1]:
        return
    parsed = classify_strict(barcode[:-1] + wrong)
    assert parsed.kind == "refused", (barcode, wrong, parsed)


def test_each_wrong_check_character_of_the_alphabet_is_named_as_such():
    barcode = sample_barcode(26, 123)
    for ch in ALPHABET.replace(barcode[-1], ""):
        parsed = classify(barcode[:-1] + ch)
        assert parsed.code == "bad_check_character"
        assert "check character" in parsed.message


def test_a_swapped_digit_is_caught_by_the_check_character():
    barcode = sample_barcode(26, 123456)  # S26-123456-?
    swapped = barcode[:4] + "213456" + barcode[10:]
    assert classify(swapped).code == "bad_check_character"


@pytest.mark.parametrize(
    "data",
    ["S26-000123", "S26-0001234-K", "S26000123K", "S26-000123-KK", "S26-000123-"],
)
def test_a_malformed_sample_barcode_is_refused_not_taken_for_a_code(data: str):
    assert classify(data).kind == "refused"


def test_lower_case_barcode_is_normalised():
    barcode = sample_barcode(26, 42)
    assert classify(barcode.lower()).value == barcode


def test_coi_labels_are_checked():
    body = "COI26000123"
    good = f"COI-26-000123-{mod37_2(body)}"
    assert (classify(good).kind, classify(good).value) == ("coi", good)
    wrong = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert classify(wrong).code == "bad_check_character"


@pytest.mark.parametrize(
    ("data", "value", "argument"),
    [
        ("CMD:RECEIVE", "RECEIVE", None),
        ("cmd:store", "STORE", None),
        ("CMD:DONE", "DONE", None),
        ("CMD:REASON:EXPIRED", "REASON", "expired"),
        ("CMD:REASON:tube cracked in centrifuge", "REASON", "tube cracked in centrifuge"),
        ("CMD:CONDITION:FROZEN", "CONDITION", "frozen, dry ice"),
    ],
)
def test_commands(data: str, value: str, argument: str | None):
    parsed = classify(data)
    assert (parsed.kind, parsed.value, parsed.argument) == ("command", value, argument)


@pytest.mark.parametrize("data", ["CMD:FLY", "CMD:", "CMD:REASON:", "CMD:STORE:NOW", "CMD:REASON"])
def test_unknown_or_incomplete_commands_are_refused(data: str):
    parsed = classify(data)
    assert parsed.kind == "refused"
    assert parsed.code in ("unknown_command", "bad_command")


def test_location_with_position():
    parsed = classify("BOX-0001:c4")
    assert (parsed.kind, parsed.value, parsed.position) == ("location", "BOX-0001", "C4")


@pytest.mark.parametrize("data", ["BOX-0001", "BADGE-0002", "AAV9-2611-001", "RM-B1"])
def test_plain_codes_are_left_to_the_database(data: str):
    assert (classify(data).kind, classify(data).value) == ("code", data)


def test_gs1_with_group_separator_keeps_fields_apart():
    parsed = classify("010541234567890810LV-2611-002\x1d17271231" + "21VIAL7", "]d2")
    assert parsed.kind == "gs1"
    assert parsed.gs1 == {
        "hri": "(01)05412345678908(10)LV-2611-002(17)271231(21)VIAL7",
        "gtin": "05412345678908",
        "lot": "LV-2611-002",
        "expiry": "2027-12-31",
        "serial": "VIAL7",
    }
    assert parsed.value == "LV-2611-002"


def test_gs1_aim_identifier_typed_in_the_data_and_hri_form():
    typed = classify("]C1010541234567890810ABC\x1d17271231")
    hri = classify("(01)05412345678908(10)ABC(17)271231")
    assert typed.gs1 == hri.gs1
    assert typed.gs1["lot"] == "ABC"


def test_bare_gtin_digits_are_gs1():
    parsed = classify("05412345678908")
    assert (parsed.kind, parsed.gs1["gtin"]) == ("gs1", "05412345678908")


@pytest.mark.parametrize(
    ("data", "symbology"),
    [
        ("0105412345678909", "]C1"),  # GTIN check digit wrong
        ("(01)0541234567890", None),
        ("01\x1d", None),
        ("]C1hello world", None),
        ("]\x1d", None),  # biip itself raises IndexError on this one
        ("\x1d]", None),
    ],
)
def test_unreadable_gs1_is_refused(data: str, symbology: str | None):
    parsed = classify(data, symbology)
    assert (parsed.kind, parsed.code) == ("refused", "gs1_unreadable")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("\x1d\x1d", "empty"),
        ("S26-000001\x00-Y", "unreadable"),
        ("BOX\x07-0001", "unreadable"),
        ("\udc80\udcff", "unreadable"),
        ("x" * (MAX_SCAN_LENGTH + 1), "too_long"),
        ("x" * 10_000, "too_long"),
        ("hello world", "unknown_code"),
        ("DROP TABLE sample;--", "unknown_code"),
        ("<script>alert(1)</script>", "unknown_code"),
    ],
)
def test_garbage_is_refused_with_a_reason(data: str, code: str):
    parsed = classify(data)
    assert (parsed.kind, parsed.code) == ("refused", code)


def test_not_a_string_is_refused():
    assert classify(b"S26-000001-Y").kind == "refused"  # type: ignore[arg-type]


def test_printable_escapes_controls_and_cuts():
    assert printable("A\x1dB\x00C") == "A<GS>B\\x00C"
    assert printable("\udc80") == "\\udc80"
    assert printable("x" * 100, limit=10) == "x" * 10 + "... (100 characters)"
