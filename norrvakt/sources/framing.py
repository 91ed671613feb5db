"""Splitting a syslog byte stream into messages (RFC 6587), detected per frame.

Octet counting: ``132 <36>1 2026-11-26T21:43:23Z host app - - - msg`` — a decimal length, a
space, then exactly that many bytes. rsyslog and syslog-ng count a trailing LF inside the
length; ``logger --octet-count`` does not. Non-transparent framing: messages end at LF.

A frame is octet-counted when it starts with digits, a space and ``<`` (a syslog message
always starts with its PRI), so a plain line such as ``2026-11-26 ...`` is never mistaken
for a length. Frames are never silently lost: an oversized message is cut to the limit and
flagged, a stream that ends inside a frame yields the partial frame flagged ``truncated``.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_COUNT_DIGITS = 10
_SEPARATORS = b"\n\r\x00"


@dataclass(slots=True)
class Frame:
    payload: bytes
    offset: int  # stream offset where the frame starts
    error: str | None = None  # None | "oversized" | "truncated" | "bad_octet_count"
    detail: str = ""


class SyslogFramer:
    """Incremental decoder: :meth:`feed` bytes as they arrive, :meth:`finish` at end of stream."""

    def __init__(self, max_message_bytes: int = 65536) -> None:
        self.max = max_message_bytes
        self._buf = b""
        self._base = 0  # stream offset of _buf[0]
        self._discard = 0  # bytes of an oversized octet frame still to skip
        self._discard_to_lf = False  # skipping the rest of an oversized LF frame

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf + data if self._buf else data
        pos = 0
        n = len(buf)
        while pos < n:
            if self._discard:
                take = min(self._discard, n - pos)
                self._discard -= take
                pos += take
                continue
            if self._discard_to_lf:
                lf = buf.find(b"\n", pos)
                if lf < 0:
                    pos = n
                    break
                self._discard_to_lf = False
                pos = lf + 1
                continue
            c = buf[pos]
            if c in _SEPARATORS:
                pos += 1
                continue
            if 0x30 <= c <= 0x39:
                sp = buf.find(b" ", pos, pos + _MAX_COUNT_DIGITS + 1)
                if sp < 0 and n - pos <= _MAX_COUNT_DIGITS and buf[pos:n].isdigit():
                    break  # the length is still arriving
                if sp > pos and buf[pos:sp].isdigit():
                    if sp + 1 >= n:
                        break  # need the byte after the space to decide
                    if buf[sp + 1] == 0x3C:  # "<": octet counted
                        count = int(buf[pos:sp])
                        start = sp + 1
                        if count == 0:
                            out.append(Frame(b"", self._base + pos, "bad_octet_count", "length 0"))
                            pos = start
                            continue
                        if count > self.max:
                            avail = min(self.max, n - start)
                            if avail < self.max and n - start < count:
                                break  # wait until the cut-off part is here
                            out.append(
                                Frame(
                                    buf[start : start + self.max],
                                    self._base + pos,
                                    "oversized",
                                    f"octet count {count} exceeds the limit of {self.max} bytes",
                                )
                            )
                            consumed = min(count, n - start)
                            self._discard = count - consumed
                            pos = start + consumed
                            continue
                        end = start + count
                        if end > n:
                            break  # incomplete frame
                        out.append(Frame(buf[start:end], self._base + pos))
                        pos = end
                        continue
            # Non-transparent framing: up to the next LF.
            lf = buf.find(b"\n", pos)
            if lf < 0:
                if n - pos > self.max:
                    out.append(
                        Frame(
                            buf[pos : pos + self.max],
                            self._base + pos,
                            "oversized",
                            f"line longer than the limit of {self.max} bytes without LF",
                        )
                    )
                    self._discard_to_lf = True
                    pos = n
                break
            if lf - pos > self.max:
                out.append(
                    Frame(
                        buf[pos : pos + self.max],
                        self._base + pos,
                        "oversized",
                        f"line of {lf - pos} bytes exceeds the limit of {self.max} bytes",
                    )
                )
            else:
                out.append(Frame(buf[pos:lf], self._base + pos))
            pos = lf + 1
        self._buf = buf[pos:]
        self._base += pos
        return out

    def finish(self) -> list[Frame]:
        """End of stream: whatever is left becomes a frame (flagged if it was cut short)."""
        rest, self._buf = self._buf, b""
        offset = self._base
        self._base += len(rest)
        stripped = rest.strip(_SEPARATORS)
        if not stripped:
            return []
        head = stripped.split(b" ", 1)[0]
        if head.isdigit() and b" <" in stripped[: _MAX_COUNT_DIGITS + 2]:
            expected = int(head)
            got = len(stripped) - len(head) - 1
            return [
                Frame(
                    stripped[len(head) + 1 :],
                    offset,
                    "truncated",
                    f"stream ended after {got} of {expected} bytes announced by the octet count",
                )
            ]
        return [Frame(stripped, offset)]
