"""Helpers of the ImageStore tests: uploads, read-backs and the catalog's invariants."""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections import Counter
from typing import Any

import sqlalchemy as sa

from image_store import codec
from image_store.catalog import chunk_index as ci
from image_store.chunking import ChunkingPolicy
from image_store.store import SERVICE, Caller, ImageRecord, ImageStore

# A small content-defined policy: multi-chunk images from a few hundred KiB.
SMALL = ChunkingPolicy("cdc", 1024, 4096, 16384)


class ReadOnlyStream:
    """A stream with only ``read``, returning odd-sized pieces (like a WSGI input)."""

    def __init__(self, data: bytes, piece: int = 7777) -> None:
        self._data = memoryview(data)
        self._piece = piece
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        n = self._piece if size is None or size < 0 else min(size, self._piece)
        out = bytes(self._data[self._pos:self._pos + n])
        self._pos += len(out)
        return out


class FailingStream(io.RawIOBase):
    """Yields ``good`` bytes, then raises: a client that went away mid-upload."""

    def __init__(self, good: bytes) -> None:
        self._data = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self._data.readinto(buf)
        if not n:
            raise ConnectionResetError("client went away")
        return n


def noise(size: int, seed: int = 0) -> bytes:
    """Incompressible, non-repeating bytes."""
    return random.Random(seed).randbytes(size)


def text_like(size: int, seed: int = 0) -> bytes:
    """Compressible bytes that still cut into many distinct chunks."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(512)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def upload(store: ImageStore, data: bytes, caller: Caller = SERVICE, *,
           name: str = "img", disk_format: str = "raw", **kwargs: Any) -> ImageRecord:
    record = store.create(caller, name=name, disk_format=disk_format, **kwargs)
    return store.upload(caller, record.id, io.BytesIO(data))


def read(store: ImageStore, image_id: str, start: int = 0, end: int | None = None,
         caller: Caller = SERVICE) -> bytes:
    reader = store.open(caller, image_id, start, end)
    try:
        return b"".join(reader)
    finally:
        reader.close()


def check_record(record: ImageRecord, data: bytes) -> None:
    assert record.status == "active"
    assert record.size == len(data)
    assert record.checksum == hashlib.md5(data).hexdigest()
    assert record.sha256 == hashlib.sha256(data).hexdigest()


def rows(store: ImageStore, table: sa.Table) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def assert_consistent(store: ImageStore) -> None:
    """The catalog's invariants hold and the backend holds exactly the chunk rows.

    - every chunk row has refs == its image_refs rows, > 0, and readable, sound bytes;
    - every backend object has a row (no orphans), nothing is staged;
    - every active image's manifest is contiguous, covers its size, and names chunks the
      image holds; killed images hold nothing.
    """
    chunk_rows = {r.address: r for r in rows(store, ci.chunks)}
    refs = Counter(r.address for r in rows(store, ci.image_refs))
    for address, row in chunk_rows.items():
        assert row.refs == refs[address] > 0, (address, row.refs, refs[address])
        codec.decode(store.backend.get(address), address, row.length)
    assert set(refs) <= set(chunk_rows)
    assert sorted(store.backend.addresses()) == sorted(chunk_rows)
    images = {r.id: r for r in rows(store, ci.images)}
    held: dict[str, set[str]] = {}
    for r in rows(store, ci.image_refs):
        held.setdefault(r.image_id, set()).add(r.address)
    entries: dict[str, list[Any]] = {}
    for r in rows(store, ci.entries):
        entries.setdefault(r.image_id, []).append(r)
    for image_id, image in images.items():
        if image.status == "killed":
            assert image_id not in held and image_id not in entries
        if image.status != "active":
            continue
        position = 0
        previous_hole = False
        for e in sorted(entries.get(image_id, []), key=lambda e: e.offset):
            assert e.offset == position
            assert not (previous_hole and e.address is None), "adjacent holes not merged"
            previous_hole = e.address is None
            if e.address is not None:
                assert e.address in held[image_id]
                assert chunk_rows[e.address].length == e.length
            position += e.length
        assert position == image.size
        used = {e.address for e in entries.get(image_id, []) if e.address}
        assert held.get(image_id, set()) == used


def staged(store: ImageStore) -> list[str]:
    """Files left in the backend's staging area."""
    root = getattr(store.backend, "staging_dir", None)
    found = []
    for dirpath, _dirs, files in os.walk(str(root)):
        found.extend(os.path.join(dirpath, f) for f in files)
    return found
