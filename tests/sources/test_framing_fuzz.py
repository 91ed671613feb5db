"""Property tests: the framer never raises, never invents bytes, and chunking does not matter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from norrvakt.sources.framing import SyslogFramer


def _run(data: bytes, cuts: list[int], limit: int) -> list[tuple[bytes, str | None]]:
    framer = SyslogFramer(limit)
    out = []
    pos = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        out += framer.feed(data[pos:cut])
        pos = cut
    out += framer.finish()
    return [(f.payload, f.error) for f in out]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0, max_value=700), max_size=8))
def test_random_bytes_never_raise_and_never_grow(data: bytes, cuts: list[int]) -> None:
    frames = _run(data, cuts, 256)
    assert sum(len(p) for p, _ in frames) <= len(data)


_message = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\x00\r"),
    min_size=1,
    max_size=80,
).map(lambda s: b"<13>1 - h app - - - " + s.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_message, st.booleans()), min_size=1, max_size=12),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_any_chunking_gives_the_same_frames(messages: list[tuple[bytes, bool]], cuts: list[int]) -> None:
    stream = b"".join(b"%d %s" % (len(m), m) if octet else m + b"\n" for m, octet in messages)
    whole = _run(stream, [], 65536)
    assert [p for p, _ in whole] == [m for m, _ in messages]
    assert _run(stream, cuts, 65536) == whole
