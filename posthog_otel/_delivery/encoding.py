"""Events as bytes, for both ingestion protocols: JSON encoding, size limits, request
splitting, the ``/batch/`` envelope and compression (gzip; deflate and zstd for Capture V1).

``EncodedBatch`` is the form events wait in (memory, the spool) and leave in. A batch is
encoded in one call when it is under PostHog's per-event limit (several times cheaper),
else each event on its own, so its size is known: an event over the limit is set apart (the
caller drops it alone), and a batch is cut into requests under the request size without
re-encoding.
orjson (the ``fast`` extra) is used when installed, for the same JSON. No I/O; a value
JSON cannot hold in a hand-written record is converted or left out, counted and said.
"""

from __future__ import annotations

import enum
import gzip as _gzip
import json
import math
import zlib as _zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .._log import count_drop, warn_limited
from .._properties import sanitize_properties
from .._text import SURROGATES, Unusable, as_text, is_sendable

#: PostHog drops events larger than this (bytes of JSON).
MAX_EVENT_BYTES = 900 * 1024
#: Requests are cut to stay under this many bytes of (uncompressed) JSON.
MAX_REQUEST_BYTES = 5 * 1024 * 1024
#: gzip level: 1, zlib's fastest. Batches of similar JSON still compress ~17x (6, zlib's default,
#: ~19x), for half the CPU: 23 -> 26 bytes per operation on the wire, against ~485 from PostHog's SDK.
GZIP_LEVEL = 1

_ENVELOPE_OVERHEAD = 256  # api_key, sent_at and the field names around the events


def encode_event(event: Any) -> bytes:
    """Compact UTF-8 JSON.  Values JSON cannot hold (NaN, objects in hand-written records,
    text with surrogates) are converted or dropped, by the rules of our own properties,
    instead of failing the whole batch; never replaced by ``?``, which would merge values
    that differ."""
    try:
        return dumps(event)
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return dumps(_scrub(event))


# One encoder, built once: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _stdlib_dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


def _orjson_dumps(value: Any) -> bytes:
    """orjson for what it writes as the standard encoder would (the same JSON values; a float may
    be spelled differently, ``1e16`` for ``1e+16``); anything it refuses goes to the standard
    one, whose errors and ``_scrub`` conversions stay the rule. The one value orjson takes that
    the standard encoder refuses, NaN or infinity, becomes null either way."""
    try:
        return _orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: surrogates, ints past 64 bits, non-text keys, other types
        return _stdlib_dumps(value)


try:  # the optional extra ``posthog-otel[fast]``: encoding ~10x cheaper on the exporter's thread
    import orjson as _orjson

    # Subclasses, datetimes and dataclasses are left to the standard encoder (it refuses them, and
    # ``_scrub`` converts them by our property rules), so the output never depends on the extra.
    _ORJSON_OPTIONS = (
        _orjson.OPT_PASSTHROUGH_SUBCLASS | _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS
    )
    dumps = _orjson_dumps
except ImportError:  # pragma: no cover - exercised by the lower-bound run, which does not install it
    dumps = _stdlib_dumps

_GONE = object()  # a value left out (already counted and said)
_JSON_INTS = range(-(2**63), 2**64)  # what orjson writes as an int (64 bits, signed or not)


