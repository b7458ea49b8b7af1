"""~HS and ~HI reply parsing."""

from __future__ import annotations

import pytest

from printers.errors import StatusParseError
from printers.status import (
    format_host_status,
    latest_reply,
    parse_host_identification,
    parse_host_status,
)

# A ZD-series reply: 9600 8N1 xon/xoff, 3 formats queued, 1 label of a batch left.
READY_REPLY = (
    b"\x02030,0,0,0406,003,0,0,0,000,0,0,0\x03\r\n"
    b"\x02001,0,0,0,1,2,6,0,00000001,1,000\x03\r\n"
    b"\x021234,0\x03\r\n"
)


def test_parse_ready_reply():
    st = parse_host_status(READY_REPLY)
    assert st.ready and st.reason == ""
    assert st.formats_in_buffer == 3
    assert st.labels_remaining == 1
    assert st.label_length_dots == 406
    assert st.thermal_transfer and st.print_mode == 2
    assert st.baud == 9600
    assert not st.idle


@pytest.mark.parametrize(
    ("flags", "attribute", "words"),
    [
        ({"paper_out": True}, "paper_out", "paper out"),
        ({"paused": True}, "paused", "paused"),
        ({"head_open": True}, "head_open", "head open"),
        ({"ribbon_out": True}, "ribbon_out", "ribbon out"),
        ({"buffer_full": True}, "buffer_full", "receive buffer full"),
    ],
)
def test_each_fault_flag(flags, attribute, words):
    st = parse_host_status(format_host_status(**flags))
    assert getattr(st, attribute) is True
    assert not st.ready
    assert st.reason == words


def test_idle_and_round_trip_of_counts():
    st = parse_host_status(format_host_status(formats_in_buffer=56, labels_remaining=0))
    assert st.formats_in_buffer == 56 and not st.idle
    assert parse_host_status(format_host_status()).idle


def test_extra_fields_and_whitespace_are_tolerated():
    reply = READY_REPLY.replace(b"0,0,0\x03", b"0,0,0,9\x03", 1)
    assert parse_host_status(b"\r\n" + reply + b"\r\n").formats_in_buffer == 3


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"", "found 0"),
        (b"~HS", "found 0"),
        (READY_REPLY[:-12], "found 2"),
        (READY_REPLY + b"\x021234,0\x03\r\n", "found 4"),
        (READY_REPLY.replace(b"003", b"0x3"), "formats in buffer is not a number"),
        (READY_REPLY.replace(b"030,0,0", b"030,2,0"), "paper out is not 0 or 1"),
        (READY_REPLY.replace(b",0,0,0\x03", b"\x03", 1), "string 1 has 9 fields"),
        (READY_REPLY.replace(b"1234", b"\xff\xfe"), "not ASCII"),
    ],
)
def test_malformed_status_raises(reply, message):
    with pytest.raises(StatusParseError, match=message):
        parse_host_status(reply)


def test_parse_identification():
    info = parse_host_identification(b"\x02ZD421-203dpi,V84.20.18Z,8,8192KB\x03\r\n")
    assert info.model == "ZD421-203dpi"
    assert info.firmware == "V84.20.18Z"
    assert info.dpmm == 8 and info.dpi == 203
    assert info.memory_kb == 8192
    other = parse_host_identification(b"\x02ZT410,V75.19.15Z,12,2MB,X\x03\r\n")
    assert other.dpi == 300 and other.memory_kb == 2048 and other.options == "X"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"", "found 0"),
        (b"\x02ZD421,V1,8\x03", "3 fields"),
        (b"\x02ZD421,V1,eight,512KB\x03", "not a number"),
        (b"\x02ZD421,V1,8,lots\x03", "not a size"),
        (b"\x02,V1,8,512KB\x03", "empty model"),
        (b"\x02A,V1,8,512KB\x03\x02B,V1,8,512KB\x03", "found 2"),
    ],
)
def test_malformed_identification_raises(reply, message):
    with pytest.raises(StatusParseError, match=message):
        parse_host_identification(reply)


def test_a_late_reply_before_the_fresh_one_reads_as_the_fresh_one() -> None:
    late = format_host_status(formats_in_buffer=5)
    fresh = format_host_status(formats_in_buffer=1, paper_out=True)
    assert latest_reply(late + fresh) == fresh
    st = parse_host_status(latest_reply(late + fresh))
    assert (st.formats_in_buffer, st.paper_out) == (1, True)
    # One reply, or a torn one, is left as it is (the parser says what is wrong with it).
    assert latest_reply(fresh) == fresh
    assert latest_reply(late + fresh[:10]) == late + fresh[:10]
