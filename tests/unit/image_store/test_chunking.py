"""Chunking: policies, exact coverage, size bounds, CDC stability and bounded memory."""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyfastcdc.cy import FastCDC

from image_store.chunking import (
    DEFAULT_POLICY,
    NORMALIZED_CHUNKING,
    ChunkingPolicy,
    InvalidPolicy,
    cut,
    cut_file,
)

KIB = 1024
MIB = 1024 * KIB
SMALL_CDC = ChunkingPolicy.from_options("cdc", 8)      # 2 / 8 / 32 KiB
SMALL_FIXED = ChunkingPolicy.from_options("fixed", 8)
POLICIES = [SMALL_CDC, SMALL_FIXED]
IDS = ["cdc", "fixed"]


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def pieces(stream: object, policy: ChunkingPolicy) -> list[tuple[int, bytes]]:
    return [(offset, bytes(piece)) for offset, piece in cut(stream, policy)]


class ReadOnly:
    """A stream with read() only (like a generator-backed body), of irregular sizes.

    Returns sometimes less and sometimes *more* than asked, as a sloppy producer may.
    """

    def __init__(self, data: bytes, seed: int = 7) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._rng = random.Random(seed)

    def read(self, n: int) -> bytes:
        size = self._rng.choice([1, 100, 4096, n, n + 5000])
        out = self._data[self._pos:self._pos + size]
        self._pos += len(out)
        return bytes(out)


class RepeatingStream:
    """``size`` bytes that repeat one random block, produced lazily and never held."""

    def __init__(self, size: int, block: int = MIB) -> None:
        self._block = data_of(block, seed=3)
        self._left = size

    def read(self, n: int) -> bytes:
        n = min(n, self._left, len(self._block))
        self._left -= n
        return self._block[:n] if n < len(self._block) else self._block


# --- policies --------------------------------------------------------------------------

def test_from_options_cdc_derives_min_and_max() -> None:
    policy = ChunkingPolicy.from_options("cdc", 64)
    assert (policy.kind, policy.min_size, policy.avg_size, policy.max_size) == (
        "cdc", 16 * KIB, 64 * KIB, 256 * KIB)
    assert policy == DEFAULT_POLICY


def test_from_options_fixed_has_one_size() -> None:
    policy = ChunkingPolicy.from_options("fixed", 128)
    assert (policy.min_size, policy.avg_size, policy.max_size) == (128 * KIB,) * 3


@pytest.mark.parametrize("policy", [DEFAULT_POLICY, SMALL_FIXED], ids=IDS)
def test_dict_round_trip(policy: ChunkingPolicy) -> None:
    d = policy.to_dict()
    assert set(d) == {"kind", "min", "avg", "max"}
    assert ChunkingPolicy.from_dict(d) == policy


@pytest.mark.parametrize(("args", "field"), [
    (("zip", 16 * KIB, 64 * KIB, 256 * KIB), "kind"),
    (("cdc", 16 * KIB, 48 * KIB, 256 * KIB), "avg_size"),      # not a power of two
    (("cdc", 15 * KIB, 64 * KIB, 256 * KIB), "min_size"),
    (("cdc", 128 * KIB, 64 * KIB, 256 * KIB), "min_size"),     # min > avg
    (("cdc", 16 * KIB, 64 * KIB, 32 * KIB), "max_size"),       # max < avg
    (("cdc", 32, 256, 1024), "min_size"),                      # below pyfastcdc's 64
    (("cdc", 16 * KIB, 64 * KIB, 32 * MIB), "max_size"),       # above 16 MiB
    (("cdc", 16 * KIB, 8 * MIB, 16 * MIB), "avg_size"),        # above 4 MiB
    (("cdc", True, 64 * KIB, 256 * KIB), "min_size"),
    (("cdc", 16 * KIB, "64", 256 * KIB), "avg_size"),
    (("fixed", 64 * KIB, 128 * KIB, 128 * KIB), "min_size"),
    (("fixed", 128 * KIB, 128 * KIB, 256 * KIB), "max_size"),
    (("fixed", 32 * MIB, 32 * MIB, 32 * MIB), "avg_size"),
])
def test_invalid_policy_names_the_field(args: tuple, field: str) -> None:
    with pytest.raises(InvalidPolicy) as info:
        ChunkingPolicy(*args)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(("kind", "avg_kib", "field"), [
    ("rabin", 64, "kind"), ("cdc", 0, "avg_kib"), ("cdc", 48, "avg_kib"),
    ("cdc", 8192, "avg_kib"), ("fixed", 32 * 1024, "avg_kib"), ("cdc", "64", "avg_kib"),
    ("fixed", -1, "avg_kib"),
])
def test_invalid_options_name_the_field(kind: str, avg_kib: object, field: str) -> None:
    with pytest.raises(InvalidPolicy) as info:
        ChunkingPolicy.from_options(kind, avg_kib)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(("d", "field"), [
    ({"kind": "cdc", "min": 16384, "avg": 65536}, "max"),
    ({"kind": "cdc", "min": 16384, "avg": 65536, "max": 262144, "nc": 2}, "nc"),
    ({"kind": "cdc", "min": 16384, "avg": 65536, "max": 1000}, "max_size"),
    (["cdc"], "chunking"),
])
def test_from_dict_rejects_bad_input(d: object, field: str) -> None:
    with pytest.raises(InvalidPolicy) as info:
        ChunkingPolicy.from_dict(d)  # type: ignore[arg-type]
    assert info.value.field == field


