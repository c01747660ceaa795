"""Streamed upload of one image: cut, hash, deduplicate, compress, stage, publish.

The work is a pipeline so that the CPU-heavy steps overlap (two cores go a long
way: hashlib and zstd release the GIL on big buffers):

    producer thread   cut the stream, copy each piece  -> groups of ~1 MiB
    hasher thread     whole-image MD5 + SHA-256 of every group, in order
    worker pool       per chunk: zero check + SHA-256 address; later zstd + stage file
    calling thread    references (one transaction per few MiB of new addresses),
                      then one transaction per ~64 MiB / 4096 entries that upserts
                      the chunk rows, inserts the manifest rows and publishes

Queues between the stages are bounded, so memory stays at a few tens of MiB
whatever the image size. The catalog protocol (docs/image-store.md, invariants
1-3) is in :mod:`image_store.catalog.chunk_index`: a reference on an existing chunk
is taken before deciding not to write it, and new chunks are published inside the
transaction that records them. Manifest rows of a ``saving`` image are written
batch by batch (nobody reads them before the image is ``active``); the last batch
flips the status in the same transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

import sqlalchemy as sa

from image_store import codec
from image_store.backends.base import ChunkBackend, Staging
from image_store.catalog import chunk_index as ci
from image_store.chunking import ChunkingPolicy, cut
from image_store.records import Entry

GROUP_BYTES = 1024 * 1024          # pieces travel between threads in groups this big
QUEUE_GROUPS = 8                   # groups waiting between two stages
CHECK_BYTES = 4 * 1024 * 1024      # new addresses looked up per reference transaction
CHECK_CHUNKS = 512
STAGE_IN_FLIGHT = 16 * 1024 * 1024  # bytes handed to the pool for compression + staging
PUBLISH_BYTES = 64 * 1024 * 1024   # raw bytes of new chunks per publishing transaction
PUBLISH_ENTRIES = 4096             # manifest entries per publishing transaction
_POLL = 0.1
PRODUCER_GRACE = 30.0

log = logging.getLogger(__name__)

# Called inside a transaction with the image row locked; raises if the upload must stop.
CheckImage = Callable[[sa.Connection], Any]


@dataclass(frozen=True)
class Totals:
    """What the last transaction records on the image."""

    size: int
    checksum: str
    sha256: str
    chunk_count: int
    zero_bytes: int


Activate = Callable[[sa.Connection, Totals], None]


class _Stop(Exception):
    """The pipeline was aborted; the thread that sees this just exits."""


def _put(q: queue.Queue[Any], item: Any, abort: threading.Event) -> None:
    while True:
        if abort.is_set():
            raise _Stop
        try:
            q.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


def _digest(group: list[bytes]) -> list[str | None]:
    return [None if codec.is_zero(d) else codec.address(d) for d in group]


def _stage(staging: Staging, items: list[tuple[str, bytes]],
           level: int) -> list[tuple[str, int, int]]:
    rows = []
    for address, data in items:
        encoded = codec.encode(data, level)
        staging.put(address, encoded)
        rows.append((address, len(data), len(encoded)))
    return rows


class _Hasher(threading.Thread):
    """The whole image's MD5 and SHA-256, fed groups in stream order (both release the
    GIL, so this thread runs beside the chunk work; ~460 MB/s for the pair)."""

    def __init__(self, abort: threading.Event) -> None:
        super().__init__(name="ingest-hash", daemon=True)
        self.queue: queue.Queue[list[bytes] | None] = queue.Queue(QUEUE_GROUPS)
        self._abort = abort
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while (group := self._next()) is not None:
                for data in group:
                    self._md5.update(data)
                    self._sha256.update(data)
        except _Stop:
            return
        except BaseException as exc:  # reported by digests()
            self.error = exc
            self._abort.set()

    def _next(self) -> list[bytes] | None:
        while True:
            if self._abort.is_set():
                raise _Stop
            try:
                return self.queue.get(timeout=_POLL)
            except queue.Empty:
                continue

    def digests(self) -> tuple[str, str]:
        """(MD5, SHA-256) hex, once every group has been hashed."""
        self.join()
        if self.error is not None:
            raise self.error
        return self._md5.hexdigest(), self._sha256.hexdigest()


class Ingest:
    """One upload of one image (single use)."""

    def __init__(self, engine: sa.Engine, backend: ChunkBackend, policy: ChunkingPolicy,
                 level: int, image_id: str, check_image: CheckImage, activate: Activate,
                 workers: int = 2) -> None:
        self._engine = engine
        self._backend = backend
        self._policy = policy
        self._level = level
        self._image_id = image_id
        self._check_image = check_image
        self._activate = activate
        self._workers = workers
        self._abort = threading.Event()
        self._groups: queue.Queue[Any] = queue.Queue(QUEUE_GROUPS)
        self._hasher = _Hasher(self._abort)
        self._pool: ThreadPoolExecutor | None = None
        self._staging: Staging | None = None
        # Chunk bookkeeping: what the image holds (committed references), and what
        # this upload has seen but not recorded yet (being looked up or staged).
        self._held: set[str] = set()
        self._planned: set[str] = set()
        self._candidates: list[tuple[str, bytes]] = []
        self._candidate_bytes = 0
        self._stage_futures: list[tuple[Future[list[tuple[str, int, int]]], int]] = []
        self._stage_bytes_in_flight = 0
        self._staged_rows: list[tuple[str, int, int]] = []
        self._staged_bytes = 0
        self._entries: list[Entry] = []
        self._offset = 0
        self._chunk_count = 0
        self._zero_bytes = 0

    # -- the calling thread ------------------------------------------------------------

    def run(self, stream: BinaryIO) -> Totals:
        """Ingest ``stream``; on any failure everything staged is discarded and the
        error propagates (the caller kills the image and releases its references)."""
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="ingest")
        self._staging = self._backend.staging()
        producer = threading.Thread(target=self._produce, args=(stream,),
                                    name="ingest-cut", daemon=True)
        self._hasher.start()
        producer.start()
        try:
            while (item := self._next_group()) is not None:
                if isinstance(item, BaseException):
                    raise item
                group, digests = item
                self._take(group, digests.result())
            checksum, sha256 = self._hasher.digests()
            totals = Totals(self._offset, checksum, sha256, self._chunk_count,
                            self._zero_bytes)
            self._publish(totals)
            return totals
        finally:
            self._abort.set()
            # The producer stops at its next piece; one stuck reading a stalled client
            # is left behind (a daemon thread: its stream fails once the request ends).
            producer.join(PRODUCER_GRACE)
            if producer.is_alive():
                log.warning("upload of image %s: the reader of its stream is still "
                            "blocked; leaving it behind", self._image_id)
            self._hasher.join()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._staging.discard()  # no-op after the last publish

    def _next_group(self) -> Any:
        while True:
            try:
                return self._groups.get(timeout=_POLL)
            except queue.Empty:
                if self._hasher.error is not None:
                    raise self._hasher.error from None

    def _take(self, group: list[bytes], digests: list[str | None]) -> None:
        for data, address in zip(group, digests, strict=True):
            n = len(data)
            if address is None:
                self._zero_bytes += n
                last = self._entries[-1] if self._entries else None
                if last is not None and last.address is None:
                    self._entries[-1] = Entry(last.offset, last.length + n, None)
                else:
                    self._entries.append(Entry(self._offset, n, None))
            else:
                self._chunk_count += 1
                self._entries.append(Entry(self._offset, n, address))
                if address not in self._held and address not in self._planned:
                    self._planned.add(address)
                    self._candidates.append((address, data))
                    self._candidate_bytes += n
            self._offset += n
        if self._candidate_bytes >= CHECK_BYTES or len(self._candidates) >= CHECK_CHUNKS:
            self._check()
        if self._staged_bytes >= PUBLISH_BYTES or len(self._entries) >= PUBLISH_ENTRIES:
            self._publish(None)

    def _check(self) -> None:
        """Take references on the candidates that exist; stage the others."""
        candidates, self._candidates, self._candidate_bytes = self._candidates, [], 0
        if not candidates:
            return

        def work(conn: sa.Connection) -> tuple[set[str], set[str]]:
            self._check_image(conn)
            return ci.take_refs(conn, self._image_id, [a for a, _ in candidates])

        referenced, trusted = ci.run(self._engine, work)
        self._held |= referenced
        self._planned -= trusted
        batch: list[tuple[str, bytes]] = []
        batch_bytes = 0
        for address, data in candidates:
            if address in trusted:
                continue
            batch.append((address, data))
            batch_bytes += len(data)
            if batch_bytes >= GROUP_BYTES:
                self._submit_stage(batch, batch_bytes)
                batch, batch_bytes = [], 0
        if batch:
            self._submit_stage(batch, batch_bytes)

    def _submit_stage(self, batch: list[tuple[str, bytes]], nbytes: int) -> None:
        assert self._pool is not None and self._staging is not None
        while self._stage_bytes_in_flight + nbytes > STAGE_IN_FLIGHT and self._stage_futures:
            self._collect_stage(0)
        future = self._pool.submit(_stage, self._staging, batch, self._level)
        self._stage_futures.append((future, nbytes))
        self._stage_bytes_in_flight += nbytes
        self._staged_bytes += nbytes

    def _collect_stage(self, index: int) -> None:
        future, nbytes = self._stage_futures.pop(index)
        self._staged_rows.extend(future.result())
        self._stage_bytes_in_flight -= nbytes

    def _publish(self, totals: Totals | None) -> None:
        """Record staged chunks and manifest entries, publish them; activate if last."""
        self._check()  # every entry's chunk is held or staged before its row is written
        while self._stage_futures:
            self._collect_stage(0)
        rows, self._staged_rows, self._staged_bytes = self._staged_rows, [], 0
        entries = self._entries
        if totals is None and entries and entries[-1].address is None:
            # A trailing hole may grow with the next group: keep it for later.
            entries, self._entries = entries[:-1], entries[-1:]
        else:
            self._entries = []
        staging = self._staging
        assert staging is not None
        rewritten = {a for a, _, _ in rows} & self._held

        def work(conn: sa.Connection) -> None:
            self._check_image(conn)
            ci.add_chunks(conn, self._image_id, rows, rewritten)
            ci.insert_entries(conn, self._image_id, entries)
            if totals is not None:
                self._activate(conn, totals)
            staging.publish()  # last: bytes visible only with their rows

        ci.run(self._engine, work)
        published = {a for a, _, _ in rows}
        self._held |= published
        self._planned -= published
        if totals is None:
            self._staging = self._backend.staging()

    # -- the producer thread -----------------------------------------------------------

    def _produce(self, stream: BinaryIO) -> None:
        assert self._pool is not None
        try:
            group: list[bytes] = []
            group_bytes = 0
            for _offset, piece in cut(stream, self._policy):
                if self._abort.is_set():
                    return
                group.append(bytes(piece))
                group_bytes += len(piece)
                if group_bytes >= GROUP_BYTES:
                    self._emit(group)
                    group, group_bytes = [], 0
            if group:
                self._emit(group)
            _put(self._hasher.queue, None, self._abort)
            _put(self._groups, None, self._abort)
        except _Stop:
            return
        except BaseException as exc:
            self._abort_with(exc)

    def _emit(self, group: list[bytes]) -> None:
        assert self._pool is not None
        _put(self._hasher.queue, group, self._abort)
        _put(self._groups, (group, self._pool.submit(_digest, group)), self._abort)

    def _abort_with(self, exc: BaseException) -> None:
        """Hand the producer's error to the calling thread (never blocks for long)."""
        with contextlib.suppress(_Stop):
            _put(self._groups, exc, self._abort)