def _scrub(value: Any) -> Any:
    """A JSON-safe copy of a hand-written record's values (our own records never need it)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            clean = _scrub(item)
            if clean is _GONE:
                continue
            try:
                out[as_text(key)] = clean
            except Unusable as problem:
                _left_out("a key that %s" % problem)
        return out
    if isinstance(value, (list, tuple)):
        return [clean for clean in map(_scrub, value) if clean is not _GONE]
    if isinstance(value, str):
        return value if is_sendable(value) else _left_out("text that " + SURROGATES)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool) or (type(value) is int and value in _JSON_INTS):
        return value
    if isinstance(value, enum.Enum):  # its value, as orjson writes it (the extra must not change what is sent)
        return _scrub(value.value)
    converted = sanitize_properties({"value": value}, what="exported value")  # counts what it drops
    return converted.get("value", _GONE)


def _left_out(what: str) -> Any:
    count_drop("invalid_property")
    warn_limited("encode:" + what, "posthog_otel: left out of an exported event: %s", what)
    return _GONE


def split_by_size(encoded: Sequence[bytes], max_request_bytes: int = MAX_REQUEST_BYTES) -> List[List[bytes]]:
    """Greedy, order-keeping cut of encoded events into request-sized groups."""
    budget = max_request_bytes - _ENVELOPE_OVERHEAD
    groups: List[List[bytes]] = []
    current: List[bytes] = []
    size = 0
    for part in encoded:
        if current and size + len(part) + 1 > budget:
            groups.append(current)
            current, size = [], 0
        current.append(part)
        size += len(part) + 1
    if current:
        groups.append(current)
    return groups


def encode_events(
    events: Sequence[Any], max_event_bytes: int = MAX_EVENT_BYTES
) -> Tuple[List[Any], List[bytes], List[Any]]:
    """(events that fit, their encoding, events over the per-event limit).

    The encoding is one part per event, or, on the fast path, a single part holding all
    of them: the whole batch encoded in one call is several times cheaper than one call
    per event, and when all of it is under the per-event limit no event can be over it
    and it is one request.
    """
    try:
        whole = dumps(list(events))
    except (TypeError, ValueError):  # one event needs scrubbing: each on its own
        whole = b""
    if events and 2 < len(whole) <= max_event_bytes:
        return list(events), [whole[1:-1]], []
    fitting: List[Any] = []
    parts: List[bytes] = []
    too_large: List[Any] = []
    for event in events:
        part = encode_event(event)
        if len(part) > max_event_bytes:
            too_large.append(event)
        else:
            fitting.append(event)
            parts.append(part)
    return fitting, parts, too_large


def batch_body(api_key: str, parts: Sequence[bytes], sent_at: str, historical_migration: bool) -> bytes:
    """The ``/batch/`` envelope around already-encoded events."""
    return b"".join(
        (
            b'{"api_key":',
            json.dumps(api_key).encode("utf-8"),
            b',"historical_migration":',
            b"true" if historical_migration else b"false",
            b',"sent_at":"',
            sent_at.encode("ascii"),
            b'","batch":[',
            b",".join(parts),
            b"]}",
        )
    )


def compress(body: bytes) -> bytes:
    return _gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def compress_as(codec: str, body: bytes) -> Tuple[bytes, str]:
    """(``body`` in ``codec``, its ``Content-Encoding``): Capture V1's ``capture_compression``
    (``gzip``, ``deflate``, ``zstd``), each named by its ``Content-Encoding`` token. deflate is a
    zlib stream (RFC 1950): what PostHog's SDK sends and its capture service reads by that name.
    zstd is refused when the setting is read if no zstd is at hand; should it be gone since
    (a test, a patched module), gzip goes instead: a request is never lost over its codec."""
    if codec == "deflate":
        return _zlib.compress(body, GZIP_LEVEL), codec
    if codec == "zstd":
        compressor = zstd_compressor()
        if compressor is not None:
            return compressor(body), codec
    return compress(body), "gzip"


def zstd_compressor() -> Optional[Callable[[bytes], bytes]]:
    """zstd from the standard library (Python 3.14's ``compression.zstd``) or the ``zstandard``
    package (the ``posthog-otel[zstd]`` extra); None without either. Looked up on first use
    and kept: only Capture V1 with ``capture_compression='zstd'`` imports anything."""
    global _zstd
    if _zstd is _Lookup.PENDING:
        _zstd = _find_zstd()
    return _zstd


def _find_zstd() -> Optional[Callable[[bytes], bytes]]:
    try:
        from compression import zstd as stdlib_zstd  # type: ignore[import-not-found,unused-ignore]

        # compression.zstd.compress(data: bytes, ...) -> bytes, unseen by mypy checking 3.10 (an
        # annotation, not a cast: a cast would be redundant where 3.14 is checked).
        compress: Callable[[bytes], bytes] = stdlib_zstd.compress
        return compress
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    # A compressor object is not safe to share between threads (each exporter has its own
    # sender): one per request, which costs little beside compressing up to 5 MiB.
    return lambda body: zstandard.ZstdCompressor().compress(body)


class _Lookup(enum.Enum):
    PENDING = "not looked up yet"  # None is looked up and absent


_zstd: Union[Callable[[bytes], bytes], None, _Lookup] = _Lookup.PENDING


@dataclass(frozen=True)
class EncodedBatch:
    """Events as JSON, the form they wait in (memory or spool) and leave in.

    ``parts`` holds one part per event, or a single part holding all of them (the cheap
    encoding of a whole batch); either way ``b",".join(parts)`` is the body of a JSON array.
    Only bytes are kept: a pending event costs its JSON size, not a tree of Python objects.
    """

    parts: Tuple[bytes, ...]
    count: int
    size: int  # bytes of JSON, separators included

    @classmethod
    def encode(cls, events: Sequence[Any]) -> Tuple["EncodedBatch", List[Any]]:
        """(the events that fit, encoded; the events over PostHog's per-event limit)."""
        fitting, parts, too_large = encode_events(events)
        return cls.of(parts, len(fitting)), too_large

    @classmethod
    def of(cls, parts: Sequence[bytes], count: int) -> "EncodedBatch":
        parts = tuple(parts)
        return cls(parts, count, sum(len(p) for p in parts) + max(len(parts) - 1, 0))

    @classmethod
    def join(cls, batches: Sequence["EncodedBatch"]) -> "EncodedBatch":
        if len(batches) == 1:
            return batches[0]
        return cls.of([p for b in batches for p in b.parts], sum(b.count for b in batches))

    def body(self) -> bytes:
        """The events as the inside of a JSON array."""
        return b",".join(self.parts)

    def events(self) -> List[Dict[str, Any]]:
        return json.loads(b"[" + self.body() + b"]") if self.count else []

    def per_event(self) -> "EncodedBatch":
        """The same events, one part each (decodes a whole-batch part once)."""
        if len(self.parts) == self.count:
            return self
        return EncodedBatch.of([encode_event(e) for e in self.events()], self.count)

    def split(self, n: int) -> Tuple["EncodedBatch", "EncodedBatch"]:
        """(the first ``n`` events, the rest)."""
        each = self.per_event()
        return EncodedBatch.of(each.parts[:n], min(n, self.count)), EncodedBatch.of(
            each.parts[n:], max(self.count - n, 0)
        )

    def requests(self, max_request_bytes: int = MAX_REQUEST_BYTES) -> List["EncodedBatch"]:
        """This batch cut, in order, into pieces that each fit one request."""
        if self.size <= max_request_bytes - _ENVELOPE_OVERHEAD:
            return [self]
        each = self.per_event()
        return [EncodedBatch.of(group, len(group)) for group in split_by_size(each.parts, max_request_bytes)]
