"""RFC 6587 framing, per frame, with the quirks of real senders (captures in ../shared/data)."""

from __future__ import annotations

import pytest

from norrvakt.sources.framing import SyslogFramer
from tests.conftest import shared_data


def _split(data: bytes, chunk: int = 0, max_bytes: int = 65536) -> list[tuple[bytes, str | None]]:
    framer = SyslogFramer(max_bytes)
    frames = []
    if chunk:
        for i in range(0, len(data), chunk):
            frames += framer.feed(data[i : i + chunk])
    else:
        frames += framer.feed(data)
    frames += framer.finish()
    return [(f.payload.rstrip(b"\n"), f.error) for f in frames]


@pytest.mark.parametrize("chunk", [0, 1, 7, 64])
def test_octet_counted_with_trailing_lf_inside_count(chunk: int) -> None:
    # rsyslog and syslog-ng count the trailing LF.
    data = b"12 <13>1 - a b\n14 <13>1 - c d e\n"
    assert _split(data, chunk) == [(b"<13>1 - a b", None), (b"<13>1 - c d e", None)]


@pytest.mark.parametrize("chunk", [0, 1, 5])
def test_octet_counted_without_lf_as_logger_sends(chunk: int) -> None:
    data = b"11 <13>1 - a b11 <13>1 - c d"
    assert _split(data, chunk) == [(b"<13>1 - a b", None), (b"<13>1 - c d", None)]


def test_lf_framing_and_digit_leading_text_line() -> None:
    data = b"<13>Nov 26 21:43:59 vm sshd: one\n2026-11-26 12:00 plain text line\n"
    assert _split(data) == [
        (b"<13>Nov 26 21:43:59 vm sshd: one", None),
        (b"2026-11-26 12:00 plain text line", None),
    ]


def test_mixed_framing_in_one_stream() -> None:
    data = b"<13>lf framed\n9 <13>octet<14>then lf\n"
    assert _split(data) == [(b"<13>lf framed", None), (b"<13>octet", None), (b"<14>then lf", None)]


def test_oversized_octet_frame_is_cut_and_flagged_and_stream_continues() -> None:
    big = b"<13>" + b"x" * 1000
    data = b"%d %s" % (len(big), big) + b"9 <13>after"
    got = _split(data, chunk=100, max_bytes=300)
    assert got[0][1] == "oversized" and len(got[0][0]) == 300
    assert got[1] == (b"<13>after", None)


def test_oversized_lf_line_is_cut_and_flagged() -> None:
    data = b"<13>" + b"y" * 1000 + b"\n<13>next\n"
    got = _split(data, chunk=50, max_bytes=256)
    assert got[0][1] == "oversized" and len(got[0][0]) == 256
    assert got[1] == (b"<13>next", None)


def test_truncated_octet_count_at_end_of_stream() -> None:
    framer = SyslogFramer()
    assert framer.feed(b"100 <13>1 only part") == []
    (frame,) = framer.finish()
    assert frame.error == "truncated"
    assert frame.payload == b"<13>1 only part"
    assert "15 of 100" in frame.detail


def test_offsets_name_where_frames_start() -> None:
    framer = SyslogFramer(max_message_bytes=256)
    frames = framer.feed(b"<13>a\n<13>b\n")
    assert [f.offset for f in frames] == [0, 6]


@pytest.mark.parametrize(
    "name,count",
    [
        ("rsyslog_5424_tcp_octet.bin", 2),
        ("syslogng_5424_tcp_octet.bin", 2),
        ("logger_5424_tcp_octet.bin", 1),
        ("logger_5424_tcp_lf.bin", 1),
        ("syslogng_3164_tcp_lf.bin", 2),
        ("loggen_5424_lf.bin", 3),
        ("rsyslog_5424_tls_decrypted.bin", 2),
    ],
)
def test_real_captures_split_into_whole_messages(name: str, count: int) -> None:
    data = shared_data("syslog-captures", name).read_bytes()
    for chunk in (0, 3):
        frames = _split(data, chunk)
        assert len(frames) == count, frames
        assert all(err is None for _, err in frames)
        assert all(payload.startswith(b"<") for payload, _ in frames)
