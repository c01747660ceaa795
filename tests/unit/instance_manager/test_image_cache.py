"""The host's chunk cache against a real image store served over HTTP.

Every test uploads real images to a real ``ImageStore`` (SQLite catalog, local chunk
directory) behind the real Flask app on a real ``ThreadedServer``, and reads them
through a real ``ImageStoreClient``. Faults are real too: a store whose chunk file is
damaged, or a WSGI layer in front of the store's app that flips a bit of a chunk on
the wire (what a bad network or a lying proxy does), and a cache process SIGKILLed in
the middle of a fetch.
"""

from __future__ import annotations

import io
import json
import os
import queue
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from image_store.client import CorruptImage, ImageStoreClient
from image_store.codec import CorruptChunk, decode, encode
from image_store.codec import address as address_of
from image_store.service import create_app
from image_store.store import ImageStore
from instance_manager import power, spawn
from instance_manager.cache.chunks import ChunkFetcher, ChunkFiles, Fetched
from instance_manager.cache.manifest import InvalidManifest, parse_manifest
from instance_manager.context import HostContext
from instance_manager.driver.libvirt import LibvirtDriver, SimulatedHost
from instance_manager.image_cache import ChunkFetchError, ImageCache, ImageCacheError
from ironbark.config import HostOptions
from ironbark.wsgi import ThreadedServer
from message_bus import Bus
from message_bus.lifecycle import Event
from message_bus.messages import Destroy, FlavorSpec, ImageRef, InstanceEvent, Spawn
from tests.unit.instance_manager.conftest import AVG_KIB, TOKEN, serving, store_client

KIB = 1024
MIB = 1024 * KIB
MAX_CHUNK = 4 * AVG_KIB * KIB
BIG = 1 << 40  # a limit nothing reaches

MakeCache = Callable[..., ImageCache]


# -- the store, served for real, with a fault injector in front -------------------------


class ChunkFaults:
    """WSGI layer in front of the store's app: flips a bit of the chosen chunks on the
    wire, or delays every chunk (so a test can kill a fetch half way). ``requests``
    lists the chunks asked for, ``calls`` the HTTP requests that asked for them (one
    ``GET /v1/chunks/<address>`` each, or one ``POST /v1/chunks/batch`` for many)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.corrupt: set[str] = set()
        self.delay = 0.0
        self.requests: list[str] = []
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/v1/chunks/batch":
            return self._batch(environ, start_response)
        if not path.startswith("/v1/chunks/"):
            return self.app(environ, start_response)
        address = path.rsplit("/", 1)[1]
        with self._lock:
            self.requests.append(address)
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if address not in self.corrupt:
            return self.app(environ, start_response)
        status, headers, body = self._call_app(environ)
        start_response(status, headers)
        return [body[:-1] + bytes([body[-1] ^ 0x01])]

    def _call_app(self, environ: dict[str, Any]) -> tuple[str, list[Any], bytes]:
        captured: list[Any] = []
        result = self.app(environ, lambda status, headers, exc_info=None: captured.extend(
            [status, headers]) or (lambda _b: None))
        try:
            body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        return captured[0], captured[1], body

    def _batch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Re-sends the store's frames one by one (each after ``delay``), flipping the
        last bit of a chosen chunk's bytes (the framing of docs/image-store.md)."""
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            addresses = json.loads(raw)["addresses"]
        except (ValueError, KeyError, TypeError):
            addresses = []
        with self._lock:
            self.requests.extend(a for a in addresses if isinstance(a, str))
            self.calls += 1
        status, headers, body = self._call_app(environ)
        start_response(status, headers)
        if not status.startswith("200"):
            return [body]
        return self._frames(body)

    def _frames(self, body: bytes) -> Iterator[bytes]:
        at = 0
        while at < len(body):
            address = body[at:at + 64].decode()
            (length,) = struct.unpack(">I", body[at + 64:at + 68])
            end = at + 68 + (0 if length >= 0xFFFF_FFF0 else length)
            if length == 0xFFFF_FFFE:  # corrupt: a reason follows
                end += 2 + struct.unpack(">H", body[end:end + 2])[0]
            frame = bytearray(body[at:end])
            if address in self.corrupt and length < 0xFFFF_FFF0:
                frame[-1] ^= 0x01
            if self.delay:
                time.sleep(self.delay)
            yield bytes(frame)
            at = end


