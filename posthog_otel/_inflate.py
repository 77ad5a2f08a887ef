"""Request bodies: gzip or deflate decoding with bounds, shared by the gateway and the local server.

What a hostile body can cost here is bounded and linear in its size:

- at most ``limit`` decoded bytes are ever held (413 past it: a "zip bomb" stops there);
- the compressed input is fed in slices of ``_FEED`` bytes, so what zlib copies back
  (``unconsumed_tail``, ``unused_data``) is at most one slice: a body of many gzip members
  costs its length, not its length times its members (which was quadratic);
- at most ``MAX_MEMBERS`` gzip members (each costs a new inflater; HTTP clients send one).

``HTTPError`` carries the status and the message the server answers with.
"""

from __future__ import annotations

import zlib
from typing import Any

MiB = 1024 * 1024

#: gzip members one body may hold (RFC 1952 allows several back to back; clients send one).
MAX_MEMBERS = 1024
#: Compressed bytes given to zlib at a time: bounds what it copies back per call.
_FEED = 64 * 1024


class HTTPError(Exception):
    """Answer ``status`` with ``message``; ``close`` when the stream position is lost."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


def inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    """``raw`` decoded per its Content-Encoding (gzip is also recognised by its magic bytes),
    never holding more than ``limit`` decoded bytes: ``HTTPError`` 413 past it, 400 when
    the data is not valid, 415 for an encoding this server does not speak."""
    encoding = encoding.strip().lower()
    if encoding == "gzip" or (encoding in ("", "identity") and raw[:2] == b"\x1f\x8b"):
        return _decompress(raw, 31, limit, "gzip")
    if encoding == "deflate":
        return _decompress(raw, 15, limit, "deflate")
    if encoding not in ("", "identity"):
        raise HTTPError(415, "Content-Encoding %r is not supported (gzip or deflate)" % encoding[:40])
    if len(raw) > limit:
        raise HTTPError(413, "the body is larger than %s" % size_text(limit))
    return raw


def _decompress(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    """Inflate member after member; each call gets at most ``_FEED`` input bytes and the
    room left as its output bound."""
    out = bytearray()
    view = memoryview(data)
    at, members = 0, 0
    try:
        while True:
            members += 1
            if members > MAX_MEMBERS:
                raise HTTPError(400, "the body holds more than %d %s members" % (MAX_MEMBERS, name))
            inflater = zlib.decompressobj(wbits)
            pending: Any = b""
            while not inflater.eof:
                if not pending:
                    if at >= len(view):
                        raise HTTPError(400, "the body is not valid %s (truncated)" % name)
                    pending = view[at : at + _FEED]
                    at += len(pending)
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise HTTPError(413, "the body inflates to more than %s" % size_text(limit))
                pending = inflater.unconsumed_tail
            at -= len(inflater.unused_data)  # what this member did not use starts the next one
            if at >= len(view) or wbits != 31:
                break
    except zlib.error:
        raise HTTPError(400, "the body is not valid %s" % name) from None
    if at < len(view):
        raise HTTPError(400, "the body is not valid %s (trailing data)" % name)
    return bytes(out)


def size_text(n: int) -> str:
    return "%d MiB" % (n // MiB) if n >= MiB and n % MiB == 0 else "%d bytes" % n
