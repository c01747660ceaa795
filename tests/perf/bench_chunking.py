"""Fixed-size against content-defined chunking, on real disk images and tar archives.

    .venv/bin/python -m tests.perf.bench_chunking [--cache /var/tmp/ironbark-bench]

The image store issue asks to "measure fixed-size against content-defined chunking
on real data and keep the better default". The data are ``tests.perf.disk_images``:
a 1 GiB ext4 image of real Debian packages' files and the same after an upgrade of
a few packages (~1 % of the files), rebuilt from scratch (an image pipeline's next
release) and applied in place (a snapshot of a VM that ran the upgrade); and the
two trees as tar archives, where an insertion shifts every later byte (the case
fixed-size chunking handles worst, and what a qcow2 or tar-like image looks like).

For each chunker: v1's chunks (data chunks; manifest entries x 48 bytes, holes
merged), the bytes of v2 not already in v1 (distinct new chunks; all-zero chunks
are holes and never stored), that as a share of v2, their encoded size (zstd
level 3 when smaller, one codec byte: what the store writes), and chunking +
SHA-256 throughput over v1 from the page cache (CPU cost only, one core).

Uses ``image_store.chunking`` / ``image_store.codec`` when they exist (so the
shipped code is measured), otherwise pyfastcdc and hashlib directly; the output
says which.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from tests.perf import disk_images

KIB = 1024
MIB = 1 << 20
ENTRY_BYTES = 48  # a manifest entry: offset, length, 32-byte address
FIXED_KIB = (4, 16, 64, 256)
CDC_KIB = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Chunker:
    kind: str  # "fixed" | "cdc"
    avg_kib: int

    @property
    def label(self) -> str:
        if self.kind == "fixed":
            return f"fixed {self.avg_kib} KiB"
        return f"cdc avg {self.avg_kib} KiB ({self.avg_kib // 4}-{self.avg_kib * 4})"


@dataclass(frozen=True)
class Result:
    data_chunks_v1: int
    entries_v1: int
    seconds_v1: float
    size_v1: int
    size_v2: int
    new_bytes: int
    new_encoded: int


def implementation() -> tuple[str, Callable[[Path, Chunker], Iterator[memoryview]],
                              Callable[[memoryview], bytes], Callable[[memoryview], bool],
                              Callable[[memoryview], int]]:
    """(name, pieces, digest, is_zero, encoded_size): the shipped code if it is there."""
    try:
        from image_store.chunking import ChunkingPolicy, cut_file
        from image_store.codec import encode, is_zero
    except ImportError:
        return ("pyfastcdc + hashlib directly (image_store.chunking/codec not there yet)",
                _direct_pieces, lambda d: hashlib.sha256(d).digest(), _direct_is_zero,
                _direct_encoded_size)

    def shipped_pieces(path: Path, chunker: Chunker) -> Iterator[memoryview]:
        policy = ChunkingPolicy.from_options(chunker.kind, chunker.avg_kib)
        for _, piece in cut_file(path, policy):
            yield piece

    # The store's address() is the hex of the same SHA-256; the digest is enough here.
    return ("image_store.chunking.cut_file + image_store.codec (shipped code)",
            shipped_pieces, lambda d: hashlib.sha256(d).digest(), is_zero,
            lambda d: len(encode(d)))


def _direct_pieces(path: Path, chunker: Chunker) -> Iterator[memoryview]:
    size = chunker.avg_kib * KIB
    if chunker.kind == "cdc":
        from pyfastcdc import FastCDC
        for chunk in FastCDC(size, min_size=size // 4, max_size=size * 4).cut_file(str(path)):
            yield chunk.data
        return
    buf = bytearray(size)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            yield view[:n]


_ZEROS = bytes(4 * MIB)
_COMPRESSOR = zstandard.ZstdCompressor(level=3)


def _direct_is_zero(data: memoryview) -> bool:
    return _ZEROS[:len(data)] == data


def _direct_encoded_size(data: memoryview) -> int:
    return 1 + min(len(data), len(_COMPRESSOR.compress(data)))


def measure(v1: Path, v2: Path, chunker: Chunker, impl: tuple) -> Result:
    _, pieces, digest, is_zero, encoded_size = impl
    known: set[bytes] = set()
    data_chunks = entries = 0
    in_hole = False
    start = time.perf_counter()
    for piece in pieces(v1, chunker):
        if is_zero(piece):
            entries += not in_hole
            in_hole = True
            continue
        in_hole = False
        entries += 1
        data_chunks += 1
        known.add(digest(piece))
    seconds = time.perf_counter() - start
    new_bytes = new_encoded = 0
    for piece in pieces(v2, chunker):
        if is_zero(piece):
            continue
        address = digest(piece)
        if address not in known:
            known.add(address)
            new_bytes += len(piece)
            new_encoded += encoded_size(piece)
    return Result(data_chunks, entries, seconds, v1.stat().st_size, v2.stat().st_size,
                  new_bytes, new_encoded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=disk_images.DEFAULT_CACHE)
    args = parser.parse_args()
    images = disk_images.build(args.cache)
    impl = implementation()
    s = images.summary
    print(f"chunker code: {impl[0]}")
    print(f"data: {images.directory}; the upgrade of {s.packages_upgraded} of "
          f"{s.packages_v1} packages changed {s.files_changed} of {s.files_v1:,} files "
          f"({s.file_fraction:.2%}), {s.bytes_touched_v2 / MIB:.2f} MiB of file bytes "
          f"({s.byte_fraction:.2%})")
    chunkers = ([Chunker("fixed", k) for k in FIXED_KIB] + [Chunker("cdc", k) for k in CDC_KIB])
    sets = [("ext4 rebuilt", images.v1, images.v2),
            ("ext4 in place", images.v1, images.v2_inplace),
            ("tar", images.tar_v1, images.tar_v2)]
    header = (f"{'data set':<13} {'chunker':<26} {'v1 chunks':>9} {'manifest':>9} "
              f"{'v2 new':>9} {'% of v2':>8} {'zstd new':>9} {'MB/s':>6}")
    print(header)
    print("-" * len(header))
    for name, v1, v2 in sets:
        for chunker in chunkers:
            r = measure(v1, v2, chunker, impl)
            print(f"{name:<13} {chunker.label:<26} {r.data_chunks_v1:>9,} "
                  f"{r.entries_v1 * ENTRY_BYTES / KIB:>6,.0f} KiB "
                  f"{r.new_bytes / MIB:>5.1f} MiB {r.new_bytes / r.size_v2:>8.2%} "
                  f"{r.new_encoded / MIB:>5.1f} MiB {r.size_v1 / r.seconds_v1 / 1e6:>6.0f}",
                  flush=True)
    print("v1 chunks: data chunks (holes not counted); manifest: v1 entries x "
          f"{ENTRY_BYTES} B, adjacent holes merged; v2 new: bytes of distinct v2 chunks not in "
          "v1, holes excluded; zstd new: those encoded as stored (zstd -3 when smaller, "
          "+1 codec byte); MB/s: cut + SHA-256 of v1 from the page cache, one core.")


if __name__ == "__main__":
    main()
