"""Encoded chunks on the host's disk, and fetching the missing ones from the store.

A chunk file appears under its address only complete and verified: the bytes from
the store are decoded against the address first, written to a temporary name and
renamed. There is no fsync: a chunk is verified again every time it is read, so one
damaged by a power cut is detected, dropped and fetched again, never used.

Fetches run on a pool of ``workers`` threads shared by every ``ensure`` on the host,
so the host never has more requests in flight than configured, and a chunk wanted by
two images being fetched at once crosses the wire once: the second asker joins the
first one's fetch.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from image_store.codec import decode, is_address

log = logging.getLogger(__name__)

_TMP_SUFFIX = ".tmp"


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


class ChunkFetcher:
    """Fetches chunks into ``files`` on a bounded pool, each address once at a time."""

    def __init__(self, fetch: Callable[[str], bytes], files: ChunkFiles, workers: int,
                 on_stored: Callable[[Fetched], None]):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"fetch_workers: must be a positive integer, got {workers!r}")
        self._fetch, self._files, self._on_stored = fetch, files, on_stored
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image-fetch")
        self._inflight: dict[str, Future[Fetched]] = {}
        self._lock = threading.RLock()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def acquire(self, address: str, length: int) -> tuple[Future[Fetched] | None, bool]:
        """(None, False) if the host has the chunk; else (a future of its fetch, True if
        this call started it, False if it joined a fetch already under way)."""
        with self._lock:
            running = self._inflight.get(address)
            if running is not None:
                return running, False
            if self._files.exists(address):
                return None, False
            future = self._pool.submit(self._run, address, length)
            self._inflight[address] = future
            # Forget the fetch once it is over (success, failure or cancel); by then
            # a successful chunk is on disk, so a later acquire finds the file. An
            # already finished future runs the callback here, hence the RLock.
            future.add_done_callback(lambda f: self._forget(address, f))
            return future, True

    def _forget(self, address: str, future: Future[Fetched]) -> None:
        with self._lock:
            if self._inflight.get(address) is future:
                del self._inflight[address]

    def _run(self, address: str, length: int) -> Fetched:
        encoded = self._fetch(address)
        decode(encoded, address, length)  # CorruptChunk: nothing is kept
        stored = Fetched(address, len(encoded), self._files.write(address, encoded))
        self._on_stored(stored)
        return stored

