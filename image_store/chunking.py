"""Cutting image bytes into chunks: content-defined (FastCDC) or fixed-size.

The store and every client that uploads by chunks (snapshots, ``upload_deduplicated``)
must cut the same bytes the same way, or nothing deduplicates: the policy is part of
the store's public ``GET /v1/info`` and :meth:`ChunkingPolicy.from_dict` rebuilds it on
the other side. Content-defined chunking keeps boundaries where they were when bytes
are inserted or removed elsewhere (a grown log file shifts only the chunks around the
edit); fixed-size chunking is cheaper but an insertion shifts every later chunk.

Cutting is streamed: at most a couple of ``max_size`` buffers are held, whatever the
image size, so a 100 GiB upload costs the same memory as a 1 MiB one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pyfastcdc.cy import FastCDC

KIB = 1024
MIB = 1024 * KIB

# pyfastcdc's own limits (values outside make its constructor raise); a fixed
# chunk obeys the same outer bounds so every chunk of every policy is <= 16 MiB.
CDC_MIN_RANGE = (64, 1 * MIB)
CDC_AVG_RANGE = (256, 4 * MIB)
CDC_MAX_RANGE = (1 * KIB, 16 * MIB)
FIXED_RANGE = (64, 16 * MIB)
MAX_CHUNK_LIMIT = 16 * MIB
"""No policy can produce a chunk longer than this (decoders bound their output by it)."""

# FastCDC's normalized-chunking level: part of the cut, so changing it changes every
# boundary (dedup against older images would be lost). 1 is pyfastcdc's and
# fastcdc-rs's default.
NORMALIZED_CHUNKING = 1

KINDS = ("cdc", "fixed")


class InvalidPolicy(ValueError):
    """A chunking policy value is unusable; ``field`` names which one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _check_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPolicy(field, f"must be an integer, got {value!r}")
    return value


