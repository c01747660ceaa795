"""Uploading a file by chunks, sending only those the store lacks (snapshots).

The file is read twice rather than held: a first pass cuts it with the store's
own policy (``GET /v1/info``) and keeps only the manifest -- offsets, lengths and
addresses, a few dozen bytes per chunk -- and the second pass re-reads just the
missing chunks by offset (``os.pread``, so the worker threads share one descriptor).
Memory stays at a few chunks per worker whatever the file's size. A chunk that no
longer hashes to its address on the second read means the file changed under us:
the upload stops rather than store a manifest that does not describe any real image.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from image_store.chunking import ChunkingPolicy, cut_file
from image_store.codec import address, encode, is_zero

if TYPE_CHECKING:
    from image_store.client import ImageStoreClient

MISSING_BATCH = 1000
"""Addresses per ``POST .../chunks/missing`` (bounded request bodies)."""


@dataclass
class Plan:
    """The manifest of a file and where each distinct chunk first occurs in it."""

    size: int = 0
    entries: list[list[Any]] = field(default_factory=list)  # [offset, length, address|None]
    first_seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    data_chunks: int = 0
    zero_bytes: int = 0


def plan(path: Path, policy: ChunkingPolicy) -> Plan:
    """Cut ``path`` as the store would; all-zero pieces become (merged) holes."""
    result = Plan()
    for offset, piece in cut_file(path, policy):
        length = len(piece)
        result.size = offset + length
        if is_zero(piece):
            result.zero_bytes += length
            last = result.entries[-1] if result.entries else None
            if last is not None and last[2] is None:
                last[1] += length
            else:
                result.entries.append([offset, length, None])
            continue
        chunk_address = address(piece)
        result.entries.append([offset, length, chunk_address])
        result.data_chunks += 1
        result.first_seen.setdefault(chunk_address, (offset, length))
    return result


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _send(client: ImageStoreClient, image_id: str, fd: int, path: Path,
          chunk_address: str, offset: int, length: int) -> int:
    """Re-read one chunk, check it is still what was planned, PUT it; encoded bytes sent."""
    from image_store.client import ImageStoreClientError

    data = os.pread(fd, length, offset)
    if len(data) != length or address(data) != chunk_address:
        raise ImageStoreClientError(
            None, f"{path} changed while it was uploaded (bytes {offset}..{offset + length} "
                  f"no longer hash to chunk {chunk_address}); image {image_id} not committed")
    encoded = encode(data)
    client.put_chunk(image_id, chunk_address, encoded)
    return len(encoded)


def upload_deduplicated(client: ImageStoreClient, image_id: str, path: Path,
                        workers: int = 4) -> tuple[dict[str, Any], dict[str, int]]:
    """Dedup-upload ``path`` as image ``image_id`` (queued); ``(record, counters)``.

    Counters: ``chunks`` (data chunks in the manifest, repeats included),
    ``sent_chunks``/``sent_bytes`` (what crossed the wire, encoded) and ``zero_bytes``
    (holes, never sent). On failure the image is left ``saving`` with whatever
    references it took: the caller deletes it (that frees them).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be a positive integer, got {workers!r}")
    policy = ChunkingPolicy.from_dict(client.info()["chunking"])
    manifest = plan(path, policy)
    distinct = list(manifest.first_seen)
    missing: list[str] = []
    for batch in _batches(distinct, MISSING_BATCH) if distinct else iter([[]]):
        missing.extend(client.missing(image_id, batch))
    sent_bytes = 0
    with open(path, "rb", buffering=0) as f, ThreadPoolExecutor(
            workers, thread_name_prefix="chunk-put") as pool:
        in_flight: set[Future[int]] = set()
        try:
            for chunk_address in missing:
                if len(in_flight) >= 2 * workers:  # bounded: a few chunks per worker
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    sent_bytes += sum(future.result() for future in done)
                if chunk_address not in manifest.first_seen:
                    raise ValueError(f"the store asked for chunk {chunk_address}, which "
                                     f"is not in {path}")
                offset, length = manifest.first_seen[chunk_address]
                in_flight.add(pool.submit(_send, client, image_id, f.fileno(), path,
                                          chunk_address, offset, length))
            sent_bytes += sum(future.result() for future in in_flight)
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise
    record = client.commit_manifest(image_id, manifest.size, manifest.entries)
    return record, {"chunks": manifest.data_chunks, "sent_chunks": len(missing),
                    "sent_bytes": sent_bytes, "zero_bytes": manifest.zero_bytes}