@pytest.fixture
def faults(store: ImageStore) -> ChunkFaults:
    return ChunkFaults(create_app(store, TOKEN))


@pytest.fixture
def server(faults: ChunkFaults) -> Iterator[ThreadedServer]:
    with serving(faults) as srv:
        yield srv


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[ImageStoreClient]:
    with store_client(server) as c:
        yield c


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "host" / "images"


@pytest.fixture
def make_cache(cache_dir: Path, client: ImageStoreClient) -> Iterator[MakeCache]:
    opened: list[ImageCache] = []

    def make(**kwargs: Any) -> ImageCache:
        kwargs.setdefault("limit_bytes", BIG)
        cache = ImageCache(cache_dir, client, **kwargs)
        opened.append(cache)
        return cache

    yield make
    for cache in opened:
        cache.close()


# -- images ---------------------------------------------------------------------------------


def text(size: int, seed: int) -> bytes:
    """Compressible bytes (zstd shrinks them), all different (nothing repeats)."""
    out, i = bytearray(), 0
    while len(out) < size:
        out += f"seed {seed} line {i:08d}: the quick brown fox jumps over the lazy dog\n".encode()
        i += 1
    return bytes(out[:size])


def disk_image(seed: int, size: int = 4 * MIB) -> bytearray:
    """Random data, a 1 MiB hole, compressible text, random data again."""
    rng = random.Random(seed)
    quarter = size // 4
    return bytearray(rng.randbytes(quarter) + bytes(quarter) + text(quarter, seed)
                     + rng.randbytes(size - 3 * quarter))


def upload(client: ImageStoreClient, tmp_path: Path, name: str, data: bytes) -> ImageRef:
    path = tmp_path / f"{name}.raw"
    path.write_bytes(data)
    record = client.create(name=name, disk_format="raw")
    record = client.upload(record["id"], path)
    assert record["status"] == "active"
    return ImageRef(id=record["id"], name=name, disk_format="raw", size=record["size"],
                    sha256=record["sha256"])


def data_chunks(client: ImageStoreClient, image: ImageRef) -> set[str]:
    return {a for _o, _n, a in client.chunks(image.id)["chunks"] if a is not None}


def encoded_size(store: ImageStore, addresses: Iterable[str]) -> int:
    """Encoded bytes of these chunks, as the store keeps (and sends) them."""
    return sum(len(store.read_chunk(a)) for a in addresses)


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def cache_files(cache_dir: Path) -> list[Path]:
    return files_under(cache_dir / "bases") + files_under(cache_dir / "chunks")


# -- fetching and assembling ------------------------------------------------------------------


def test_first_ensure_fetches_every_data_chunk_into_a_sparse_identical_base(
        tmp_path: Path, client: ImageStoreClient, store: ImageStore, make_cache: MakeCache,
        cache_dir: Path, faults: ChunkFaults) -> None:
    data = disk_image(1)
    image = upload(client, tmp_path, "debian", data)
    addresses = data_chunks(client, image)
    faults.requests.clear()

    report = make_cache().ensure_report(image, "i-1")
    requested = sorted(faults.requests)

    assert requested == sorted(addresses)  # each chunk asked for once
    assert report.assembled and report.path == cache_dir / "bases" / image.sha256
    assert report.path.read_bytes() == data
    # the 1 MiB hole is not allocated (at most the chunks around its edges hold zeros)
    assert allocated(report.path) <= len(data) - MIB + 2 * MAX_CHUNK
    assert report.chunks == len(addresses) == report.chunks_fetched
    assert report.chunks_reused == 0
    assert report.bytes_fetched == encoded_size(store, addresses)
    for address in addresses:  # kept encoded and whole
        decode((cache_dir / "chunks" / address[:2] / address).read_bytes(), address)
    # the text quarter compressed: stored encoded chunks take less than the data
    assert report.bytes_fetched < len(data) - MIB