def test_cut_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="stream"):
        cut(object(), SMALL_CDC)
    with pytest.raises(TypeError, match="policy"):
        cut(io.BytesIO(b"x"), {"kind": "cdc"})  # type: ignore[arg-type]


# --- cutting ---------------------------------------------------------------------------

@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_pieces_cover_the_stream_exactly(policy: ChunkingPolicy) -> None:
    data = data_of(MIB + 12345)
    result = pieces(io.BytesIO(data), policy)
    assert b"".join(p for _, p in result) == data
    offset = 0
    for start, piece in result:
        assert start == offset
        offset += len(piece)
    assert offset == len(data)


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_sizes_stay_within_min_and_max(policy: ChunkingPolicy) -> None:
    result = pieces(io.BytesIO(data_of(2 * MIB + 777)), policy)
    sizes = [len(p) for _, p in result]
    assert len(sizes) > 20
    assert all(policy.min_size <= s <= policy.max_size for s in sizes[:-1])
    assert 0 < sizes[-1] <= policy.max_size
    if policy.kind == "fixed":
        assert set(sizes[:-1]) == {policy.avg_size}


def test_cdc_average_is_near_the_target() -> None:
    sizes = [len(p) for _, p in cut(io.BytesIO(data_of(8 * MIB)), SMALL_CDC)]
    mean = sum(sizes) / len(sizes)
    # FastCDC's effective mean is about avg + min (cut-point skipping), here 10 KiB.
    assert 6 * KIB < mean < 14 * KIB


def test_long_zero_runs_cut_at_max() -> None:
    result = pieces(io.BytesIO(bytes(MIB)), SMALL_CDC)
    assert {len(p) for _, p in result} == {SMALL_CDC.max_size}


def _addresses(data: bytes, policy: ChunkingPolicy) -> list[str]:
    return [hashlib.sha256(piece).hexdigest() for _, piece in cut(io.BytesIO(data), policy)]


def test_cdc_boundaries_survive_an_insertion() -> None:
    data = data_of(4 * MIB)
    edited = data[:2 * MIB] + b"inserted bytes" * 10 + data[2 * MIB:]
    before, after = _addresses(data, SMALL_CDC), _addresses(edited, SMALL_CDC)
    changed = set(after) - set(before)
    # Only the chunk(s) around the edit differ; everything before and after is reused.
    assert 1 <= len(changed) <= 3
    assert len(set(before) - set(after)) <= 3
    assert len(before) > 300


