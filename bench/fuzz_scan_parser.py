"""Fuzz the scan classifier: whatever text a scanner delivers, it is resolved or refused.

atheris when installed, else Hypothesis; --tiny: 25 Hypothesis examples. docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import _fuzz  # noqa: E402

KINDS = {"sample", "coi", "location", "command", "gs1", "code", "refused"}
SYMBOLOGIES = (None, "]C0", "]C1", "]d2", "]Q3", "]E0", "x", "")


def check_one(text: str, symbology: str | None) -> None:
    """Classify one string and assert what the station relies on."""
    from lims.identifiers import check_sample_barcode
    from lims.scanning import MAX_SCAN_LENGTH, classify_strict, printable

    parsed = classify_strict(text, symbology)
    assert parsed.kind in KINDS, parsed
    if parsed.kind == "refused":
        assert parsed.code and parsed.message, parsed
        # What the operator reads holds no raw control characters (GS shows as <GS>).
        assert not any(ch < " " for ch in parsed.message), parsed
        return
    assert parsed.value and len(text) <= MAX_SCAN_LENGTH, parsed
    if parsed.kind == "sample":
        assert check_sample_barcode(parsed.value), parsed
        # Classifying the normalised barcode again gives the same barcode.
        assert classify_strict(parsed.value).value == parsed.value
    if parsed.kind == "gs1":
        assert parsed.gs1 and parsed.gs1.get("hri"), parsed
    printable(text)


def _decode(data: bytes) -> str:
    # surrogateescape turns invalid UTF-8 into lone surrogates: what a broken line can look like.
    return data.decode("utf-8", "surrogateescape")


def run_atheris(seconds: int, libfuzzer_args: list[str]) -> int:
    """Fuzz with atheris for `seconds`."""
    import atheris

    with atheris.instrument_imports():
        import lims.identifiers  # noqa: F401
        import lims.scanning  # noqa: F401

    def test_one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        symbology = SYMBOLOGIES[fdp.ConsumeIntInRange(0, len(SYMBOLOGIES) - 1)]
        if fdp.ConsumeBool():
            text = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 600))
        else:
            text = _decode(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 600)))
        check_one(text, symbology)

    argv = [sys.argv[0], f"-max_total_time={seconds}", "-print_final_stats=1", *libfuzzer_args]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()  # exits the process
    return 0


def strategies() -> tuple:
    """Hypothesis strategies for check_one's arguments."""
    from hypothesis import strategies as st

    text = st.one_of(
        st.text(st.characters(codec=None, exclude_categories=()), max_size=600),
        st.binary(max_size=600).map(_decode),
        st.from_regex(r"S\d{2}-\d{6}-[0-9A-Z*]", fullmatch=True),
        st.from_regex(r"CMD:[A-Z]{0,12}(:.{0,20})?", fullmatch=True),
    )
    return text, st.sampled_from(SYMBOLOGIES)


def main() -> int:
    """Parse arguments and fuzz for a bounded time."""
    return _fuzz.main(
        __doc__.splitlines()[0], run_atheris, check_one, strategies, "no invariant broken"
    )


if __name__ == "__main__":
    raise SystemExit(main())