def test_second_ensure_fetches_nothing_and_does_not_reassemble(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache,
        faults: ChunkFaults) -> None:
    image = upload(client, tmp_path, "debian", disk_image(2))
    cache = make_cache()
    first = cache.ensure_report(image, "i-1")
    inode, mtime = os.stat(first.path).st_ino, os.stat(first.path).st_mtime_ns
    faults.requests.clear()

    path = cache.ensure(image, "i-2")

    again = cache.last_fetch(image.id)
    assert again is not None and path == first.path
    assert not again.assembled
    assert (again.chunks_fetched, again.bytes_fetched) == (0, 0)
    assert faults.requests == []
    assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns) == (inode, mtime)
    stats = cache.stats()
    assert stats["bases_assembled"] == 1 and stats["ensures"] == 2
    assert stats["chunks_fetched"] == first.chunks_fetched
    assert sorted(cache.users(image.sha256)) == ["i-1", "i-2"]


def test_a_new_version_fetches_only_the_chunks_of_the_changed_regions(
        tmp_path: Path, client: ImageStoreClient, store: ImageStore, make_cache: MakeCache) -> None:
    old = disk_image(3)
    new = bytearray(old)
    rng = random.Random(33)
    regions = [(300 * KIB, 100), (2 * MIB + 512 * KIB, 4 * KIB), (3 * MIB + 700 * KIB, 1)]
    for offset, length in regions:
        new[offset:offset + length] = rng.randbytes(length)
    v1 = upload(client, tmp_path, "app-v1", old)
    v2 = upload(client, tmp_path, "app-v2", new)
    cache = make_cache()
    cache.ensure(v1)

    report = cache.ensure_report(v2)

    new_chunks = data_chunks(client, v2) - data_chunks(client, v1)
    assert report.path.read_bytes() == bytes(new)
    assert report.chunks_fetched == len(new_chunks) > 0
    assert report.bytes_fetched == encoded_size(store, new_chunks)
    # content-defined chunks: only the chunks around each change differ
    bound = sum(length + 4 * MAX_CHUNK for _offset, length in regions)
    assert report.bytes_fetched <= bound < len(new) // 4
    assert report.chunks_reused == report.chunks - report.chunks_fetched
    assert cache.stats()["bytes_fetched"] == (
        encoded_size(store, data_chunks(client, v1)) + report.bytes_fetched)


def test_images_sharing_chunks_ensured_together_fetch_each_chunk_once(
        tmp_path: Path, client: ImageStoreClient, store: ImageStore, make_cache: MakeCache,
        faults: ChunkFaults) -> None:
    base = disk_image(4)
    variant = bytearray(base)
    variant[100 * KIB:110 * KIB] = bytes(range(256)) * 40
    images = [upload(client, tmp_path, "a", base), upload(client, tmp_path, "b", variant)]
    union = data_chunks(client, images[0]) | data_chunks(client, images[1])
    faults.requests.clear()
    faults.delay = 0.001  # keeps both fetches in flight at once
    cache = make_cache(fetch_workers=4)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(image: ImageRef) -> None:
        barrier.wait()
        try:
            cache.ensure(image)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert sorted(faults.requests) == sorted(union)
    stats = cache.stats()
    assert stats["chunks_fetched"] == len(union)
    assert stats["bytes_fetched"] == encoded_size(store, union)
    assert cache.base_path(images[1].sha256).read_bytes() == bytes(variant)