def _check_range(field: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidPolicy(field, f"{value} is outside [{low}, {high}] bytes")


@dataclass(frozen=True)
class ChunkingPolicy:
    """How images are cut; validated on construction so a bad one never cuts anything.

    ``cdc``: FastCDC with the three sizes, each a power of two (the gear masks are
    derived from log2(avg), so anything else would silently round). ``fixed``: every
    chunk is ``avg_size`` bytes (the last may be shorter), and min = avg = max.
    """

    kind: Literal["cdc", "fixed"]
    min_size: int
    avg_size: int
    max_size: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidPolicy("kind", f"must be one of {', '.join(KINDS)}, got {self.kind!r}")
        sizes = {
            "min_size": _check_int("min_size", self.min_size),
            "avg_size": _check_int("avg_size", self.avg_size),
            "max_size": _check_int("max_size", self.max_size),
        }
        if self.kind == "fixed":
            _check_range("avg_size", self.avg_size, FIXED_RANGE)
            for field in ("min_size", "max_size"):
                if sizes[field] != self.avg_size:
                    raise InvalidPolicy(
                        field, f"a fixed policy has min = avg = max, got {sizes[field]} "
                               f"with avg_size {self.avg_size}")
            return
        _check_range("min_size", self.min_size, CDC_MIN_RANGE)
        _check_range("avg_size", self.avg_size, CDC_AVG_RANGE)
        _check_range("max_size", self.max_size, CDC_MAX_RANGE)
        for field, value in sizes.items():
            if not _is_power_of_two(value):
                raise InvalidPolicy(field, f"must be a power of two, got {value}")
        if not self.min_size <= self.avg_size:
            raise InvalidPolicy("min_size", f"{self.min_size} is larger than avg_size "
                                            f"{self.avg_size}")
        if not self.avg_size <= self.max_size:
            raise InvalidPolicy("max_size", f"{self.max_size} is smaller than avg_size "
                                            f"{self.avg_size}")

    @classmethod
    def from_options(cls, kind: str, avg_kib: int) -> ChunkingPolicy:
        """The policy a configuration names: ``cdc`` gets min = avg/4 and max = avg*4."""
        if kind not in KINDS:
            raise InvalidPolicy("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        if isinstance(avg_kib, bool) or not isinstance(avg_kib, int) or avg_kib < 1:
            raise InvalidPolicy("avg_kib", f"must be a positive integer, got {avg_kib!r}")
        avg = avg_kib * KIB
        if kind == "fixed":
            if avg > FIXED_RANGE[1]:
                raise InvalidPolicy("avg_kib", f"{avg_kib} KiB is larger than the "
                                               f"{FIXED_RANGE[1] // KIB} KiB limit")
            return cls("fixed", avg, avg, avg)
        if not _is_power_of_two(avg_kib) or avg > CDC_AVG_RANGE[1]:
            raise InvalidPolicy("avg_kib", f"must be a power of two in [1, "
                                           f"{CDC_AVG_RANGE[1] // KIB}] for cdc, got {avg_kib}")
        return cls("cdc", avg // 4, avg, avg * 4)

    def to_dict(self) -> dict[str, Any]:
        """The wire form, as in ``GET /v1/info``."""
        return {"kind": self.kind, "min": self.min_size, "avg": self.avg_size,
                "max": self.max_size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkingPolicy:
        """Rebuild a policy another process announced (validated like any other)."""
        if not isinstance(d, dict):
            raise InvalidPolicy("chunking", f"must be an object, got {type(d).__name__}")
        for key in ("kind", "min", "avg", "max"):
            if key not in d:
                raise InvalidPolicy(key, "is missing")
        extra = sorted(set(d) - {"kind", "min", "avg", "max"})
        if extra:
            raise InvalidPolicy(extra[0], "is not a chunking policy field")
        return cls(d["kind"], d["min"], d["avg"], d["max"])


DEFAULT_POLICY = ChunkingPolicy.from_options("cdc", 64)

ReadInto = Callable[[memoryview], int]


class _ReadIntoAdapter:
    """Gives ``readinto`` to a stream that only has ``read`` (werkzeug's input, generators).

    Tolerates a ``read(n)`` that returns more than ``n`` bytes by keeping the rest for
    the next call, and refuses ``None`` (a non-blocking stream with nothing ready)
    rather than mistaking it for the end of the data and truncating the image.
    """

    def __init__(self, read: Callable[[int], Any]) -> None:
        self._read = read
        self._pending = memoryview(b"")

    def readinto(self, buf: memoryview) -> int:
        want = len(buf)
        if self._pending:
            n = min(want, len(self._pending))
            buf[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        data = self._read(want)
        if data is None:
            raise ValueError("stream: read() returned None (non-blocking streams are not "
                             "supported)")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"stream: read() must return bytes, got {type(data).__name__}")
        n = len(data)
        if n <= want:
            buf[:n] = data
            return n
        view = memoryview(data)
        buf[:] = view[:want]
        self._pending = view[want:]
        return want


def _readinto_of(stream: Any) -> tuple[Any, ReadInto]:
    """The object to hand pyfastcdc and its ``readinto``."""
    readinto = getattr(stream, "readinto", None)
    if callable(readinto):
        return stream, readinto
    read = getattr(stream, "read", None)
    if callable(read):
        adapter = _ReadIntoAdapter(read)
        return adapter, adapter.readinto
    raise TypeError(f"stream: needs a read() or readinto() method, got {type(stream).__name__}")


def _fill(readinto: ReadInto, view: memoryview) -> int:
    """Read until ``view`` is full or the stream ends (streams may return short reads)."""
    filled = 0
    size = len(view)
    while filled < size:
        n = readinto(view[filled:])
        if n is None:  # a non-blocking stream with nothing ready: not the end
            raise ValueError("stream: readinto() returned None (non-blocking streams are "
                             "not supported)")
        if n == 0:
            break
        filled += n
    return filled


def _cut_fixed(readinto: ReadInto, size: int) -> Iterator[tuple[int, memoryview]]:
    buf = memoryview(bytearray(size))
    offset = 0
    while True:
        n = _fill(readinto, buf)
        if n == 0:
            return
        yield offset, buf[:n]
        offset += n
        if n < size:
            return


def _cut_cdc(source: Any, policy: ChunkingPolicy) -> Iterator[tuple[int, memoryview]]:
    # A FastCDC object is cheap (no seed: no table allocation) and its chunkers are
    # not meant to be shared, so each cut gets its own. The stream chunker keeps one
    # buffer of 2 x max_size and hands out views into it.
    chunker = FastCDC(policy.avg_size, min_size=policy.min_size, max_size=policy.max_size,
                      normalized_chunking=NORMALIZED_CHUNKING)
    for chunk in chunker.cut_stream(source):
        yield chunk.offset, chunk.data


def cut(stream: BinaryIO | Any, policy: ChunkingPolicy) -> Iterator[tuple[int, memoryview]]:
    """``(offset, piece)`` pairs covering ``stream`` in order, in bounded memory.

    Each piece is a view into a reused buffer, valid only until the next item is
    requested: copy it (``bytes(piece)``) to keep it. Any object with ``readinto`` or
    ``read`` will do; pieces never exceed ``policy.max_size``.
    """
    if not isinstance(policy, ChunkingPolicy):
        raise TypeError(f"policy: must be a ChunkingPolicy, got {type(policy).__name__}")
    source, readinto = _readinto_of(stream)
    if policy.kind == "fixed":
        return _cut_fixed(readinto, policy.avg_size)
    return _cut_cdc(source, policy)


def cut_file(path: Path | str, policy: ChunkingPolicy) -> Iterator[tuple[int, memoryview]]:
    """:func:`cut` over a file, read unbuffered straight into the chunker's buffer.

    Deliberately not mmap: a file truncated while being cut would kill the process
    with SIGBUS, where a read just ends early.
    """
    if not isinstance(policy, ChunkingPolicy):
        raise TypeError(f"policy: must be a ChunkingPolicy, got {type(policy).__name__}")
    with open(path, "rb", buffering=0) as f:
        with contextlib.suppress(OSError):  # only a hint; not every filesystem takes it
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        yield from cut(f, policy)
