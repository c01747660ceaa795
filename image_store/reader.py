"""Reading an image back: verified bytes of a byte range, fetched ahead in parallel.

Every chunk is decoded (and so checked against its address) by a worker thread
before any of its bytes is handed out; a few groups of chunks are in flight at
once, so backend reads, zstd and SHA-256 (all of which release the GIL) overlap
with the consumer sending the previous bytes. Holes are generated as zeros, never
read. The consumer sees the pieces strictly in order; a damaged chunk stops the
stream at its place with the error the store makes of it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from image_store.records import Entry

ZEROS = bytes(1024 * 1024)
"""Holes are served from this one buffer, a megabyte at a time."""

GROUP_BYTES = 1024 * 1024
GROUP_CHUNKS = 64
READAHEAD_GROUPS = 4

Fetch = Callable[[str, int], bytes]
"""``fetch(address, length)``: the chunk's verified bytes (raises CorruptChunk/ChunkMissing)."""
Failure = Callable[[Entry, BaseException], BaseException]
"""Turns a chunk's read error into the error the consumer gets (and records the damage)."""


class ChunkReadError(Exception):
    """A worker's failure on one chunk, carried back to the consumer's thread."""

    def __init__(self, entry: Entry, error: BaseException) -> None:
        super().__init__(str(error))
        self.entry = entry
        self.error = error


@dataclass(frozen=True)
class _Piece:
    entry: Entry
    lo: int   # slice of the chunk's bytes that falls in the range
    hi: int


def _fetch_group(fetch: Fetch, pieces: list[_Piece]) -> list[bytes]:
    """Each chunk's bytes, verified, cut to the range (no joining: that would be a copy)."""
    parts = []
    for p in pieces:
        try:
            data = fetch(p.entry.address, p.entry.length)  # type: ignore[arg-type]
        except Exception as exc:
            raise ChunkReadError(p.entry, exc) from exc
        parts.append(data if p.lo == 0 and p.hi == len(data) else data[p.lo:p.hi])
    return parts


class ImageReader:
    """An iterator of verified ``bytes`` covering ``[start, end)`` of an image, in order:
    a piece per chunk (or part of one at the range's edges), holes in pieces of 1 MiB.

    ``entries`` yields the manifest from the entry holding ``start`` onwards; when it
    ends before ``end``, ``truncated()`` says why (the image was deleted meanwhile).
    Close it when stopping early: queued reads are cancelled.
    """

    def __init__(self, image_id: str, entries: Iterator[Entry], start: int, end: int,
                 fetch: Fetch, pool: ThreadPoolExecutor, failure: Failure,
                 truncated: Callable[[], BaseException],
                 readahead: int = READAHEAD_GROUPS) -> None:
        self.image_id = image_id
        self.start = start
        self.end = end
        self.length = end - start
        self._entries = entries
        self._fetch = fetch
        self._pool = pool
        self._failure = failure
        self._truncated = truncated
        self._readahead = readahead
        self._queue: collections.deque[Future[list[bytes]] | int] = collections.deque()
        self._ready: collections.deque[bytes] = collections.deque()  # a fetched group
        self._in_flight = 0
        self._planned = start      # the next byte to schedule
        self._hole = 0             # zeros still to hand out from the current hole
        self._closed = False

    def __iter__(self) -> ImageReader:
        return self

    def _schedule(self) -> None:
        """Queue reads until ``readahead`` groups are in flight or the range is planned."""
        group: list[_Piece] = []
        group_bytes = 0
        while self._planned < self.end and self._in_flight < self._readahead:
            entry = next(self._entries, None)
            if entry is None:
                break
            lo = max(self._planned, entry.offset) - entry.offset
            hi = min(self.end, entry.offset + entry.length) - entry.offset
            if hi <= lo:
                continue
            self._planned = entry.offset + hi
            if entry.address is None:
                if group:
                    self._submit(group)
                    group, group_bytes = [], 0
                self._queue.append(hi - lo)
                continue
            group.append(_Piece(entry, lo, hi))
            group_bytes += hi - lo
            if group_bytes >= GROUP_BYTES or len(group) >= GROUP_CHUNKS:
                self._submit(group)
                group, group_bytes = [], 0
        if group:
            self._submit(group)

    def _submit(self, group: list[_Piece]) -> None:
        self._queue.append(self._pool.submit(_fetch_group, self._fetch, group))
        self._in_flight += 1

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        if self._ready:
            return self._ready.popleft()
        if self._hole:
            return self._zeros()
        self._schedule()
        if not self._queue:
            if self._planned < self.end:
                self.close()
                raise self._truncated()
            self.close()
            raise StopIteration
        item = self._queue.popleft()
        if isinstance(item, int):
            self._hole = item
            return self._zeros()
        self._in_flight -= 1
        try:
            self._ready.extend(item.result())
            return self._ready.popleft()
        except ChunkReadError as exc:
            self.close()
            raise self._failure(exc.entry, exc.error) from exc.error
        except BaseException:
            self.close()
            raise

    def _zeros(self) -> bytes:
        n = min(self._hole, len(ZEROS))
        self._hole -= n
        return ZEROS if n == len(ZEROS) else ZEROS[:n]

    def close(self) -> None:
        """Stop: cancel reads not started yet (running ones finish and are dropped)."""
        if self._closed:
            return
        self._closed = True
        for item in self._queue:
            if not isinstance(item, int):
                item.cancel()
        self._queue.clear()
        self._ready.clear()
        self._hole = 0
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