def test_a_cold_ensure_asks_for_many_chunks_per_request(
        tmp_path: Path, client: ImageStoreClient, store: ImageStore, make_cache: MakeCache,
        faults: ChunkFaults) -> None:
    old = disk_image(14, 8 * MIB)
    new = bytearray(old)
    new[5 * MIB:5 * MIB + 8 * KIB] = random.Random(14).randbytes(8 * KIB)
    v1 = upload(client, tmp_path, "app-v1", old)
    v2 = upload(client, tmp_path, "app-v2", new)
    chunks = data_chunks(client, v1)
    faults.requests.clear()
    cache = make_cache(fetch_workers=4)

    cold = cache.ensure_report(v1)

    assert cold.path.read_bytes() == old
    assert sorted(faults.requests) == sorted(chunks)  # each chunk asked for once
    assert len(chunks) > 250
    # batches of up to 128 chunks, at least one per fetch worker: a handful of requests
    assert faults.calls <= 4 + len(chunks) // 128
    assert cold.chunks_fetched == len(chunks)
    assert cold.bytes_fetched == encoded_size(store, chunks)

    faults.requests.clear()
    faults.calls = 0
    warm = cache.ensure_report(v2)  # only the chunks v1 lacks, in one request

    changed = data_chunks(client, v2) - chunks
    assert warm.path.read_bytes() == bytes(new)
    assert sorted(faults.requests) == sorted(changed) and faults.calls == 1
    assert warm.chunks_fetched == len(changed) and warm.chunks_reused == warm.chunks - len(changed)
    assert warm.bytes_fetched == encoded_size(store, changed)


