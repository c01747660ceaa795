"""The framing of ``POST /v1/chunks/batch``: many encoded chunks in one streamed body.

A host filling its cache used to ask for each chunk alone, and a cold 1 GiB image
(9,129 chunks) cost as many requests, ~3.5 ms of CPU each on the two sides: the
request count, not the bytes, bounded the fetch. One request now carries up to
:data:`MAX_ADDRESSES` chunks. The body is a plain sequence of frames, one per
requested address and in the order asked, so both sides work a frame at a time
(bounded memory) and the reader knows exactly what must come next::

    frame   = address length [payload]
    address = 64 ASCII bytes: the chunk's address (lower-case hex SHA-256)
    length  = 4 bytes, big-endian unsigned:
              0 .. MAX_LENGTH  the encoded chunk follows (codec byte + payload),
                               verified by the store before it was sent
              MISSING          the store has no such chunk; nothing follows
              CORRUPT          the store found its copy corrupt (never sent); a
                               2-byte big-endian length and that many bytes of
                               UTF-8 reason follow

The body ends after the last frame. Fewer frames than addresses means the stream was
cut (the store met an error it could not put in a frame, or the network failed).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

MIMETYPE = "application/x-ironbark-chunks"
MAX_ADDRESSES = 256  # chunks per request: <= 64 MiB of the largest (256 KiB) chunks
ADDRESS_BYTES = 64
MISSING = 0xFFFF_FFFF
CORRUPT = 0xFFFF_FFFE
MAX_LENGTH = 0xFFFF_FFF0  # lengths above are sentinels (real chunks are far smaller)
MAX_REASON = 1024  # bytes of a corrupt chunk's reason

_LENGTH = struct.Struct(">I")
_REASON_LENGTH = struct.Struct(">H")
HEADER_BYTES = ADDRESS_BYTES + _LENGTH.size


def chunk_frame(address: str, encoded: bytes) -> bytes:
    """The frame of a verified encoded chunk."""
    if len(encoded) > MAX_LENGTH:
        raise ValueError(f"chunk {address}: {len(encoded)} encoded bytes do not fit a frame")
    return address.encode("ascii") + _LENGTH.pack(len(encoded)) + encoded


def missing_frame(address: str) -> bytes:
    """The frame saying the store has no chunk ``address``."""
    return address.encode("ascii") + _LENGTH.pack(MISSING)


def corrupt_frame(address: str, reason: str) -> bytes:
    """The frame saying the store's copy of ``address`` is corrupt, and why."""
    why = reason.encode("utf-8")[:MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
    return (address.encode("ascii") + _LENGTH.pack(CORRUPT) + _REASON_LENGTH.pack(len(why))
            + why)


class FrameError(Exception):
    """The body does not follow the framing (cut short, or not what was asked)."""


class ChunkAbsent(Exception):
    """A MISSING or CORRUPT frame: ``reason`` is None for a missing chunk."""

    def __init__(self, address: str, reason: str | None) -> None:
        super().__init__(f"chunk {address} is "
                         + ("missing" if reason is None else f"corrupt: {reason}"))
        self.address = address
        self.reason = reason


def read_frames(read: Callable[[int], bytes], addresses: list[str]
                ) -> Iterator[tuple[str, bytes]]:
    """``(address, encoded)`` for each of ``addresses``, read from a body in order.

    ``read(n)`` returns exactly ``n`` bytes, or fewer only at the end of the body.
    Raises :class:`ChunkAbsent` at a missing or corrupt frame (the frames after it are
    not read) and :class:`FrameError` when the body is cut or names another chunk.
    """
    for index, expected in enumerate(addresses):
        where = f"frame {index + 1} of {len(addresses)} (chunk {expected})"
        header = read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:
            raise FrameError(f"the body ended at {where}: {len(header)} of {HEADER_BYTES} "
                             "header bytes")
        got = header[:ADDRESS_BYTES].decode("ascii", "replace")
        if got != expected:
            raise FrameError(f"{where} names chunk {got!r:.80} instead")
        (length,) = _LENGTH.unpack_from(header, ADDRESS_BYTES)
        if length == MISSING:
            raise ChunkAbsent(expected, None)
        if length == CORRUPT:
            raw = read(_REASON_LENGTH.size)
            reason = b""
            if len(raw) == _REASON_LENGTH.size:
                reason = read(_REASON_LENGTH.unpack(raw)[0])
            raise ChunkAbsent(expected, reason.decode("utf-8", "replace") or "no reason given")
        if length > MAX_LENGTH:
            raise FrameError(f"{where} has an unknown length marker {length:#x}")
        encoded = read(length)
        if len(encoded) < length:
            raise FrameError(f"the body ended in {where}: {len(encoded)} of {length} bytes")
        yield expected, encoded
