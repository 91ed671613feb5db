"""Fluent Forward frames (protocol v1) decoded into entries, without any networking.

A frame is one msgpack array; the mode is told by its second element::

    ["app.access", 1795729418, {"message": "GET /"}, {"chunk": "p8n9gmxTQVC8/nh2wlKKeQ=="}]   Message
    ["app.access", [[1795729418, {"message": "GET /"}], ...], {"size": 2}]                   Forward
    ["app.access", <bin|str: entry msgpack concatenated>, {"size": 2}]                       PackedForward
    ["app.access", <bin: gzip of the same, maybe several members>, {"compressed": "gzip"}]   Compressed

A time is an integer (or float) of seconds, or an EventTime (msgpack ext type 0, 8 bytes:
seconds and nanoseconds, both 32-bit big-endian); Fluent Bit 2.1+ may send ``[time, metadata]``
in its place. Each entry becomes one JSON document — the payload of a ``fluent`` RawRecord::

    {"tag": "app.access", "time": 1795729418, "nanos": 412345678, "record": {"message": "GET /"}}

(``nanos`` only for an EventTime, ``metadata`` only when Fluent Bit sent some). Strings arrive
as bytes (``raw=True``: old fluentd packs PackedForward entries as msgpack ``str``, which is not
UTF-8); they are read as UTF-8, with ``\\xNN`` escapes for bytes that are not.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson

# What the msgpack reader raises on bytes that are no msgpack (TypeError: a map key it cannot
# hash, such as an array).
UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException)

# Deeper record values are kept as their repr: nothing queries that deep, and it keeps the
# conversion's recursion far from Python's limit.
MAX_DEPTH = 64


class FrameError(Exception):
    """A frame (or one entry of it) that is not what the protocol allows. ``where`` names the
    element (``entries[3].time``), ``error_type`` is the pipeline_error's ``error.type``."""

    def __init__(self, error_type: str, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.error_type = error_type
        self.where = where
        self.why = why


@dataclass
class DecodedFrame:
    """What one frame held: entry payloads (JSON), the errors of single entries (their bytes
    and the error), and the ``chunk`` to acknowledge."""

    tag: str
    mode: str
    payloads: list[bytes] = field(default_factory=list)
    errors: list[tuple[bytes, FrameError]] = field(default_factory=list)
    chunk: Any = None


def unpacker(max_bytes: int) -> msgpack.Unpacker:
    """An incremental msgpack reader holding at most ``max_bytes`` of one unread frame."""
    return msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=max_bytes, timestamp=0)