@pytest.mark.parametrize("where", ["wire", "store"])
def test_a_bad_chunk_in_a_batch_fails_alone(
        tmp_path: Path, client: ImageStoreClient, faults: ChunkFaults, cache_dir: Path,
        where: str) -> None:
    """Corrupt on the wire (the host's check refuses it, the stream goes on) or found
    corrupt by the store (a frame saying so: the rest of the batch is asked again)."""
    image = upload(client, tmp_path, "debian", disk_image(15, 2 * MIB))
    entries = [e for e in client.chunks(image.id)["chunks"] if e[2] is not None]
    assert 2 < len(entries) <= 128
    bad = entries[len(entries) // 2][2]
    if where == "wire":
        faults.corrupt.add(bad)
    else:
        (stored,) = [p for p in (tmp_path / "store").rglob(bad) if p.is_file()]
        stored.write_bytes(encode(b"not the chunk"))
    faults.calls = 0
    files = ChunkFiles(cache_dir / "chunks")
    stored_chunks: list[Fetched] = []
    fetcher = ChunkFetcher(client.fetch_chunks, files, 1, stored_chunks.append)
    try:
        acquired = fetcher.acquire_many([(e[2], e[1]) for e in entries])
        futures = {a: f for a, f, started in acquired if started and f is not None}
        assert len(futures) == len(entries)
        failure = futures.pop(bad).exception(timeout=30)
        results = [f.result(timeout=30) for f in futures.values()]
    finally:
        fetcher.close()

    if where == "wire":
        assert isinstance(failure, CorruptChunk) and failure.address == bad
        assert faults.calls == 1  # the stream went on past the bad chunk
    else:
        assert isinstance(failure, CorruptImage) and failure.address == bad
        assert faults.calls == 2  # the chunks after it, asked for again
    assert sorted(r.address for r in results) == sorted(futures)
    assert sorted(s.address for s in stored_chunks) == sorted(futures)
    assert not files.exists(bad)
    assert sorted(files.scan()) == sorted(futures)


def test_concurrent_ensures_of_one_image_assemble_it_once(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache) -> None:
    data = disk_image(5)
    image = upload(client, tmp_path, "debian", data)
    cache = make_cache(fetch_workers=3)
    barrier = threading.Barrier(5)
    reports: list[Any] = []

    def run(n: int) -> None:
        barrier.wait()
        reports.append(cache.ensure_report(image, f"i-{n}"))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(reports) == 5
    assert sum(r.assembled for r in reports) == 1
    assert cache.stats()["chunks_fetched"] == len(data_chunks(client, image))
    assert cache.base_path(image.sha256).read_bytes() == data
    assert cache.users(image.sha256) == [f"i-{n}" for n in range(5)]


# -- eviction ----------------------------------------------------------------------------------


def test_eviction_removes_the_least_recently_used_first(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache,
        cache_dir: Path) -> None:
    rng = random.Random(6)
    a, b, c = (upload(client, tmp_path, n, rng.randbytes(MIB)) for n in "abc")
    cache = make_cache()
    cache.ensure(a)
    cache.ensure(b)
    cache.ensure(a)  # a's base is now more recent than b's (a's chunks are not)
    cache.ensure(c)

    def chunk_bytes(image: ImageRef) -> int:
        return sum(allocated(cache.chunk_path(x)) for x in data_chunks(client, image))

    def base_bytes(image: ImageRef) -> int:
        return allocated(cache.base_path(image.sha256))

    used = cache.stats()["used_bytes"]
    assert used == sum(allocated(p) for p in cache_files(cache_dir))
    cache.limit_bytes = used - chunk_bytes(a) - chunk_bytes(b) - base_bytes(b)
    freed = cache.evict()

    assert freed == used - cache.limit_bytes
    assert cache.base_path(a.sha256).exists() and not cache.base_path(b.sha256).exists()
    assert not any(cache.chunk_path(x).exists()
                   for x in data_chunks(client, a) | data_chunks(client, b))
    assert all(cache.chunk_path(x).exists() for x in data_chunks(client, c))

    cache.limit_bytes = base_bytes(c)  # next: a's base, then c's chunks
    cache.evict()
    assert not cache.base_path(a.sha256).exists()
    assert [p.name for p in cache_files(cache_dir)] == [c.sha256]
    assert cache.stats()["used_bytes"] == base_bytes(c)


def test_a_base_in_use_is_never_evicted_until_released(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache,
        cache_dir: Path) -> None:
    rng = random.Random(7)
    a, b, c = (upload(client, tmp_path, n, rng.randbytes(MIB)) for n in "abc")
    cache = make_cache(limit_bytes=1)  # everything unused goes after each ensure

    cache.ensure(a, "i-a")
    assert [p.name for p in cache_files(cache_dir)] == [a.sha256]  # its chunks went
    cache.ensure(b)  # unpinned, but this ensure's own result survives it
    assert {p.name for p in cache_files(cache_dir)} == {a.sha256, b.sha256}
    cache.ensure(c, "i-c")
    assert {p.name for p in cache_files(cache_dir)} == {a.sha256, c.sha256}
    assert cache.base_path(a.sha256).read_bytes() == client_bytes(client, a)

    assert cache.release("i-a") == a.sha256
    assert cache.release("i-a") is None  # idempotent (a redelivered destroy)
    cache.evict()
    assert [p.name for p in cache_files(cache_dir)] == [c.sha256]
    assert cache.users(c.sha256) == ["i-c"]
    stats = cache.stats()
    assert (stats["bases"], stats["chunks"]) == (1, 0)
    assert stats["used_bytes"] == allocated(cache.base_path(c.sha256))

    again = cache.ensure_report(a, "i-a2")  # evicted: fetched again
    assert again.assembled and again.chunks_fetched == again.chunks


def client_bytes(client: ImageStoreClient, image: ImageRef) -> bytes:
    with client.open_stream(image.id) as response:
        return response.content


# -- corruption -------------------------------------------------------------------------------


def test_a_chunk_corrupted_on_the_wire_is_refused_and_nothing_is_kept(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache,
        faults: ChunkFaults, cache_dir: Path) -> None:
    data = disk_image(8)
    image = upload(client, tmp_path, "debian", data)
    entries = [e for e in client.chunks(image.id)["chunks"] if e[2] is not None]
    offset, _length, bad = entries[len(entries) // 2]
    faults.corrupt.add(bad)
    cache = make_cache(fetch_workers=2)

    with pytest.raises(ChunkFetchError) as caught:
        cache.ensure(image, "i-1")

    message = str(caught.value)
    assert image.id in message and "debian" in message and bad in message
    assert f"offset {offset}" in message and "corrupt" in message
    assert caught.value.address == bad and caught.value.image_id == image.id
    assert not cache.chunk_path(bad).exists()
    assert files_under(cache_dir / "bases") == []
    assert cache.users(image.sha256) == []
    assert not [p for p in files_under(cache_dir / "chunks") if p.name.startswith(".")]
    stats = cache.stats()  # the index counts exactly the (verified) chunks kept
    assert stats["chunks"] == len(files_under(cache_dir / "chunks"))
    assert stats["bases"] == 0

    faults.corrupt.clear()  # the network heals: the next boot works
    assert cache.ensure(image, "i-1").read_bytes() == data


def test_a_chunk_the_store_finds_corrupt_fails_the_ensure_naming_it(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache,
        store: ImageStore, cache_dir: Path) -> None:
    image = upload(client, tmp_path, "debian", disk_image(9))
    bad = sorted(data_chunks(client, image))[0]
    (stored,) = [p for p in (tmp_path / "store").rglob(bad) if p.is_file()]
    stored.write_bytes(encode(b"not the chunk"))
    cache = make_cache()

    with pytest.raises(ChunkFetchError) as caught:
        cache.ensure(image)

    assert bad in str(caught.value) and image.id in str(caught.value)
    assert not cache.chunk_path(bad).exists()
    assert files_under(cache_dir / "bases") == []


def test_a_chunk_damaged_in_the_cache_is_fetched_again(
        tmp_path: Path, client: ImageStoreClient, store: ImageStore, make_cache: MakeCache) -> None:
    data = disk_image(10)
    image = upload(client, tmp_path, "debian", data)
    cache = make_cache()
    cache.ensure(image)
    cache.close()
    victim = sorted(data_chunks(client, image))[1]
    path = cache.chunk_path(victim)
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 0xFF
    path.write_bytes(damaged)
    cache.base_path(image.sha256).unlink()

    report = make_cache().ensure_report(image)  # a restart: the base is gone

    assert report.assembled and report.path.read_bytes() == data
    assert report.chunks_fetched == 1
    assert report.bytes_fetched == encoded_size(store, [victim])
    decode(path.read_bytes(), victim)


# -- restarts and crashes -----------------------------------------------------------------------


def test_a_restart_keeps_the_index_the_pins_and_the_used_bytes(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache,
        cache_dir: Path) -> None:
    rng = random.Random(11)
    a = upload(client, tmp_path, "a", disk_image(11, 2 * MIB))
    b = upload(client, tmp_path, "b", rng.randbytes(MIB))
    first = make_cache()
    first.ensure(a, "i-1")
    first.ensure(b)
    first.close()
    # what a killed run and a meddling admin leave behind
    (cache_dir / "bases" / f"{b.sha256}.part").write_bytes(b"half a base")
    gone = sorted(data_chunks(client, b))[0]
    first.chunk_path(gone).unlink()
    tmp_chunk = first.chunk_path(gone).parent / f".{gone}.1234.tmp"
    tmp_chunk.write_bytes(b"half a chunk")
    (cache_dir / "chunks" / "junk").write_bytes(b"?")
    stray = encode(b"a chunk nobody recorded" * 100)
    stray_address = address_of(b"a chunk nobody recorded" * 100)
    first.chunk_path(stray_address).parent.mkdir(exist_ok=True)
    first.chunk_path(stray_address).write_bytes(stray)

    second = make_cache()

    on_disk = cache_files(cache_dir)
    assert not [p for p in on_disk if p.name.endswith((".part", ".tmp")) or p.name == "junk"]
    stats = second.stats()
    assert stats["used_bytes"] == sum(allocated(p) for p in on_disk)
    assert stats["bases"] == 2
    assert stats["chunks"] == len(files_under(cache_dir / "chunks"))
    assert second.chunk_path(stray_address).exists()
    assert second.users(a.sha256) == ["i-1"]

    second.limit_bytes = 1
    second.evict()  # the pin survived the restart
    assert [p.name for p in cache_files(cache_dir)] == [a.sha256]
    report = second.ensure_report(a)
    assert not report.assembled and report.chunks_fetched == 0


def test_a_cache_killed_in_the_middle_of_a_fetch_leaves_nothing_half_done(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache,
        faults: ChunkFaults, server: ThreadedServer, cache_dir: Path) -> None:
    data = disk_image(12)
    image = upload(client, tmp_path, "debian", data)
    total = len(data_chunks(client, image))
    faults.delay = 0.005
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from image_store.client import ImageStoreClient\n"
        "from instance_manager.image_cache import ImageCache\n"
        "from message_bus.messages import ImageRef\n"
        "cache = ImageCache(Path(sys.argv[1]), ImageStoreClient(sys.argv[2], sys.argv[3]),"
        " fetch_workers=2)\n"
        "cache.ensure(ImageRef.model_validate_json(sys.argv[4]), 'i-1')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONBARK_")}
    proc = subprocess.Popen([sys.executable, "-c", script, str(cache_dir), server.url, TOKEN,
                             image.model_dump_json()], cwd=Path(__file__).parents[3], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            chunks = cache_dir / "chunks"
            if chunks.exists() and len([p for p in files_under(chunks)
                                        if not p.name.startswith(".")]) >= 10:
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the fetch ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert not (cache_dir / "bases" / image.sha256).exists()
    faults.delay = 0.0

    cache = make_cache()

    present = files_under(cache_dir / "chunks")
    assert 10 <= len(present) < total
    for path in present:  # every chunk under its name is whole and right
        decode(path.read_bytes(), path.name)
    assert cache.stats()["chunks"] == len(present)
    assert files_under(cache_dir / "bases") == []
    report = cache.ensure_report(image, "i-1")
    assert report.chunks_reused == len(present)
    assert report.chunks_fetched == total - len(present)
    assert report.path.read_bytes() == data


# -- bad input -------------------------------------------------------------------------------------


def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
        tmp_path: Path, client: ImageStoreClient, make_cache: MakeCache,
        cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="limit_bytes"):
        ImageCache(tmp_path / "nowhere", client, limit_bytes=0)
    with pytest.raises(ValueError, match="fetch_workers"):
        ImageCache(tmp_path / "nowhere", client, fetch_workers=0)
    assert not (tmp_path / "nowhere").exists()

    image = upload(client, tmp_path, "debian", disk_image(13, MIB))
    cache = make_cache()
    with pytest.raises(ValueError, match=r"image\.sha256"):
        cache.ensure(image.model_copy(update={"sha256": "../../etc/passwd"}))
    with pytest.raises(ValueError, match="instance_id"):
        cache.ensure(image, "")
    with pytest.raises(InvalidManifest, match="size") as caught:
        cache.ensure(image.model_copy(update={"size": image.size + 1}))
    assert caught.value.field == "size"
    assert cache_files(cache_dir) == []

    lying = image.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ImageCacheError, match=f"sha256 {image.sha256}"):
        cache.ensure(lying, "i-1")
    assert files_under(cache_dir / "bases") == []  # no base, no .part
    assert cache.users("0" * 64) == []


