"""Chunk addresses and the encoded form chunks are stored and sent in.

An encoded chunk is one codec byte and a payload: ``0x00`` raw bytes, ``0x01`` a zstd
frame that records its content size. :func:`decode` is the single gate every byte
passes before it leaves the store or enters a host's cache: it checks the codec byte,
the frame, the length and the SHA-256, so a flipped bit on disk, a truncated transfer
or a lying client all surface as :class:`CorruptChunk` naming the chunk.

zstd compressor/decompressor objects are not thread-safe but are costly to create
(a compressor allocates its tables), so each thread keeps its own, reused.
"""

from __future__ import annotations

import hashlib
import re
import threading

import zstandard

from image_store.chunking import MAX_CHUNK_LIMIT

RAW = 0x00
ZSTD = 0x01
_RAW_BYTE = bytes([RAW])
_ZSTD_BYTE = bytes([ZSTD])

DEFAULT_LEVEL = 3
MAX_LEVEL = zstandard.MAX_COMPRESSION_LEVEL

_ADDRESS = re.compile(r"[0-9a-f]{64}")

# is_zero compares block by block against this (memcmp speed, no copies).
_ZERO_BLOCK = bytes(1024 * 1024)


class CorruptChunk(Exception):
    """Stored or received chunk bytes that do not decode to what their address says."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"chunk {address} is corrupt: {reason}")
        self.address = address
        self.reason = reason


def is_address(value: object) -> bool:
    """True for a well-formed address (64 lower-case hex): safe to use as a file name."""
    return isinstance(value, str) and len(value) == 64 and _ADDRESS.fullmatch(value) is not None


def check_address(value: object, field: str = "address") -> str:
    """``value`` if it is an address, else ``ValueError`` naming ``field``."""
    if not is_address(value):
        raise ValueError(f"{field}: must be 64 lower-case hex characters (a SHA-256), "
                         f"got {value!r:.80}")
    return value  # type: ignore[return-value]


def address(data: bytes | bytearray | memoryview) -> str:
    """The chunk's address: SHA-256 hex of its uncompressed bytes."""
    return hashlib.sha256(data).hexdigest()


def _bytes_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """True if every byte is zero (holes are never stored).

    ``bytes.startswith`` takes any buffer and compares with memcmp, so this runs at
    memory speed on views without copying them; non-zero data usually fails on the
    first block.
    """
    view = _bytes_view(data)
    block = len(_ZERO_BLOCK)
    for start in range(0, len(view), block):
        if not _ZERO_BLOCK.startswith(view[start:start + block]):
            return False
    return True


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True,
                                                       write_checksum=False)
    return cctx


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if dctx is None:
        dctx = _local.decompressor = zstandard.ZstdDecompressor()
    return dctx


def check_level(level: object) -> int:
    """``level`` if it is a usable compression level (0 = never compress)."""
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"compression level: must be an integer in [0, {MAX_LEVEL}], "
                         f"got {level!r}")
    return level


def encode(data: bytes | bytearray | memoryview, level: int = DEFAULT_LEVEL) -> bytes:
    """Codec byte + payload: a zstd frame when strictly smaller than the raw bytes."""
    check_level(level)
    view = _bytes_view(data)
    if level == 0 or not view:
        return _RAW_BYTE + view
    frame = _compressor(level).compress(view)
    if len(frame) < len(view):
        return _ZSTD_BYTE + frame
    return _RAW_BYTE + view


def decode(encoded: bytes | bytearray | memoryview, address: str,
           length: int | None = None) -> bytes:
    """The chunk's bytes, verified against ``address`` (and ``length`` when known).

    Never trusts the payload: a frame's declared size is checked against ``length``
    and :data:`MAX_CHUNK_LIMIT` before anything is allocated, so a hostile frame
    cannot make us decompress gigabytes.
    """
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 0):
        raise ValueError(f"length: must be a non-negative integer, got {length!r}")
    view = _bytes_view(encoded)
    if not view:
        raise CorruptChunk(address, "it is empty (no codec byte)")
    codec = view[0]
    payload = view[1:]
    if codec == RAW:
        if length is not None and len(payload) != length:
            raise CorruptChunk(address, f"it holds {len(payload)} bytes, expected {length}")
        data = payload.tobytes()
    elif codec == ZSTD:
        data = _decompress(payload, address, length)
    else:
        raise CorruptChunk(address, f"unknown codec byte 0x{codec:02x}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != address:
        raise CorruptChunk(address, f"its SHA-256 is {actual}")
    return data


def _decompress(frame: memoryview, address: str, length: int | None) -> bytes:
    try:
        size = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise CorruptChunk(address, f"bad zstd frame header ({exc})") from None
    if size < 0:
        raise CorruptChunk(address, "the zstd frame does not record its content size")
    if length is not None and size != length:
        raise CorruptChunk(address, f"the zstd frame holds {size} bytes, expected {length}")
    if size > MAX_CHUNK_LIMIT:
        raise CorruptChunk(address, f"the zstd frame claims {size} bytes, more than any "
                                    f"chunk ({MAX_CHUNK_LIMIT})")
    try:
        data = _decompressor().decompress(frame, max_output_size=MAX_CHUNK_LIMIT,
                                          allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise CorruptChunk(address, f"bad zstd frame ({exc})") from None
    if len(data) != size:
        raise CorruptChunk(address, f"the zstd frame decoded to {len(data)} bytes, "
                                    f"its header says {size}")
    return data