def test_fixed_boundaries_shift_after_an_insertion() -> None:
    data = data_of(4 * MIB)
    edited = data[:2 * MIB] + b"x" + data[2 * MIB:]
    before, after = _addresses(data, SMALL_FIXED), _addresses(edited, SMALL_FIXED)
    assert after[:256] == before[:256]          # the first 2 MiB are untouched
    assert not set(after[256:]) & set(before)   # every later chunk moved


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_empty_stream_has_no_pieces(policy: ChunkingPolicy) -> None:
    assert pieces(io.BytesIO(b""), policy) == []
    assert pieces(ReadOnly(b""), policy) == []


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_one_byte_stream(policy: ChunkingPolicy) -> None:
    assert pieces(io.BytesIO(b"x"), policy) == [(0, b"x")]


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_stream_without_readinto_cuts_the_same(policy: ChunkingPolicy) -> None:
    data = data_of(MIB + 3)
    reader = ReadOnly(data)
    assert not hasattr(reader, "readinto")
    assert pieces(reader, policy) == pieces(io.BytesIO(data), policy)


def test_stream_cut_matches_whole_buffer_cdc() -> None:
    """Streaming (with short, irregular reads) never moves a boundary."""
    data = data_of(3 * MIB)
    whole = FastCDC(SMALL_CDC.avg_size, min_size=SMALL_CDC.min_size,
                    max_size=SMALL_CDC.max_size, normalized_chunking=NORMALIZED_CHUNKING)
    expected = [(c.offset, bytes(c.data)) for c in whole.cut_buf(data)]
    assert pieces(ReadOnly(data, seed=11), SMALL_CDC) == expected


def test_non_blocking_stream_is_refused_not_truncated() -> None:
    class NonBlocking:
        def read(self, n: int) -> None:
            return None

    with pytest.raises(ValueError, match="non-blocking"):
        list(cut(NonBlocking(), SMALL_CDC))


def test_non_blocking_readinto_is_refused_not_truncated() -> None:
    class NonBlocking:
        def readinto(self, buf: memoryview) -> None:
            return None

    with pytest.raises((ValueError, TypeError)):
        list(cut(NonBlocking(), SMALL_FIXED))
    with pytest.raises((ValueError, TypeError)):
        list(cut(NonBlocking(), SMALL_CDC))


def test_read_returning_text_is_refused() -> None:
    with pytest.raises(TypeError, match="must return bytes"):
        list(cut(io.StringIO("text"), SMALL_FIXED))


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_cut_file_matches_cut(tmp_path: Path, policy: ChunkingPolicy) -> None:
    data = data_of(MIB + 99)
    path = tmp_path / "image"
    path.write_bytes(data)
    from_file = [(o, bytes(p)) for o, p in cut_file(path, policy)]
    assert from_file == pieces(io.BytesIO(data), policy)
    assert [(o, bytes(p)) for o, p in cut_file(tmp_path / "image", policy)] == from_file


def test_cut_file_of_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert list(cut_file(tmp_path / "empty", DEFAULT_POLICY)) == []


def _peak_while_cutting(stream: object, policy: ChunkingPolicy) -> tuple[int, int]:
    tracemalloc.start()
    try:
        total = 0
        for _, piece in cut(stream, policy):
            total += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, peak


@pytest.mark.parametrize("policy", [DEFAULT_POLICY, ChunkingPolicy.from_options("fixed", 64)],
                         ids=IDS)
def test_memory_stays_bounded_on_a_256_mib_stream(policy: ChunkingPolicy) -> None:
    size = 256 * MIB
    stream = RepeatingStream(size)
    total, peak = _peak_while_cutting(stream, policy)
    assert total == size
    # The chunker's buffer (2 x max = 512 KiB for cdc) plus small change: never the data.
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB"


def _generated(size: int) -> Iterator[bytes]:
    for i in range(size // (64 * KIB)):
        yield i.to_bytes(8, "big") * (8 * KIB)


class GeneratorStream:
    """A stream over a generator, as a request body adapter might be."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._rest = b""

    def read(self, n: int) -> bytes:
        if not self._rest:
            self._rest = next(self._blocks, b"")
        out, self._rest = self._rest[:n], self._rest[n:]
        return out


def test_generator_backed_stream() -> None:
    size = 4 * MIB
    result = pieces(GeneratorStream(_generated(size)), SMALL_CDC)
    assert b"".join(p for _, p in result) == b"".join(_generated(size))
