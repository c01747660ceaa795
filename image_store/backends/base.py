"""Where encoded chunks live: the interface every chunk backend implements.

Backends only store bytes under addresses; the catalog decides what exists. New
chunks go through a :class:`Staging` area so that a chunk appears under its final
name only once its bytes are durable (store invariant 1): the store stages a whole
upload batch, then publishes it inside the transaction that records the chunks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import TracebackType


class ChunkMissing(Exception):
    """The backend has no chunk under this address."""

    def __init__(self, address: str) -> None:
        super().__init__(f"chunk {address} is missing from the backend")
        self.address = address


class BackendError(OSError):
    """A backend operation failed for another reason than a missing chunk.

    An ``OSError`` so callers treat local-disk and remote-store failures alike; the
    message names the chunk (or the bucket/directory) involved.
    """


class Staging(ABC):
    """One batch of new chunks: written first, made durable and visible by publish.

    Also a context manager whose exit discards whatever was not published, so an
    upload that fails half-way leaves nothing behind.
    """

    @abstractmethod
    def put(self, address: str, encoded: bytes) -> None:
        """Stage a chunk: neither visible to ``get`` nor durable yet."""

    @abstractmethod
    def publish(self) -> list[str]:
        """Make every staged chunk durable, then visible; returns their addresses."""

    @abstractmethod
    def discard(self) -> None:
        """Drop what is staged and not published (idempotent)."""

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()


class ChunkBackend(ABC):
    """A content-addressed store of encoded chunks."""

    name: str

    @abstractmethod
    def staging(self) -> Staging:
        """A new, empty staging area (one upload batch)."""

    @abstractmethod
    def get(self, address: str) -> bytes:
        """The encoded chunk (unverified: the caller decodes); ChunkMissing if absent."""

    @abstractmethod
    def exists(self, address: str) -> bool:
        """Whether a chunk is published under this address."""

    @abstractmethod
    def delete(self, address: str) -> None:
        """Remove a published chunk; deleting an absent one is not an error."""

    @abstractmethod
    def addresses(self) -> Iterator[str]:
        """Every published chunk's address (for scrub and orphan collection)."""

    @abstractmethod
    def recover(self) -> int:
        """Drop staging leftovers of a previous run; returns how many chunks were dropped.

        Only for start-up: it also removes the staging areas of uploads in flight.
        """