@pytest.mark.parametrize(("doc", "field"), [
    ({"size": 10, "chunks": [[0, 4, None], [5, 5, None]]}, "chunks[1].offset"),
    ({"size": 10, "chunks": [[0, 10, "../" + "a" * 61]]}, "chunks[0].address"),
    ({"size": 10, "chunks": [[0, 0, None], [0, 10, None]]}, "chunks[0].length"),
    ({"size": 10, "chunks": [[0, 8, None]]}, "chunks"),
    ({"size": -1, "chunks": []}, "size"),
    ({"size": 1, "chunks": [[0, 1]]}, "chunks[0]"),
    ({"size": 2 ** 25, "chunks": [[0, 2 ** 25, "a" * 64]]}, "chunks[0].length"),
    ([], "(document)"),
])
def test_a_malformed_manifest_is_refused_naming_the_field(doc: Any, field: str) -> None:
    with pytest.raises(InvalidManifest) as caught:
        parse_manifest("img-1", doc)
    assert caught.value.field == field
    assert "img-1" in str(caught.value)


def test_the_host_options_size_the_cache(tmp_path: Path, client: ImageStoreClient) -> None:
    options = HostOptions(name="h1", state_dir=tmp_path / "h1", image_cache_gb=0.5,
                          image_fetch_workers=7)
    with ImageCache.for_host(options, client) as cache:
        assert cache.directory == tmp_path / "h1" / "images"
        assert cache.stats()["limit_bytes"] == 512 * MIB
        assert cache.fetch_workers == 7
        assert (cache.directory / "index.sqlite").is_file()