def text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def short(value: Any, limit: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def decode_frame(frame: Any, max_entry_bytes: int, max_inflated: int) -> DecodedFrame:
    """The entries of one frame; raises FrameError when the frame as a whole is unusable."""
    if not isinstance(frame, list):
        raise FrameError(
            "forward.bad_frame", "frame", f"expected an array, got {type(frame).__name__} {short(frame)}"
        )
    if not 2 <= len(frame) <= 4:
        raise FrameError(
            "forward.bad_frame", "frame", f"expected 2 to 4 elements, got {len(frame)}: {short(frame)}"
        )
    tag = frame[0]
    if not isinstance(tag, bytes):
        raise FrameError("forward.bad_frame", "frame[0] (tag)", f"expected a string, got {short(tag)}")
    body = frame[1]
    if isinstance(body, list):
        mode, option_at = "forward", 2
    elif isinstance(body, bytes):
        mode, option_at = "packed", 2
    elif _is_time(body):
        mode, option_at = "message", 3
        if len(frame) < 3:
            raise FrameError("forward.bad_frame", "frame", "Message mode without a record")
    else:
        raise FrameError(
            "forward.unknown_mode",
            "frame[1]",
            f"not an entry array, packed entries or a time: {type(body).__name__} {short(body)}",
        )
    if len(frame) > option_at + 1:
        raise FrameError("forward.bad_frame", "frame", f"{len(frame)} elements is too many for {mode} mode")
    option = frame[option_at] if len(frame) > option_at else None
    if option is not None and not isinstance(option, dict):
        raise FrameError(
            "forward.bad_option", f"frame[{option_at}] (option)", f"expected a map, got {short(option)}"
        )
    opts = {text(k) if isinstance(k, bytes) else str(k): v for k, v in (option or {}).items()}
    out = DecodedFrame(text(tag), mode, chunk=opts.get("chunk"))
    if mode == "message":
        _entry(out, [body, frame[2]], "frame", max_entry_bytes)
    elif mode == "forward":
        for i, entry in enumerate(body):
            _entry(out, entry, f"entries[{i}]", max_entry_bytes)
    else:
        compressed = opts.get("compressed")
        if compressed is not None and compressed != b"gzip":
            raise FrameError(
                "forward.bad_option", "option.compressed", f"only gzip is defined, got {short(compressed)}"
            )
        if compressed is not None:
            out.mode = "compressed"
            body = gunzip(body, max_inflated)
        _packed(out, body, max_entry_bytes, max_inflated)
    return out


def _is_time(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or isinstance(
        value, (msgpack.ExtType, msgpack.Timestamp)
    )


def _packed(out: DecodedFrame, body: bytes, max_entry_bytes: int, max_inflated: int) -> None:
    reader = unpacker(max(len(body), 1))
    reader.feed(body)
    i = 0
    while True:
        start = reader.tell()
        try:
            entry = reader.unpack()
        except msgpack.OutOfData:
            if start < len(body):
                err = FrameError(
                    "forward.truncated_entry",
                    f"packed entries byte {start}",
                    f"entry {i} is cut off ({len(body) - start} bytes left of {len(body)})",
                )
                out.errors.append((body[start:], err))
            return
        except UNPACK_ERRORS as exc:
            err = FrameError(
                "forward.bad_msgpack",
                f"packed entries byte {start}",
                f"entry {i} is not msgpack ({msgpack_why(exc)}): {short(body[start : start + 16])}",
            )
            out.errors.append((body[start:], err))
            return
        _entry(out, entry, f"entries[{i}]", max_entry_bytes, body[start : reader.tell()])
        i += 1


def msgpack_why(exc: Exception) -> str:
    """What the msgpack reader said (its FormatError says nothing)."""
    return (
        f"{type(exc).__name__}: {exc}"
        if str(exc)
        else f"{type(exc).__name__}: a byte no msgpack value starts with"
    )


def gunzip(data: bytes, limit: int) -> bytes:
    """Every gzip member of ``data`` inflated (the spec allows several concatenated); at most
    ``limit`` bytes."""
    out = bytearray()
    member = 0
    while data:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(data, limit - len(out) + 1)
        except zlib.error as exc:
            raise FrameError(
                "forward.bad_gzip", f"entries gzip member {member}", f"{exc}: {short(data[:16])}"
            ) from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise FrameError(
                "forward.oversized",
                f"entries gzip member {member}",
                f"inflates beyond the limit of {limit} bytes",
            )
        if not inflater.eof:
            raise FrameError("forward.bad_gzip", f"entries gzip member {member}", "gzip stream is truncated")
        data = inflater.unused_data
        member += 1
    return bytes(out)


def _entry(out: DecodedFrame, entry: Any, where: str, max_bytes: int, packed: bytes | None = None) -> None:
    try:
        payload = entry_payload(out.tag, entry, where)
    except FrameError as err:
        out.errors.append((packed if packed is not None else _dump(entry), err))
        return
    if len(payload) > max_bytes:
        why = f"entry of {len(payload)} bytes exceeds the limit of {max_bytes}"
        out.errors.append((payload[:max_bytes], FrameError("forward.oversized", where, why)))
        return
    out.payloads.append(payload)


def entry_payload(tag: str, entry: Any, where: str) -> bytes:
    """The JSON payload of one ``[time, record]`` entry."""
    if not isinstance(entry, list) or len(entry) != 2:
        raise FrameError("forward.bad_entry", where, f"expected [time, record], got {short(entry)}")
    stamp, record = entry
    doc: dict[str, Any] = {"tag": tag}
    if isinstance(stamp, list) and len(stamp) == 2 and isinstance(stamp[1], dict):
        stamp, metadata = stamp  # Fluent Bit 2.1+: [[time, metadata], record]
        if metadata:
            doc["metadata"] = plain(metadata)
    seconds, nanos = event_time(stamp, where)
    doc["time"] = seconds
    if nanos is not None:
        doc["nanos"] = nanos
    if not isinstance(record, dict):
        raise FrameError("forward.bad_entry", f"{where}.record", f"expected a map, got {short(record)}")
    doc["record"] = plain(record)
    return orjson.dumps(doc)


def event_time(stamp: Any, where: str) -> tuple[int | float, int | None]:
    """Seconds, and nanoseconds when the sender gave them."""
    if isinstance(stamp, bool):
        raise FrameError("forward.bad_time", f"{where}.time", f"expected a time, got {stamp!r}")
    if isinstance(stamp, int):
        return stamp, None
    if isinstance(stamp, float):
        if stamp != stamp or stamp in (float("inf"), float("-inf")):
            raise FrameError("forward.bad_time", f"{where}.time", f"not a number: {stamp!r}")
        return stamp, None
    if isinstance(stamp, msgpack.ExtType):
        if stamp.code == 0 and len(stamp.data) == 8:
            seconds, nanos = struct.unpack(">II", stamp.data)
            return seconds, nanos
        raise FrameError(
            "forward.bad_time",
            f"{where}.time",
            f"ext type {stamp.code} of {len(stamp.data)} bytes is no EventTime (type 0, 8 bytes): "
            f"{stamp.data[:16].hex()}",
        )
    if isinstance(stamp, msgpack.Timestamp):  # the msgpack standard timestamp (ext -1)
        return stamp.seconds, stamp.nanoseconds
    raise FrameError(
        "forward.bad_time", f"{where}.time", f"expected a time, got {type(stamp).__name__} {short(stamp)}"
    )


def plain(value: Any, depth: int = 0) -> Any:
    """A msgpack value as JSON can hold it."""
    if isinstance(value, bytes):
        return text(value)
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return short(value, 4096)
        return {_key(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return short(value, 4096)
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, msgpack.ExtType):
        if value.code == 0 and len(value.data) == 8:
            seconds, nanos = struct.unpack(">II", value.data)
            return f"{seconds}.{nanos:09d}"
        return f"ext({value.code}):{value.data.hex()}"
    if isinstance(value, msgpack.Timestamp):
        return f"{value.seconds}.{value.nanoseconds:09d}"
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def _key(key: Any) -> str:
    if isinstance(key, bytes):
        return text(key)
    if isinstance(key, str):
        return key
    return orjson.dumps(plain(key)).decode() if isinstance(key, (list, dict)) else str(plain(key))


def _dump(value: Any) -> bytes:
    """A bad entry kept for the pipeline_error: its msgpack again (its repr when that fails)."""
    try:
        return bytes(msgpack.packb(value, use_bin_type=False))
    except (TypeError, ValueError, OverflowError):
        return repr(value).encode("utf-8", "backslashreplace")
