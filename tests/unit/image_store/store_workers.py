"""Work the ImageStore tests run in child processes (importable, for multiprocessing spawn).

A child opens its own store on the test's directory and catalog, as a second
server process would, without start-up recovery (the parent decides when that runs).
"""

from __future__ import annotations

import contextlib
import io
import random
import resource
from pathlib import Path
from typing import Any

from image_store import catalog
from image_store.backends.local import LocalBackend
from image_store.chunking import ChunkingPolicy
from image_store.store import SERVICE, ImageConflict, ImageNotFound, ImageStore
from ironbark.db import create_engine


def open_child_store(root: str, database_url: str, policy: dict[str, Any]) -> ImageStore:
    engine = create_engine(database_url, pool_size=4)
    catalog.migrate(engine)
    return ImageStore(engine, LocalBackend(Path(root)), ChunkingPolicy.from_dict(policy),
                      recover=False)


class EndlessNoise(io.RawIOBase):
    """Non-repeating bytes for as long as anyone reads (an upload that never ends)."""

    def __init__(self, seed: int, limit: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = len(buf) if self._left is None else min(len(buf), self._left)
        buf[:n] = self._rng.randbytes(n)
        if self._left is not None:
            self._left -= n
        return n


def upload_forever(root: str, database_url: str, policy: dict[str, Any], image_id: str) -> None:
    """Upload endless bytes into ``image_id``: the parent SIGKILLs this process."""
    store = open_child_store(root, database_url, policy)
    store.upload(SERVICE, image_id, EndlessNoise(1))  # type: ignore[arg-type]


def upload_and_measure(root: str, database_url: str, policy: dict[str, Any],
                       size: int) -> tuple[int, int, int]:
    """Upload ``size`` bytes; returns (size stored, peak RSS before, after) in bytes."""
    store = open_child_store(root, database_url, policy)
    record = store.create(SERVICE, name="big", disk_format="raw")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stored = store.upload(SERVICE, record.id, EndlessNoise(2, size))  # type: ignore[arg-type]
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    store.close()
    return int(stored.size or 0), before, after


def churn(root: str, database_url: str, policy: dict[str, Any], blocks: list[bytes],
          seed: int, rounds: int) -> dict[str, bytes]:
    """Upload images made of shared blocks and delete others' images, ``rounds`` times.

    Returns what this worker uploaded and left active: image id -> bytes. Images of
    other workers (maybe still uploading) are deleted too: their uploads then fail
    with ImageNotFound, which is one of the races under test.
    """
    store = open_child_store(root, database_url, policy)
    try:
        return churn_with(store, blocks, seed, rounds)
    finally:
        store.close()


def churn_with(store: ImageStore, blocks: list[bytes], seed: int,
               rounds: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    mine: dict[str, bytes] = {}
    for i in range(rounds):
        data = b"".join(rng.choice(blocks) for _ in range(rng.randint(1, 24)))
        if rng.random() < 0.3:
            data += bytes(rng.randint(1, 3) * len(blocks[0]))
        record = store.create(SERVICE, name=f"w{seed}-{i}", disk_format="raw")
        try:
            store.upload(SERVICE, record.id, io.BytesIO(data))
            mine[record.id] = data
        except (ImageNotFound, ImageConflict):
            pass  # deleted by another worker while uploading
        if rng.random() < 0.6:
            candidates = [r.id for r in store.list(SERVICE)]
            if candidates:
                victim = rng.choice(candidates)
                with contextlib.suppress(ImageNotFound):
                    store.delete(SERVICE, victim)
                mine.pop(victim, None)
    survivors = {r.id for r in store.list(SERVICE, status="active")}
    return {k: v for k, v in mine.items() if k in survivors}
