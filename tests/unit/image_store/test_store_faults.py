"""ImageStore under faults: damaged and lost chunks, scrub, a SIGKILLed upload, races
between uploads and deletes (threads on SQLite and PostgreSQL, processes on
PostgreSQL), an S3 backend, and the memory an upload may use.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from image_store import catalog, codec
from image_store.backends.local import LocalBackend
from image_store.backends.s3 import S3Backend
from image_store.catalog import chunk_index as ci
from image_store.chunking import DEFAULT_POLICY, ChunkingPolicy
from image_store.store import SERVICE, CorruptImage, Entry, ImageNotFound, ImageStore
from ironbark.db import create_engine
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY

from . import store_workers
from .conftest import MIB, StoreFactory, chunk_files
from .store_util import (
    SMALL,
    assert_consistent,
    check_record,
    noise,
    read,
    rows,
    staged,
    text_like,
    upload,
)

FIXED = ChunkingPolicy("fixed", 4096, 4096, 4096)
ROUNDS = 25


@pytest.fixture
def small(make_store: StoreFactory) -> ImageStore:
    return make_store(policy=SMALL)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'images' / 'catalog.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def chunk_path(store: ImageStore, address: str) -> Path:
    assert isinstance(store.backend, LocalBackend)
    return store.backend.root / "chunks" / address[:2] / address


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def middle_entry(store: ImageStore, image_id: str) -> Entry:
    _, entries = store.manifest(SERVICE, image_id)
    data_entries = [e for e in entries if e.address]
    return data_entries[len(data_entries) // 2]


# -- damaged chunks ------------------------------------------------------------------------


def test_a_flipped_byte_is_reported_never_served_and_repaired_by_reupload(
        small: ImageStore) -> None:
    data = text_like(300_000, 1)
    record = upload(small, data)
    bad = middle_entry(small, record.id)
    assert bad.address is not None
    flip_a_byte(chunk_path(small, bad.address))

    served = bytearray()
    with pytest.raises(CorruptImage) as err:
        for piece in small.open(SERVICE, record.id):
            served += piece
    assert (err.value.image_id, err.value.address, err.value.offset) == (
        record.id, bad.address, bad.offset)
    assert str(err.value).startswith(
        f"image {record.id}: chunk {bad.address} at offset {bad.offset} is corrupt: ")
    assert len(served) <= bad.offset and data.startswith(bytes(served))
    # Ranges that avoid the chunk still read; the record names the damage.
    assert read(small, record.id, 0, bad.offset) == data[:bad.offset]
    damaged = small.get(SERVICE, record.id)
    assert damaged.corrupt_chunks == [bad.address]
    assert damaged.to_dict()["corrupt_chunks"] == [bad.address]
    with pytest.raises(CorruptImage) as chunk_err:
        small.read_chunk(bad.address)
    assert chunk_err.value.image_id is None and chunk_err.value.address == bad.address

    result = small.scrub()
    assert result["corrupt"] == [{"address": bad.address, "images": [record.id]}]
    assert result["missing"] == [] and result["orphans_removed"] == 0
    assert result["checked"] == len(rows(small, ci.chunks))
    assert result["bytes"] == sum(r.length for r in rows(small, ci.chunks))

    # Uploading an image holding the chunk rewrites it and clears the mark.
    again = upload(small, data[bad.offset - 5000:], name="again")
    check_record(again, data[bad.offset - 5000:])
    assert small.get(SERVICE, record.id).corrupt_chunks == []
    assert read(small, record.id) == data
    assert small.scrub()["corrupt"] == []
    assert_consistent(small)


def test_a_lost_chunk_is_reported_missing_and_repaired_by_a_dedup_upload(
        small: ImageStore) -> None:
    data = noise(150_000, 2)
    record = upload(small, data)
    lost = middle_entry(small, record.id)
    assert lost.address is not None
    chunk_path(small, lost.address).unlink()
    with pytest.raises(CorruptImage) as err:
        read(small, record.id)
    assert err.value.address == lost.address and "missing" in err.value.reason
    result = small.scrub()
    assert result["missing"] == [lost.address] and result["corrupt"] == []
    # The dedup protocol asks for it again.
    snap = small.create(SERVICE, name="snap", disk_format="raw")
    piece = data[lost.offset:lost.offset + lost.length]
    assert small.missing(SERVICE, snap.id, [lost.address]) == [lost.address]
    small.put_chunk(SERVICE, snap.id, lost.address, codec.encode(piece))
    small.commit_manifest(SERVICE, snap.id, lost.length, [Entry(0, lost.length, lost.address)])
    assert read(small, record.id) == data
    assert small.scrub()["missing"] == []
    assert_consistent(small)


def test_a_chunk_damaged_behind_a_reader_fails_that_read_only(small: ImageStore) -> None:
    data = text_like(200_000, 3)
    record = upload(small, data)
    entry = middle_entry(small, record.id)
    assert entry.address is not None
    path = chunk_path(small, entry.address)
    path.write_bytes(b"\x07garbage")  # an unknown codec byte
    with pytest.raises(CorruptImage) as err:
        read(small, record.id, entry.offset, entry.offset + 1)
    assert "codec" in err.value.reason


# -- orphans -------------------------------------------------------------------------------


def _stray(store: ImageStore, data: bytes) -> str:
    """A chunk published with no catalog row: what a crash after publish leaves."""
    address = codec.address(data)
    staging = store.backend.staging()
    staging.put(address, codec.encode(data))
    staging.publish()
    return address


def test_orphans_are_removed_only_after_their_grace_period(small: ImageStore) -> None:
    kept = upload(small, text_like(50_000, 4))
    stray = _stray(small, noise(5000, 5))
    first = small.scrub(orphan_grace=3600)
    assert first["orphans_removed"] == 0 and small.backend.exists(stray)
    assert [r.address for r in rows(small, ci.orphans)] == [stray]
    assert small.scrub(orphan_grace=0)["orphans_removed"] == 1
    assert not small.backend.exists(stray) and rows(small, ci.orphans) == []
    assert read(small, kept.id) == text_like(50_000, 4)
    assert_consistent(small)


def test_an_orphan_candidate_that_gets_its_row_is_forgotten(small: ImageStore) -> None:
    data = noise(1000, 6)  # shorter than min_size: cut as one chunk
    stray = _stray(small, data)
    small.scrub(orphan_grace=3600)
    record = upload(small, data)  # the same chunk, now recorded
    assert small.scrub(orphan_grace=0)["orphans_removed"] == 0
    assert rows(small, ci.orphans) == []
    assert small.backend.exists(stray) and read(small, record.id) == data


def test_scrub_never_removes_a_chunk_being_published(make_store: StoreFactory,
                                                     database_url: str) -> None:
    """A publish holds its (uncommitted) row while the scrub looks: the scrub's adoption
    of the "orphan" waits for it, then finds the row and leaves the bytes alone."""
    store = make_store(policy=SMALL, database_url=database_url)
    holder = store.create(SERVICE, name="holder", disk_format="raw")
    data = noise(6000, 7)
    address = codec.address(data)
    published = threading.Event()
    release = threading.Event()

    def publish() -> None:
        staging = store.backend.staging()
        staging.put(address, codec.encode(data))
        with store.engine.begin() as conn:
            ci.add_chunks(conn, holder.id, [(address, len(data), 10)], set())
            staging.publish()
            published.set()
            release.wait(10)

    publisher = threading.Thread(target=publish)
    publisher.start()
    assert published.wait(10)
    result: dict = {}
    scrubber = threading.Thread(target=lambda: result.update(store.scrub(orphan_grace=0)))
    scrubber.start()
    time.sleep(0.5)  # the scrub is now waiting on the publisher's lock
    release.set()
    publisher.join(10)
    scrubber.join(20)
    assert result["orphans_removed"] == 0
    assert store.backend.exists(address)
    assert [r.address for r in rows(store, ci.chunks)] == [address]


# -- a SIGKILLed upload --------------------------------------------------------------------


def _entries_of(engine: sa.Engine, image_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(ci.entries)
                               .where(ci.entries.c.image_id == image_id)) or 0)


def test_an_upload_killed_at_any_moment_leaves_no_trace(make_store: StoreFactory,
                                                        tmp_path: Path) -> None:
    """SIGKILL a process in the middle of an upload (after a first batch is published,
    then anywhere in the next), restart: the image is killed, its chunks are freed, no
    partial chunk exists under a chunk name, and the store works on."""
    root = tmp_path / "images"
    url = f"sqlite:///{root / 'catalog.db'}"
    store = make_store()
    shared = text_like(2 * MIB, 8)
    kept = upload(store, shared, name="kept")
    ctx = multiprocessing.get_context("spawn")
    for round_, delay in enumerate((0.0, random.uniform(0.05, 0.4))):
        victim = store.create(SERVICE, name=f"victim-{round_}", disk_format="raw")
        child = ctx.Process(target=store_workers.upload_forever,
                            args=(str(root), url, DEFAULT_POLICY.to_dict(), victim.id))
        child.start()
        deadline = time.monotonic() + 60
        while _entries_of(store.engine, victim.id) == 0:  # a first batch is published
            assert time.monotonic() < deadline and child.is_alive()
            time.sleep(0.005)
        time.sleep(delay)
        assert child.pid is not None  # os.kill(0, ...) would hit this whole process group
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        # No partial chunk under a chunk name, whatever the moment of the kill.
        for address in store.backend.addresses():
            codec.decode(store.backend.get(address), address)

        store.close()
        store = make_store()  # a restart: recovery runs
        assert store.get(SERVICE, victim.id).status == "killed"
        assert staged(store) == []
        assert _entries_of(store.engine, victim.id) == 0
        # Only orphans (published, never committed) may remain: scrub removes them.
        result = store.scrub(orphan_grace=0)
        assert result["corrupt"] == [] and result["missing"] == []
        assert_consistent(store)
        assert read(store, kept.id) == shared

    again = upload(store, shared + noise(100_000, 10), name="again")
    check_record(again, shared + noise(100_000, 10))
    for record in store.list(SERVICE):
        store.delete(SERVICE, record.id)
    assert chunk_files(store) == []


# -- concurrency ---------------------------------------------------------------------------


def _blocks(count: int, size: int) -> list[bytes]:
    return [noise(size, 100 + i) for i in range(count)]


def _check_survivors(store: ImageStore, expected: dict[str, bytes]) -> None:
    active = store.list(SERVICE, status="active")
    assert active, "every image was deleted: the test raced nothing"
    for record in active:
        assert read(store, record.id) == expected[record.id]
        check_record(record, expected[record.id])
    assert_consistent(store)
    assert staged(store) == []


def test_concurrent_uploads_and_deletes_sharing_chunks(make_store: StoreFactory,
                                                       database_url: str) -> None:
    store = make_store(policy=FIXED, database_url=database_url)
    blocks = _blocks(12, FIXED.avg_size)
    results: list[dict[str, bytes]] = []
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            results.append(store_workers.churn_with(store, blocks, seed, ROUNDS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    expected = {k: v for r in results for k, v in r.items()}
    _check_survivors(store, expected)
    for record in store.list(SERVICE):
        store.delete(SERVICE, record.id)
    assert rows(store, ci.chunks) == [] and chunk_files(store) == []


def test_concurrent_processes_on_postgresql(make_store: StoreFactory, tmp_path: Path,
                                            postgres_url: str) -> None:
    store = make_store(policy=FIXED, database_url=postgres_url)
    blocks = _blocks(12, FIXED.avg_size)
    args = [(str(tmp_path / "images"), postgres_url, FIXED.to_dict(), blocks, seed, ROUNDS)
            for seed in range(3)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(store_workers.churn, args)
    expected = {k: v for r in results for k, v in r.items()}
    _check_survivors(store, expected)


class DeletingStream(io.RawIOBase):
    """Bytes of an image that its owner deletes half-way through the upload."""

    def __init__(self, data: bytes, store: ImageStore, image_id: str, at: int) -> None:
        self._data = io.BytesIO(data)
        self._store = store
        self._image_id = image_id
        self._at = at

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._data.tell() >= self._at and self._image_id:
            self._store.delete(SERVICE, self._image_id)
            self._image_id = ""
        return self._data.readinto(buf)


def test_an_image_deleted_during_its_upload_leaves_nothing(small: ImageStore) -> None:
    kept = upload(small, text_like(100_000, 13), name="kept")
    data = text_like(100_000, 13) + noise(40 * MIB, 14)
    doomed = small.create(SERVICE, name="doomed", disk_format="raw")
    with pytest.raises(ImageNotFound):
        small.upload(SERVICE, doomed.id,
                     DeletingStream(data, small, doomed.id, 20 * MIB))  # type: ignore[arg-type]
    with pytest.raises(ImageNotFound):
        small.get(SERVICE, doomed.id)
    assert_consistent(small)
    assert staged(small) == []
    assert read(small, kept.id) == text_like(100_000, 13)


# -- the S3 backend ------------------------------------------------------------------------


def test_s3_backend_round_trip_and_dedup_accounting(tmp_path: Path, s3_endpoint: str,
                                                    s3_bucket: str) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog.migrate(engine)
    backend = S3Backend(s3_endpoint, s3_bucket, "chunks/", REGION, ACCESS_KEY, SECRET_KEY,
                        tmp_path / "s3-staging", workers=4)
    store = ImageStore(engine, backend, SMALL)
    try:
        base = text_like(150_000, 11) + bytes(40_000)
        edited = base[:70_000] + b"edit" + base[70_000:]
        first = upload(store, base)
        second = upload(store, edited)
        assert store.info()["backend"] == "s3"
        assert read(store, first.id) == base and read(store, second.id) == edited
        assert read(store, second.id, 69_000, 71_000) == edited[69_000:71_000]
        second_chunks = {e.address for e in store.manifest(SERVICE, second.id)[1]
                         if e.address}
        assert_consistent(store)
        store.delete(SERVICE, first.id)
        assert set(backend.addresses()) == second_chunks
        assert read(store, second.id) == edited
        store.delete(SERVICE, second.id)
        assert list(backend.addresses()) == [] and rows(store, ci.chunks) == []
        assert store.scrub(orphan_grace=0) == {"checked": 0, "bytes": 0, "corrupt": [],
                                               "missing": [], "orphans_removed": 0}
    finally:
        store.close()


# -- memory --------------------------------------------------------------------------------


def test_an_upload_holds_bounded_memory(tmp_path: Path) -> None:
    """160 MiB of incompressible bytes through a fresh process: its peak RSS grows by
    well under 100 MiB (the pipeline's queues are bounded, nothing is kept)."""
    root = tmp_path / "images"
    root.mkdir()
    size = 160 * MIB
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        stored, before, after = pool.apply(store_workers.upload_and_measure, (
            str(root), f"sqlite:///{root / 'catalog.db'}", DEFAULT_POLICY.to_dict(), size))
    assert stored == size
    assert after - before < 100 * MIB, (before // MIB, after // MIB)


def test_upload_of_a_bytes_stream_via_readinto(small: ImageStore) -> None:
    data = noise(70_000, 12)
    record = small.create(SERVICE, name="r", disk_format="raw")
    record = small.upload(SERVICE, record.id, io.BufferedReader(io.BytesIO(data)))
    check_record(record, data)
