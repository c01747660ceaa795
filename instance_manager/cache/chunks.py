"""Encoded chunks on the host's disk, and fetching the missing ones from the store.

A chunk file appears under its address only complete and verified: the bytes from
the store are decoded against the address first, written to a temporary name and
renamed. There is no fsync: a chunk is verified again every time it is read, so one
damaged by a power cut is detected, dropped and fetched again, never used.

Fetches run on a pool of ``workers`` threads shared by every ``ensure`` on the host,
each thread streaming one batch of chunks (``POST /v1/chunks/batch``) at a time, so
the host never has more requests in flight than configured, and a chunk wanted by
two images being fetched at once crosses the wire once: the second asker joins the
first one's fetch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from image_store.chunk_batch import MAX_ADDRESSES
from image_store.client import CorruptImage, NotFound
from image_store.codec import CorruptChunk, decode, is_address

log = logging.getLogger(__name__)

_TMP_SUFFIX = ".tmp"
# A batch: at most this many chunks, and this much plain data (~128 of the average
# 64 KiB chunk): a stream per worker, big enough that a request's fixed cost vanishes.
BATCH_CHUNKS = 128
BATCH_BYTES = 8 * 1024 * 1024
MIN_BATCH = 16


def allocated(path: Path) -> int:
    """Bytes the file really takes on disk (holes of a sparse file cost nothing)."""
    return os.stat(path).st_blocks * 512


class ChunkFiles:
    """``root/<aa>/<address>``: one encoded chunk per file."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, address: str) -> Path:
        return self.root / address[:2] / address

    def exists(self, address: str) -> bool:
        return self.path(address).is_file()

    def read(self, address: str) -> bytes | None:
        """The encoded chunk, or None if the host does not have it."""
        try:
            return self.path(address).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, address: str, encoded: bytes) -> int:
        """Store a verified chunk atomically; the bytes it takes on disk."""
        final = self.path(address)
        final.parent.mkdir(exist_ok=True)
        tmp = final.parent / f".{address}.{uuid.uuid4().hex}{_TMP_SUFFIX}"
        try:
            with open(tmp, "wb") as f:
                f.write(encoded)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return allocated(final)

    def remove(self, address: str) -> None:
        self.path(address).unlink(missing_ok=True)

    def scan(self) -> dict[str, int]:
        """Every chunk on disk (address -> bytes), deleting what is not one: temporary
        files of writes cut short, and names that are no address."""
        found: dict[str, int] = {}
        for sub in list(self.root.iterdir()):
            if not sub.is_dir() or len(sub.name) != 2:
                remove_stray(sub)
                continue
            for path in list(sub.iterdir()):
                name = path.name
                if path.is_file() and is_address(name) and name[:2] == sub.name:
                    found[name] = allocated(path)
                else:
                    remove_stray(path)
        return found


def remove_stray(path: Path) -> None:
    """Delete what has no business in the cache's directories (recursively)."""
    log.info("image cache: removing stray %s", path)
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            remove_stray(child)
        path.rmdir()
    else:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Fetched:
    address: str
    received: int  # encoded bytes that crossed the wire
    allocated: int  # bytes the chunk file takes on disk


FetchMany = Callable[[list[str]], Iterable[tuple[str, bytes]]]


@dataclass(eq=False)
class _Wanted:
    """A chunk of a batch; ``claimed`` once its future has been taken to settle it
    (``set_running_or_notify_cancel``, which a future allows once)."""

    address: str
    length: int
    future: Future[Fetched]
    claimed: bool = False

    def claim(self) -> bool:
        """Take the future to settle it: False if it was cancelled (its waiters are
        told now: ``concurrent.futures.wait`` only sees a cancel once notified)."""
        if self.claimed:
            return self.future.running()
        self.claimed = True
        return self.future.set_running_or_notify_cancel()

    def fail(self, exc: BaseException) -> None:
        """Settle with ``exc`` unless it is settled already or nobody wants it."""
        if self.claim():
            self.future.set_exception(exc)


def _live(items: list[_Wanted]) -> list[_Wanted]:
    """``items`` but the cancelled ones (whose waiters are told)."""
    return [w for w in items if not (w.future.cancelled() and not w.claim())]


