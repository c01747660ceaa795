"""The host's image cache: chunks shared by every image, a base file per image.

Booting an image needs its bytes as one file (instances' disks are copy-on-write
overlays over it), but the store keeps images as content-addressed chunks and most
versions of an image share most of them. So the host keeps both: the encoded chunks
it has seen (``chunks/<aa>/<address>``, shared by all images) and the assembled
**base** of each image it boots (``bases/<image sha256>``, sparse). A new image costs
only the chunks the host lacks; an image already assembled costs nothing.

Disk is bounded by ``limit_bytes``: after each :meth:`ImageCache.ensure`, bases and
chunks nobody uses are evicted, least recently used first. A base an instance uses
(recorded by ``ensure(image, instance_id)`` until :meth:`ImageCache.release`) is never
evicted: its overlay would lose its backing file. Nor is anything an ``ensure`` in
progress needs. The index of sizes, recency and pins is SQLite (``index.sqlite``), so
it survives a restart; start-up reconciles it with the files.

Crash safety: chunk files and bases appear under their final names only complete and
verified (temporary name + rename); start-up removes the leftovers of a killed run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, CancelledError, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from image_store.client import ImageStoreClient
from image_store.codec import CorruptChunk, check_address, decode, is_address
from instance_manager.cache.assemble import BaseMismatch, assemble
from instance_manager.cache.chunks import (
    ChunkFetcher,
    ChunkFiles,
    Fetched,
    allocated,
    remove_stray,
)
from instance_manager.cache.index import CacheIndex
from instance_manager.cache.manifest import Entry, parse_manifest
from ironbark.config import HostOptions
from message_bus.messages import ImageRef

log = logging.getLogger(__name__)

GIB = 1024 ** 3
DEFAULT_LIMIT_BYTES = 50 * GIB  # HostOptions.image_cache_gb's default
DEFAULT_FETCH_WORKERS = 4  # HostOptions.image_fetch_workers' default
_MAX_INSTANCE_ID = 255
BOOT_PARTS = ("kernel", "ramdisk")


def boot_pin(instance_id: str, part: str) -> str:
    """The key under which an instance keeps the kernel or ramdisk it boots."""
    return f"{instance_id}#{part}"


class ImageCacheError(Exception):
    """An image could not be made available on this host; nothing partial was kept."""


class ChunkFetchError(ImageCacheError):
    """A chunk of an image could not be fetched, or the store sent bytes that are not it."""

    def __init__(self, image: ImageRef, address: str, offset: int, cause: BaseException):
        why = cause.reason if isinstance(cause, CorruptChunk) else str(cause)
        what = "is corrupt" if isinstance(cause, CorruptChunk) else "could not be fetched"
        super().__init__(f"image {image.name} ({image.id}): chunk {address} at offset "
                         f"{offset} from the image store {what}: {why}")
        self.image_id, self.address, self.offset = image.id, address, offset


@dataclass(frozen=True)
class FetchReport:
    """What one :meth:`ImageCache.ensure` cost.

    ``chunks`` counts the image's distinct data chunks (0 when the base was already
    assembled: then nothing is looked at); ``chunks_fetched + chunks_reused ==
    chunks``. A chunk another ``ensure`` was fetching at the same time counts as
    reused here (it crossed the wire once, for the other one).
    """

    image_id: str
    name: str
    sha256: str
    path: Path
    assembled: bool
    chunks: int
    chunks_fetched: int
    bytes_fetched: int  # encoded bytes received from the store
    chunks_reused: int
    seconds: float


@dataclass
class _Tally:
    """Fetches made by one ensure (the reader of the assembler may add refetches)."""

    fetched: int = 0
    received: int = 0

    def add(self, item: Fetched) -> None:
        self.fetched += 1
        self.received += item.received


@dataclass
class _Totals:
    ensures: int = 0
    bases_assembled: int = 0
    chunks_fetched: int = 0
    bytes_fetched: int = 0
    chunks_reused: int = 0
    evicted_bases: int = 0
    evicted_chunks: int = 0
    evicted_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class ImageCache:
    """The image cache under ``directory`` (``state_dir/images``), filled from ``client``."""

    def __init__(self, directory: Path, client: ImageStoreClient, *,
                 limit_bytes: int = DEFAULT_LIMIT_BYTES,
                 fetch_workers: int = DEFAULT_FETCH_WORKERS):
        if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or limit_bytes < 1:
            raise ValueError(f"limit_bytes: must be a positive integer, got {limit_bytes!r}")
        if (isinstance(fetch_workers, bool) or not isinstance(fetch_workers, int)
                or fetch_workers < 1):
            raise ValueError(f"fetch_workers: must be a positive integer, got {fetch_workers!r}")
        self.directory = directory
        self.limit_bytes = limit_bytes
        self.fetch_workers = fetch_workers
        self._client = client
        directory.mkdir(parents=True, exist_ok=True)
        self._bases = directory / "bases"
        self._bases.mkdir(exist_ok=True)
        self._files = ChunkFiles(directory / "chunks")
        self._index = CacheIndex(directory / "index.sqlite")
        self._fetcher = ChunkFetcher(client.fetch_chunks, self._files, fetch_workers,
                                     self._stored)
        # Guards the sets of what ensures in progress need, and eviction (which must
        # not run between an ensure's "I need X" and its use of X).
        self._state = threading.Lock()
        self._active_chunks: Counter[str] = Counter()
        self._active_bases: Counter[str] = Counter()
        self._image_locks: dict[str, threading.Lock] = {}
        self._image_locks_guard = threading.Lock()
        self._totals = _Totals()
        self._last: dict[str, FetchReport] = {}
        self._reconcile()
        self.evict()

    @classmethod
    def for_host(cls, options: HostOptions, client: ImageStoreClient) -> ImageCache:
        """The cache of the host ``options`` describe: ``state_dir/images``, sized by
        ``image_cache_gb``, fetching with ``image_fetch_workers`` threads."""
        if options.state_dir is None:
            raise ValueError("host.state_dir: the image cache needs a state directory")
        return cls(options.state_dir / "images", client,
                   limit_bytes=max(1, int(options.image_cache_gb * GIB)),
                   fetch_workers=options.image_fetch_workers)

    def close(self) -> None:
        """Stop the fetch threads and close the index (after the last ensure)."""
        self._fetcher.close()
        self._index.close()

    def __enter__(self) -> ImageCache:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the API the workflows use -------------------------------------------------

    def ensure(self, image: ImageRef, instance_id: str | None = None) -> Path:
        """The base file of ``image``, assembled the first time; with ``instance_id``,
        the base is kept (never evicted) until :meth:`release` of that instance."""
        return self.ensure_report(image, instance_id).path

    def ensure_report(self, image: ImageRef, instance_id: str | None = None) -> FetchReport:
        """:meth:`ensure`, returning what it cost (the base is ``report.path``)."""
        sha256 = check_address(image.sha256, "image.sha256")
        if instance_id is not None and (not isinstance(instance_id, str) or not instance_id
                                        or len(instance_id) > _MAX_INSTANCE_ID):
            raise ValueError(f"instance_id: must be a non-empty string of at most "
                             f"{_MAX_INSTANCE_ID} characters, got {instance_id!r:.80}")
        started = time.monotonic()
        dest = self._bases / sha256
        with self._image_lock(sha256), self._needing(bases=[sha256]):
            if dest.is_file():
                self._index.put("base", sha256, allocated(dest), self._index.tick())
                report = FetchReport(image.id, image.name, sha256, dest, assembled=False,
                                     chunks=0, chunks_fetched=0, bytes_fetched=0,
                                     chunks_reused=0, seconds=time.monotonic() - started)
            else:
                report = self._build(image, dest, started)
            if instance_id is not None:
                self._index.pin(instance_id, sha256)
            self.evict()
        self._record(report)
        return report

    def release(self, instance_id: str) -> str | None:
        """The instance no longer uses its base (its domain is gone): the base, and the
        kernel and ramdisk it booted (``boot_pin``), may be evicted from now on.
        Idempotent; returns the base's sha256 if it had one."""
        for part in BOOT_PARTS:
            self._index.unpin(boot_pin(instance_id, part))
        sha256 = self._index.unpin(instance_id)
        if sha256 is not None:
            log.info("image cache: instance %s released base %s", instance_id, sha256)
        return sha256

    def last_fetch(self, image_id: str) -> FetchReport | None:
        """The report of the latest :meth:`ensure` of ``image_id`` in this process."""
        with self._totals.lock:
            return self._last.get(image_id)

    def users(self, sha256: str) -> list[str]:
        """Instances that pin the base ``sha256``."""
        return self._index.users(sha256)

    def base_path(self, sha256: str) -> Path:
        """Where the base of an image with this sha256 lives (whether or not it does)."""
        return self._bases / check_address(sha256, "sha256")

    def chunk_path(self, address: str) -> Path:
        """Where the cached encoded chunk ``address`` lives (whether or not it does)."""
        return self._files.path(check_address(address))

    def stats(self) -> dict[str, Any]:
        """Totals since this cache was opened, and what is on disk now."""
        bases, chunks, used = self._index.totals()
        t = self._totals
        with t.lock:
            return {
                "ensures": t.ensures, "bases_assembled": t.bases_assembled,
                "chunks_fetched": t.chunks_fetched, "bytes_fetched": t.bytes_fetched,
                "chunks_reused": t.chunks_reused, "evicted_bases": t.evicted_bases,
                "evicted_chunks": t.evicted_chunks, "evicted_bytes": t.evicted_bytes,
                "bases": bases, "chunks": chunks, "used_bytes": used,
                "limit_bytes": self.limit_bytes,
            }

    def evict(self) -> int:
        """Remove unused bases and chunks, least recently used first, until the cache
        is within ``limit_bytes`` (or only pinned or needed things are left); the
        bytes freed."""
        with self._state:
            used = self._index.totals()[2]
            if used <= self.limit_bytes:
                return 0
            freed, bases, chunks = 0, 0, 0
            for item in self._index.candidates():
                if used - freed <= self.limit_bytes:
                    break
                if item.kind == "chunk":
                    if item.key in self._active_chunks:
                        continue
                    self._files.remove(item.key)
                    chunks += 1
                else:
                    if item.key in self._active_bases:
                        continue
                    (self._bases / item.key).unlink(missing_ok=True)
                    bases += 1
                self._index.remove(item.kind, item.key)
                freed += item.bytes
        with self._totals.lock:
            self._totals.evicted_bases += bases
            self._totals.evicted_chunks += chunks
            self._totals.evicted_bytes += freed
        log.info("image cache: evicted %d bases and %d chunks (%d bytes); %d of %d bytes "
                 "used", bases, chunks, freed, used - freed, self.limit_bytes)
        return freed

    # -- assembling ------------------------------------------------------------------

    def _build(self, image: ImageRef, dest: Path, started: float) -> FetchReport:
        manifest = parse_manifest(image.id, self._client.chunks(image.id), image.size)
        distinct = manifest.distinct()
        tally = _Tally()
        with self._needing(chunks=distinct):
            self._fetch_missing(image, distinct, tally)
            try:
                assemble(dest, manifest, lambda a, n: self._read_chunk(image, distinct[a], tally),
                         image.sha256)
            except BaseMismatch as exc:
                raise ImageCacheError(f"image {image.name} ({image.id}): {exc}") from None
            tick = self._index.tick()
            self._index.touch("chunk", distinct, tick)
            self._index.put("base", image.sha256, allocated(dest), tick)
        return FetchReport(image.id, image.name, image.sha256, dest, assembled=True,
                           chunks=len(distinct), chunks_fetched=tally.fetched,
                           bytes_fetched=tally.received,
                           chunks_reused=max(0, len(distinct) - tally.fetched),
                           seconds=time.monotonic() - started)

    def _fetch_missing(self, image: ImageRef, distinct: dict[str, Entry], tally: _Tally) -> None:
        """Fetch, in parallel batches, every chunk of ``distinct`` the host lacks; on the
        first failure, cancel what this ensure queued and raise it (naming image and
        chunk)."""
        pending: dict[Future[Fetched], str] = {}
        mine: set[str] = set()

        def start(addresses: Iterable[str]) -> None:
            wanted = [(a, distinct[a].length) for a in addresses]
            for address, future, started in self._fetcher.acquire_many(wanted):
                if future is not None:
                    pending[future] = address
                    if started:
                        mine.add(address)

        start(distinct)
        failure: tuple[str, BaseException] | None = None
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_EXCEPTION)
            orphans = []  # chunks whose ensure gave up: fetched here
            for future in done:
                address = pending.pop(future)
                if future.cancelled():
                    if failure is None and address not in mine:
                        orphans.append(address)
                    continue
                exc = future.exception()
                if exc is not None:
                    failure = failure or (address, exc)
                elif address in mine:
                    tally.add(future.result())
            if failure is not None:
                for future, address in pending.items():
                    if address in mine:
                        future.cancel()
            elif orphans:
                start(orphans)
        if failure is not None:
            address, exc = failure
            raise ChunkFetchError(image, address, distinct[address].offset, exc) from exc

    def _read_chunk(self, image: ImageRef, entry: Entry, tally: _Tally) -> bytes:
        """A chunk's bytes from the host's copy, verified; a copy damaged on disk (a
        power cut, a bad sector) is dropped and fetched again."""
        assert entry.address is not None
        address = entry.address
        for _attempt in range(3):
            encoded = self._files.read(address)
            if encoded is not None:
                try:
                    return decode(encoded, address, entry.length)
                except CorruptChunk as exc:
                    log.warning("image cache: dropping the damaged copy of %s", exc)
                    self._files.remove(address)
                    self._index.remove("chunk", address)
            future, started = self._fetcher.acquire(address, entry.length)
            if future is None:
                continue
            try:
                fetched = future.result()
            except CancelledError:
                continue
            except Exception as exc:
                raise ChunkFetchError(image, address, entry.offset, exc) from exc
            if started:
                tally.add(fetched)
        raise ImageCacheError(f"image {image.name} ({image.id}): chunk {address} at offset "
                              f"{entry.offset} keeps disappearing from the cache")

    def _stored(self, fetched: Fetched) -> None:
        """A fetch worker wrote a chunk: account for it at once (if the ensure fails
        later, the verified chunk stays useful and counted)."""
        self._index.put("chunk", fetched.address, fetched.allocated, self._index.tick())

    # -- bookkeeping -----------------------------------------------------------------

    @contextlib.contextmanager
    def _needing(self, *, chunks: Iterable[str] = (), bases: Iterable[str] = ()
                 ) -> Iterator[None]:
        """Mark what an ensure in progress needs, so eviction leaves it alone."""
        chunk_list, base_list = list(chunks), list(bases)
        with self._state:
            self._active_chunks.update(chunk_list)
            self._active_bases.update(base_list)
        try:
            yield
        finally:
            with self._state:
                self._active_chunks.subtract(chunk_list)
                self._active_bases.subtract(base_list)
                self._active_chunks += Counter()  # drops the zero counts
                self._active_bases += Counter()

    def _image_lock(self, sha256: str) -> threading.Lock:
        with self._image_locks_guard:
            return self._image_locks.setdefault(sha256, threading.Lock())

    def _record(self, report: FetchReport) -> None:
        t = self._totals
        with t.lock:
            t.ensures += 1
            t.bases_assembled += int(report.assembled)
            t.chunks_fetched += report.chunks_fetched
            t.bytes_fetched += report.bytes_fetched
            t.chunks_reused += report.chunks_reused
            self._last[report.image_id] = report
        how = (f"base assembled in {report.seconds:.2f} s" if report.assembled
               else "base already assembled")
        log.info("image %s (%s): fetched %d of %d chunks (%d bytes), reused %d; %s",
                 report.name, report.image_id, report.chunks_fetched, report.chunks,
                 report.bytes_fetched, report.chunks_reused, how)

    def _reconcile(self) -> None:
        """Make the index match the files after whatever the last run left."""
        chunks = self._files.scan()
        bases: dict[str, int] = {}
        for path in list(self._bases.iterdir()):
            if path.is_file() and is_address(path.name):
                bases[path.name] = allocated(path)
            else:  # a .part of an assembly cut short, or something that is no base
                remove_stray(path)
        dropped_c, added_c = self._index.reconcile("chunk", chunks)
        dropped_b, added_b = self._index.reconcile("base", bases)
        if dropped_c or added_c or dropped_b or added_b:
            log.info("image cache: index reconciled with the files: %d bases and %d chunks "
                     "gone, %d bases and %d chunks found", dropped_b, dropped_c, added_b,
                     added_c)


__all__ = ["ChunkFetchError", "FetchReport", "ImageCache", "ImageCacheError"]
