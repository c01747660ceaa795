"""Codec: addresses, zero detection, encoding, and every way a chunk can be corrupt."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable

import pytest
import zstandard

from image_store.codec import (
    RAW,
    ZSTD,
    CorruptChunk,
    address,
    check_address,
    decode,
    encode,
    is_address,
    is_zero,
)

MIB = 1024 * 1024
TEXT = b"the quick brown fox jumps over the lazy dog. " * 1500   # compressible, ~66 KiB
NOISE = random.Random(5).randbytes(64 * 1024)                   # incompressible


def test_address_is_sha256_hex() -> None:
    assert address(TEXT) == hashlib.sha256(TEXT).hexdigest()
    assert address(memoryview(TEXT)[10:20]) == hashlib.sha256(TEXT[10:20]).hexdigest()
    assert is_address(address(b""))


@pytest.mark.parametrize("value", ["", "A" * 64, "g" * 64, "a" * 63, "a" * 65, None, 64,
                                   "../" + "a" * 61, "a" * 63 + "\n"])
def test_bad_addresses_are_rejected(value: object) -> None:
    assert not is_address(value)
    with pytest.raises(ValueError, match="address"):
        check_address(value)


@pytest.mark.parametrize("size", [0, 1, 4096, MIB, MIB + 1, 3 * MIB + 17])
def test_zeros_are_zero(size: int) -> None:
    assert is_zero(bytes(size))
    assert is_zero(memoryview(bytearray(size)))


@pytest.mark.parametrize("where", [0, 1, MIB - 1, MIB, 2 * MIB + 5, 3 * MIB + 16])
def test_one_non_zero_byte_is_found(where: int) -> None:
    data = bytearray(3 * MIB + 17)
    data[where] = 1
    assert not is_zero(data)
    assert not is_zero(memoryview(data)[where:])
    assert is_zero(memoryview(data)[where + 1:])


def test_is_zero_of_a_wide_format_view() -> None:
    assert is_zero(memoryview(bytes(4096)).cast("I"))
    assert not is_zero(memoryview(b"\0\0\0\1" * 1024).cast("I"))


def test_compressible_data_is_stored_as_zstd() -> None:
    encoded = encode(TEXT)
    assert encoded[0] == ZSTD
    assert len(encoded) < len(TEXT) // 10
    assert zstandard.frame_content_size(encoded[1:]) == len(TEXT)  # frame records the size
    assert decode(encoded, address(TEXT), len(TEXT)) == TEXT
    assert decode(encoded, address(TEXT)) == TEXT


def test_incompressible_data_is_stored_raw() -> None:
    encoded = encode(NOISE)
    assert encoded == bytes([RAW]) + NOISE
    assert decode(encoded, address(NOISE), len(NOISE)) == NOISE


def test_level_zero_never_compresses() -> None:
    encoded = encode(TEXT, 0)
    assert encoded == bytes([RAW]) + TEXT
    assert decode(encoded, address(TEXT)) == TEXT


def test_higher_levels_round_trip() -> None:
    for level in (1, 9, 19):
        assert decode(encode(TEXT, level), address(TEXT)) == TEXT


def test_memoryview_input_and_empty_chunk() -> None:
    view = memoryview(TEXT)[100:60000]
    assert decode(encode(view), address(view)) == bytes(view)
    assert encode(b"") == b"\x00"
    assert decode(b"\x00", address(b""), 0) == b""


@pytest.mark.parametrize("level", [-1, 23, 2.5, "3", True, None])
def test_bad_level_is_rejected(level: object) -> None:
    with pytest.raises(ValueError, match="compression level"):
        encode(TEXT, level)  # type: ignore[arg-type]


def test_bad_length_argument_is_rejected() -> None:
    with pytest.raises(ValueError, match="length"):
        decode(encode(TEXT), address(TEXT), -1)


def _flip(encoded: bytes, index: int) -> bytes:
    damaged = bytearray(encoded)
    damaged[index] ^= 0x40
    return bytes(damaged)


def _no_content_size(data: bytes) -> bytes:
    return bytes([ZSTD]) + zstandard.ZstdCompressor(write_content_size=False).compress(data)


CORRUPTIONS: dict[str, tuple[bytes, Callable[[bytes], bytes], int | None, str]] = {
    # name: (data, damage, length given to decode, expected words in the reason)
    "raw payload byte flipped": (NOISE, lambda e: _flip(e, 500), None, "SHA-256"),
    "zstd payload byte flipped": (TEXT, lambda e: _flip(e, len(e) // 2), None, ""),
    "zstd last byte flipped": (TEXT, lambda e: _flip(e, len(e) - 1), None, ""),
    "codec byte unknown": (TEXT, lambda e: b"\x02" + e[1:], None, "codec byte 0x02"),
    "codec byte raw on a frame": (TEXT, lambda e: b"\x00" + e[1:], None, "SHA-256"),
    "codec byte zstd on raw": (NOISE, lambda e: b"\x01" + e[1:], None, "zstd"),
    "zstd frame truncated": (TEXT, lambda e: e[:-5], None, "zstd frame"),
    "zstd header truncated": (TEXT, lambda e: e[:3], None, "zstd frame header"),
    "raw truncated": (NOISE, lambda e: e[:-1], None, "SHA-256"),
    "raw wrong length": (NOISE, lambda e: e, len(NOISE) + 1, "expected"),
    "raw truncated with length": (NOISE, lambda e: e[:-10], len(NOISE), "expected"),
    "zstd wrong length": (TEXT, lambda e: e, len(TEXT) - 1, "expected"),
    "trailing garbage": (TEXT, lambda e: e + b"junk", None, "zstd frame"),
    "no content size": (TEXT, lambda e: _no_content_size(TEXT), None, "content size"),
    "empty": (TEXT, lambda e: b"", None, "empty"),
    "other chunk's bytes": (TEXT, lambda e: encode(NOISE), None, "SHA-256"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corruption_raises_corrupt_chunk_naming_the_address(case: str) -> None:
    data, damage, length, words = CORRUPTIONS[case]
    addr = address(data)
    damaged = damage(encode(data))
    with pytest.raises(CorruptChunk) as info:
        decode(damaged, addr, length)
    assert info.value.address == addr
    assert addr in str(info.value)
    assert info.value.reason and info.value.reason in str(info.value)
    assert words in info.value.reason


def test_a_frame_claiming_a_huge_size_is_refused_before_allocating() -> None:
    huge = 1 << 40
    frame = zstandard.ZstdCompressor().compress(b"x")
    # Rewrite the header's content size: single-segment, 8-byte FCS field.
    header = bytearray(frame[:4]) + bytes([0xE0]) + huge.to_bytes(8, "little")
    assert zstandard.frame_content_size(bytes(header)) == huge
    with pytest.raises(CorruptChunk, match="claims"):
        decode(b"\x01" + bytes(header) + frame[6:], address(b"x"))


def test_threads_encode_and_decode_concurrently() -> None:
    rng = random.Random(9)
    samples = [TEXT[: rng.randrange(1, len(TEXT))] for _ in range(20)] + [NOISE]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                for data in samples:
                    assert decode(encode(data), address(data), len(data)) == data
        except BaseException as exc:  # surfaced by the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
