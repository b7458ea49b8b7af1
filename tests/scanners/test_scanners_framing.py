"""Framing of scanner byte streams: suffixes, AIM identifiers, noise, overflow, gap fallback."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.framing import GS, SUFFIXES, Framer, Scan, split_aim, suffix_bytes

ALL_SUFFIXES = sorted(SUFFIXES)


def feed_all(framer: Framer, chunks: list[bytes], now: float = 0.0) -> list[Scan]:
    """Feed chunks at one instant and return every scan they complete."""
    out: list[Scan] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk, now))
    return out


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_every_suffix_frames_scans(suffix: str) -> None:
    term = SUFFIXES[suffix]
    framer = Framer(suffix)
    scans = framer.feed(b"S26-000123-K" + term + b"S26-000124-H" + term, 0.0)
    assert [s.data for s in scans] == ["S26-000123-K", "S26-000124-H"]
    assert all(s.ok and s.symbology is None for s in scans)
    assert framer.pending == 0


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_unterminated_scan_waits_for_suffix(suffix: str) -> None:
    framer = Framer(suffix)
    assert framer.feed(b"ABC", 0.0) == []
    assert framer.pending == 3
    assert [s.data for s in framer.feed(SUFFIXES[suffix], 0.01)] == ["ABC"]


def test_crlf_never_yields_empty_scan_from_lf() -> None:
    framer = Framer("CRLF")
    # CR and LF in separate reads, and LF at the start of the next read.
    scans = feed_all(framer, [b"ONE\r", b"\nTWO\r", b"\n", b"\r\n", b"THREE\r\n"])
    assert [s.data for s in scans] == ["ONE", "TWO", "THREE"]
    assert all(s.ok for s in scans)


def test_cr_framing_drops_lf_of_a_crlf_scanner() -> None:
    # A scanner sending CRLF to a station configured for CR: the LF is noise, not an empty scan.
    scans = Framer("CR").feed(b"ONE\r\nTWO\r\n", 0.0)
    assert [s.data for s in scans] == ["ONE", "TWO"]


@pytest.mark.parametrize(
    ("aim", "data"),
    [
        ("]C0", "S26-000123-K"),
        ("]C1", "0109506000134352" + "17260630" + "10ABC123"),
        ("]d1", "S26-000123-K"),
        ("]d2", "0109506000134352" + "10LOT7" + GS + "21SER1"),
        ("]Q1", "https://example.org/s/S26-000123-K"),
        ("]Q3", "0109506000134352" + "10LOT7"),
        ("]E0", "4006381333931"),
        ("]A0", "CODE39"),
        ("]I0", "00012345"),
        ("]e0", "0109506000134352"),
        ("]zC", "aztec"),
    ],
)
def test_aim_identifier_is_stripped_and_recorded(aim: str, data: str) -> None:
    (scan,) = Framer().feed((aim + data).encode() + b"\r", 0.0)
    assert scan == Scan(data, aim, (aim + data).encode())
    assert scan.text == aim + data


def test_gs1_keeps_group_separators() -> None:
    raw = b"]C1" + b"0109506000134352" + b"10LOT7\x1d" + b"17260630" + b"\r"
    (scan,) = Framer().feed(raw, 0.0)
    assert scan.symbology == "]C1"
    assert scan.is_gs1
    assert scan.data == "010950600013435210LOT7\x1d17260630"


def test_gs1_scan_parses_with_biip() -> None:
    biip = pytest.importorskip("biip")
    (scan,) = Framer().feed(b"]d20109506000134352" + b"10LOT7\x1d17260630\r", 0.0)
    result = biip.parse(scan.text)
    assert result.gs1_message is not None
    values = {el.ai.ai: el.value for el in result.gs1_message.element_strings}
    assert values == {"01": "09506000134352", "10": "LOT7", "17": "260630"}


def test_aim_policy() -> None:
    assert Framer(aim=False).feed(b"]C0ABC\r", 0)[0].data == "]C0ABC"
    (missing,) = Framer(aim=True).feed(b"ABC\r", 0)
    assert missing.error == "missing AIM identifier"
    # Data that merely starts with "]" but is no identifier stays as it is.
    assert Framer().feed(b"]-x\r", 0)[0] == Scan("]-x", None, b"]-x")
    assert split_aim(b"]C") == (None, b"]C")


def test_aim_without_data_is_an_empty_scan() -> None:
    (scan,) = Framer().feed(b"]C0\r", 0.0)
    assert scan.error == "empty"
    assert scan.symbology == "]C0"
    assert not scan.ok


def test_partial_reads_byte_by_byte() -> None:
    framer = Framer("CRLF")
    stream = b"]C0S26-000123-K\r\n]d2ABC\x1dDEF\r\n"
    scans = feed_all(framer, [stream[i : i + 1] for i in range(len(stream))])
    assert [(s.symbology, s.data) for s in scans] == [
        ("]C0", "S26-000123-K"),
        ("]d2", "ABC\x1dDEF"),
    ]


def test_two_scans_in_one_read_and_a_half() -> None:
    framer = Framer("CR")
    scans = framer.feed(b"AAA\rBBB\rCC", 0.0)
    assert [s.data for s in scans] == ["AAA", "BBB"]
    assert [s.data for s in framer.feed(b"C\r", 0.0)] == ["CCC"]


def test_noise_between_scans_is_dropped() -> None:
    framer = Framer("CR")
    stream = b"\x00\x00AAA\r\x00\r\x13\x11\r\x7f\x00BBB\x00\r\x1b\r\r\r"
    scans = framer.feed(stream, 0.0)
    assert [s.data for s in scans] == ["AAA", "BBB"]
    assert all(s.ok for s in scans)
    # Pure noise ended by a gap is not a scan either.
    assert framer.feed(b"\x00\x00\x00", 1.0) == []
    assert framer.poll(2.0) == []


def test_iso15434_envelope_keeps_rs_gs_eot() -> None:
    msg = "[)>\x1e06\x1d1PPART\x1dSSER\x1e\x04"
    (scan,) = Framer().feed(b"]d1" + msg.encode() + b"\r", 0.0)
    assert scan.data == msg


def test_ten_kilobyte_line_is_refused_then_resynchronises() -> None:
    framer = Framer("CR", max_len=512)
    out = feed_all(framer, [b"X" * 1000 for _ in range(10)])
    assert len(out) == 1
    assert out[0].error == "too long"
    assert len(out[0].raw) == 512
    assert framer.pending < 2  # memory stays bounded while discarding
    # The rest of the long line up to its suffix is dropped; the next scan is clean.
    out = framer.feed(b"YYYY\rS26-000123-K\r", 0.0)
    assert [s.data for s in out] == ["S26-000123-K"]


def test_too_long_frame_in_a_single_read() -> None:
    out = Framer(max_len=16).feed(b"A" * 17 + b"\rOK\r", 0.0)
    assert [s.error for s in out] == ["too long", None]
    assert out[1].data == "OK"
    # Exactly max_len is accepted, AIM identifier included.
    (ok,) = Framer(max_len=16).feed(b"]C0" + b"B" * 13 + b"\r", 0.0)
    assert ok.ok and ok.data == "B" * 13


def test_too_long_with_crlf_split_across_reads() -> None:
    framer = Framer("CRLF", max_len=8)
    out = feed_all(framer, [b"0123456789", b"ABC\r", b"\nOK\r\n"])
    assert [(s.data, s.error) for s in out] == [("", "too long"), ("OK", None)]


def test_overlong_line_ended_by_gap_resynchronises() -> None:
    framer = Framer("CR", gap_s=0.05, max_len=8)
    assert [s.error for s in framer.feed(b"Z" * 50, 0.0)] == ["too long"]
    assert framer.poll(0.1) == []
    assert [s.data for s in framer.feed(b"NEXT\r", 0.2)] == ["NEXT"]


def test_invalid_utf8_is_an_error_scan_not_an_exception() -> None:
    # Bad bytes inside the data (not before it) make an error scan: the rest may be another code.
    out = Framer().feed(b"AB\xff\xfeCD\r\xc3\xa9A\xc3\r\xc3\xa9t\xc3\xa9\r", 0.0)
    assert [s.error for s in out] == ["invalid UTF-8", "invalid UTF-8", None]
    assert out[0].raw == b"AB\xff\xfeCD"
    assert out[0].data == "AB\ufffd\ufffdCD"
    assert out[2].data == "été"


# Every byte that cannot begin a scan, by the rule in scanners/framing.py.
NOISE_BYTES = sorted(
    {*range(0x20), 0x7F, *range(0x80, 0xC2), *range(0xF5, 0x100)}
    - {0x04, 0x1D, 0x1E}
    - {0x0A, 0x0D}  # line ends end the frame (a CR scanner's LF is an empty frame)
)


@pytest.mark.parametrize("byte", NOISE_BYTES, ids=lambda b: f"{b:#04x}")
def test_each_noise_byte_before_a_scan_is_dropped_and_the_scan_kept(byte: int) -> None:
    framer = Framer("CR", gap_s=0.05)
    # The noise and the scan arrive within the inter-byte gap: one frame.
    assert framer.feed(bytes([byte, byte]), 1.0) == []
    (scan,) = framer.feed(b"S26-000123-K\r", 1.02)
    assert (scan.data, scan.error) == ("S26-000123-K", None)
    assert framer.take_noise() == [bytes([byte, byte])]
    assert framer.take_noise() == []


@pytest.mark.parametrize(
    "noise",
    [b"\x00", b"\xff", b"\x00\xff\xfe\x00", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\x80\xbf"],
)
def test_noise_then_scan_in_one_frame_reads_the_scan(noise: bytes) -> None:
    for framer in (Framer("CR"), Framer("TAB"), Framer("CRLF")):
        (scan,) = framer.feed(noise + b"S26-000123-K" + framer.suffix, 0.0)
        assert scan.ok and scan.data == "S26-000123-K", framer.suffix
        assert scan.raw == noise + b"S26-000123-K"  # the raw frame keeps what arrived
        assert framer.take_noise() == [noise]
    # A scanner without a suffix: the gap ends the frame, the noise is still dropped.
    framer = Framer("CR", gap_s=0.05)
    framer.feed(noise + b"]C0S26-", 5.0)
    framer.feed(b"000123-K", 5.01)
    (scan,) = framer.poll(5.1)
    assert (scan.symbology, scan.data, scan.ok) == ("]C0", "S26-000123-K", True)


def test_noise_alone_is_dropped_and_kept_for_the_log() -> None:
    framer = Framer("CR", gap_s=0.05)
    assert framer.feed(b"\xff\xfe\x00\r\x00\r", 0.0) == []
    # After a suffixed scan a pause ends the frame: noise alone is still nothing.
    assert [s.data for s in framer.feed(b"BOX-0001\r", 1.0)] == ["BOX-0001"]
    assert framer.feed(b"\x00\xff", 2.0) == []
    assert framer.poll(2.1) == []
    # Noise then part of a scan, cut by a pause: an incomplete scan without the noise.
    framer.feed(b"\xffBOX-00", 3.0)
    (cut,) = framer.poll(3.1)
    assert cut.data == "BOX-00" and cut.error.startswith("incomplete")
    assert framer.take_noise() == [b"\xff\xfe\x00", b"\x00", b"\x00\xff", b"\xff"]


def test_what_is_not_noise() -> None:
    framer = Framer("CR")
    # A first character outside ASCII, whole, is data; so are GS1 separators after an AIM id.
    out = framer.feed("étiquette\r".encode() + b"]d2" + b"01095060001343521" + b"\x1d21X\r", 0.0)
    assert [s.data for s in out] == ["étiquette", "01095060001343521\x1d21X"]
    # In Latin-1 every byte from 0xA0 is a letter: 0xFF is 'ÿ', not noise.
    (scan,) = Framer("CR", encoding="latin-1").feed(b"\xffA\r", 0.0)
    assert scan.data == "ÿA"
    assert framer.take_noise() == []


def test_other_encoding() -> None:
    (scan,) = Framer(encoding="latin-1").feed(b"caf\xe9\r", 0.0)
    assert scan.data == "café"
    (bad,) = Framer(encoding="ascii").feed(b"caf\xe9\r", 0.0)
    assert bad.error == "invalid ascii"


def test_gap_fallback_for_scanner_without_suffix() -> None:
    framer = Framer("CR", gap_s=0.05)
    assert framer.feed(b"]C0S26-", 10.00) == []
    assert framer.feed(b"000123-K", 10.01) == []
    assert framer.poll(10.03) == []  # still inside the gap
    (scan,) = framer.poll(10.07)
    assert (scan.symbology, scan.data) == ("]C0", "S26-000123-K")
    assert framer.poll(11.0) == []  # nothing left to emit twice
    # A late read never splits a frame by itself: only an idle line (poll) does.
    assert framer.feed(b"AB", 20.0) == []
    assert [s.data for s in framer.feed(b"CD\r", 25.0)] == ["ABCD"]


def test_a_pause_inside_a_scan_from_a_suffixed_scanner_is_an_error_not_a_code() -> None:
    framer = Framer("CR", gap_s=0.05)
    assert [s.data for s in framer.feed(b"BOX-0001\r", 1.0)] == ["BOX-0001"]
    # The next scan pauses mid-way (a serial server's hiccup): 'BOX-0002' must not act alone.
    assert framer.feed(b"BOX-0002", 2.0) == []
    (cut,) = framer.poll(2.1)
    assert not cut.ok and cut.error.startswith("incomplete")
    assert cut.data == "BOX-0002" and cut.raw == b"BOX-0002"
    (rest,) = framer.feed(b":C4\r", 2.2)
    assert rest.data == ":C4"  # refused downstream as no code; the operator scans again
    # Line noise in a pause is still nothing; a replugged (reset) scanner starts afresh.
    framer.feed(b"\x00\x00", 3.0)
    assert framer.poll(3.1) == []
    framer.reset()
    framer.feed(b"S26-000123-K", 4.0)
    assert [(s.data, s.ok) for s in framer.poll(4.1)] == [("S26-000123-K", True)]


@pytest.mark.parametrize("suffix", ["CR", "LF", "CRLF"])
def test_any_line_end_ends_a_scan_whatever_the_agent_is_set_to(suffix: str) -> None:
    # Two scanners on one bench, one programmed for CR, one for LF, one for CRLF, read fast.
    framer = Framer(suffix, gap_s=0.05)
    scans = framer.feed(b"S26-000123-K\nS26-000124-H\r\nBOX-0001\rBOX-0002\n", 1.0)
    assert [s.data for s in scans] == ["S26-000123-K", "S26-000124-H", "BOX-0001", "BOX-0002"]
    assert all(s.ok for s in scans) and framer.pending == 0
    # A CRLF split between two reads is still one end, not an empty scan.
    assert [s.data for s in framer.feed(b"C1\r", 2.0)] == ["C1"]
    assert framer.feed(b"\n", 2.001) == [] and framer.poll(3.0) == []


def test_a_tab_suffix_keeps_line_ends_inside_nothing_else() -> None:
    framer = Framer("TAB", gap_s=None)
    (scan,) = framer.feed(b"AB\rCD\t", 0.0)
    assert scan.raw == b"AB\rCD"  # a CR is not a TAB scanner's end (refused downstream)


def test_gap_fallback_disabled() -> None:
    framer = Framer("CR", gap_s=None)
    framer.feed(b"ABC", 0.0)
    assert framer.poll(100.0) == []
    assert [s.data for s in framer.flush()] == ["ABC"]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        Framer("ETX")
    with pytest.raises(ValueError):
        Framer("NONE")
    with pytest.raises(ValueError):
        Framer(max_len=0)
    with pytest.raises(ValueError):
        Framer(gap_s=0)
    assert suffix_bytes("crlf") == b"\r\n"
    assert suffix_bytes(b"\x03") == b"\x03"


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    suffix=st.sampled_from(ALL_SUFFIXES),
    max_len=st.integers(1, 64),
    aim=st.sampled_from([None, True, False]),
    events=st.lists(
        st.one_of(
            st.tuples(st.just("feed"), st.binary(max_size=80), st.floats(0, 0.2)),
            st.tuples(st.just("poll"), st.just(b""), st.floats(0, 0.2)),
        ),
        max_size=30,
    ),
)
def test_any_byte_stream_never_raises(
    suffix: str, max_len: int, aim: bool | None, events: list[tuple[str, bytes, float]]
) -> None:
    framer = Framer(suffix, gap_s=0.05, max_len=max_len, aim=aim)
    now = 0.0
    for kind, data, step in events:
        now += step
        scans = framer.feed(data, now) if kind == "feed" else framer.poll(now)
        for scan in scans:
            assert isinstance(scan.data, str)
            assert len(scan.raw) <= max_len
            assert SUFFIXES[suffix] not in scan.raw
            assert scan.ok or scan.error
        # Memory stays bounded whatever arrives.
        assert framer.pending <= max_len + len(SUFFIXES[suffix]) - 1


# Text a scanner can carry: no control characters except GS inside, no surrogates.
_scan_char = st.characters(blacklist_categories=("Cc", "Cs"))
_scan_text = st.builds(
    lambda head, rest: head + rest,
    _scan_char,
    st.text(st.one_of(_scan_char, st.just(GS)), max_size=40),
).filter(lambda s: s[-1] != GS and not split_aim(s.encode())[0])
_aims = st.sampled_from([None, "]C0", "]C1", "]d1", "]d2", "]Q1", "]Q3", "]E0"])


@settings(max_examples=300)
@given(
    suffix=st.sampled_from(ALL_SUFFIXES),
    scans=st.lists(st.tuples(_aims, _scan_text), max_size=12),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
)
def test_valid_scans_split_anywhere_come_back_in_order(
    suffix: str, scans: list[tuple[str | None, str]], cuts: list[int]
) -> None:
    term = SUFFIXES[suffix]
    stream = b"".join((aim or "").encode() + text.encode() + term for aim, text in scans)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    framer = Framer(suffix, gap_s=0.05, max_len=512)
    out: list[Scan] = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        # Reads arrive close together (inside the gap) and are polled, as the reader does.
        out.extend(framer.feed(stream[a:b], i * 0.001))
        out.extend(framer.poll(i * 0.001))
    assert [(s.symbology, s.data) for s in out] == scans
    assert all(s.ok for s in out)
    assert framer.pending == 0