# -- the workflows that use the cache ------------------------------------------------------


def test_spawn_pins_the_base_and_destroy_releases_it(
        tmp_path: Path, client: ImageStoreClient, cache_dir: Path) -> None:
    """Through the real spawn and destroy workflows, on a libvirt test:/// host."""
    image = upload(client, tmp_path, "debian", disk_image(14, MIB))
    state_dir = cache_dir.parent
    options = HostOptions(name="hv1", group="rack1", state_dir=state_dir, image_cache_gb=1,
                          image_fetch_workers=2)
    sim = SimulatedHost(state_dir / "host.xml", vcpus=8, memory_mb=16384, disk_gb=200)
    driver = LibvirtDriver(sim.uri, simulated=sim)
    cache = ImageCache.for_host(options, client)
    bus = Bus("memory://", sender="host.hv1", namespace=f"test-{uuid.uuid4().hex[:12]}",
              polling_interval=0.001)
    events: queue.Queue[InstanceEvent] = queue.Queue()
    bus.serve("group.rack1", {InstanceEvent: events.put}, workers=1)
    bus.start()
    try:
        ctx = HostContext(options, driver, bus, cache)
        flavor = FlavorSpec(name="small", vcpus=1, memory_mb=512, disk_gb=1)
        instance_id = str(uuid.uuid4())
        spawn.spawn(ctx, Spawn(instance_id=instance_id, name="vm", flavor=flavor,
                               image=image, task_id="t-1"))
        assert events.get(timeout=10).event is Event.SPAWNED
        assert cache.users(image.sha256) == [instance_id]
        cache.limit_bytes = 1
        cache.evict()
        assert cache.base_path(image.sha256).is_file()  # the overlay's backing file stays

        # a spawn the driver refuses after the cache pinned the base keeps no pin
        spawn.spawn(ctx, Spawn(instance_id="not-a-uuid", name="vm2", flavor=flavor,
                               image=image, task_id="t-3"))
        failed = events.get(timeout=10)
        assert failed.event is Event.BUILD_FAILED and "uuid" in failed.reason
        assert cache.users(image.sha256) == [instance_id]

        power.destroy(ctx, Destroy(instance_id=instance_id, task_id="t-2"))
        assert events.get(timeout=10).event is Event.DESTROYED
        assert cache.users(image.sha256) == []
        cache.evict()
        assert not cache.base_path(image.sha256).exists()
    finally:
        bus.stop()
        cache.close()
        driver.close()