class ChunkFetcher:
    """Fetches chunks into ``files`` on a bounded pool, each address once at a time.

    Chunks are asked for in batches (``fetch_many``: ``ImageStoreClient.fetch_chunks``):
    a request per chunk made a cold fetch cost a round trip and ~3.5 ms of CPU per
    chunk. Each chunk still has a future of its own, so one ensure can join the fetch
    of a chunk another started, and a chunk is settled (stored or failed) as soon as
    its frame arrives. A future stays pending until then, so an ensure that gives up
    can still cancel the chunks it queued, even those of a batch under way: their
    bytes are then dropped (and a batch whose every chunk is cancelled stops).
    """

    def __init__(self, fetch_many: FetchMany, files: ChunkFiles, workers: int,
                 on_stored: Callable[[Fetched], None], *, batch_chunks: int = BATCH_CHUNKS,
                 batch_bytes: int = BATCH_BYTES):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"fetch_workers: must be a positive integer, got {workers!r}")
        self._fetch_many, self._files, self._on_stored = fetch_many, files, on_stored
        self._workers = workers
        self._batch_chunks, self._batch_bytes = batch_chunks, batch_bytes
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image-fetch")
        self._inflight: dict[str, Future[Fetched]] = {}
        self._lock = threading.RLock()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:  # chunks of batches the shutdown cancelled: they never come
            left = list(self._inflight.values())
        for future in left:
            if future.cancel():
                with contextlib.suppress(RuntimeError):
                    future.set_running_or_notify_cancel()

    def acquire(self, address: str, length: int) -> tuple[Future[Fetched] | None, bool]:
        """(None, False) if the host has the chunk; else (a future of its fetch, True if
        this call started it, False if it joined a fetch already under way)."""
        ((_address, future, started),) = self.acquire_many([(address, length)])
        return future, started

    def acquire_many(self, wanted: Iterable[tuple[str, int]]
                     ) -> list[tuple[str, Future[Fetched] | None, bool]]:
        """:meth:`acquire` for each ``(address, plain length)``; the chunks this call
        starts are fetched in batches, in the order given."""
        result: list[tuple[str, Future[Fetched] | None, bool]] = []
        new: list[_Wanted] = []
        with self._lock:
            for address, length in wanted:
                running = self._inflight.get(address)
                if running is not None:
                    result.append((address, running, False))
                    continue
                if self._files.exists(address):
                    result.append((address, None, False))
                    continue
                future: Future[Fetched] = Future()
                self._inflight[address] = future
                # Forget the fetch once it is over (success, failure or cancel); by
                # then a successful chunk is on disk, so a later acquire finds the file.
                future.add_done_callback(
                    lambda f, address=address: self._forget(address, f))  # type: ignore[misc]
                new.append(_Wanted(address, length, future))
                result.append((address, future, True))
            for batch in self._batches(new):
                self._pool.submit(self._run_batch, batch)
        return result

    def _batches(self, new: list[_Wanted]) -> Iterator[list[_Wanted]]:
        """Consecutive runs of ``new``: at most ``batch_chunks`` chunks or ``batch_bytes``
        of plain length each, and split so that every worker has a share (but never
        into runs under ``MIN_BATCH``: a few chunks are not worth several requests)."""
        per_worker = -(-len(new) // self._workers)
        limit = max(1, min(self._batch_chunks, MAX_ADDRESSES, max(MIN_BATCH, per_worker)))
        batch: list[_Wanted] = []
        size = 0
        for item in new:
            if batch and (len(batch) >= limit or size + item.length > self._batch_bytes):
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += item.length
        if batch:
            yield batch

    def _forget(self, address: str, future: Future[Fetched]) -> None:
        with self._lock:
            if self._inflight.get(address) is future:
                del self._inflight[address]

    def _run_batch(self, batch: list[_Wanted]) -> None:
        """Fetch ``batch`` (what was not cancelled meanwhile); every future ends settled.

        A chunk the store lacks or found corrupt fails alone: the rest of the batch is
        asked for again. Any other failure (the store unreachable, the stream cut, the
        disk full) fails every chunk of the batch still unsettled.
        """
        todo = _live(batch)
        try:
            while todo:
                todo = _live(self._fetch_some(todo))
        except BaseException as exc:  # never leave a future pending
            for w in batch:
                w.fail(exc)
            raise

    def _fetch_some(self, todo: list[_Wanted]) -> list[_Wanted]:
        """One request for ``todo``; what is left to ask again after a chunk that failed
        alone ([] when the request is over)."""
        stream = iter(self._fetch_many([w.address for w in todo]))
        done = 0
        try:
            for address, encoded in stream:
                wanted = todo[done]
                if address != wanted.address:
                    raise RuntimeError(f"asked for chunk {wanted.address}, got {address}")
                done += 1
                if wanted.claim():
                    self._store(wanted, encoded)
                elif not _live(todo[done:]):
                    return []  # every chunk left was cancelled: stop the stream
        except Exception as exc:
            if done < len(todo) and _names(exc, todo[done].address):
                todo[done].fail(exc)  # missing or corrupt in the store: it fails alone
                return todo[done + 1:]
            for w in todo[done:]:
                w.fail(exc)
            return []
        finally:
            getattr(stream, "close", lambda: None)()  # an early exit closes the response
        for w in todo[done:]:  # a fetch_many that ended early without saying why
            w.fail(RuntimeError(f"the image store did not send chunk {w.address}"))
        return []

    def _store(self, wanted: _Wanted, encoded: bytes) -> None:
        """Verify and keep one chunk, settling its (claimed) future either way."""
        try:
            decode(encoded, wanted.address, wanted.length)  # CorruptChunk: nothing is kept
            stored = Fetched(wanted.address, len(encoded),
                             self._files.write(wanted.address, encoded))
            self._on_stored(stored)
        except CorruptChunk as exc:
            wanted.future.set_exception(exc)  # this chunk alone: the stream is still good
        except BaseException as exc:
            wanted.future.set_exception(exc)
            raise
        else:
            wanted.future.set_result(stored)


def _names(exc: BaseException, address: str) -> bool:
    """Whether ``exc`` is the store saying that ``address`` alone is missing or corrupt
    (a frame of its own), rather than the whole request failing."""
    if isinstance(exc, CorruptImage):
        return exc.address == address
    return isinstance(exc, NotFound) and exc.status == 404 and address in exc.message
