"""The store's manifest of an image, checked before any of it touches the disk.

Addresses become file names and offsets become write positions, so a manifest is
never trusted: a malformed one (from a buggy or hostile store) must fail with an
error naming the bad field, before a chunk is fetched or a byte is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from image_store.chunking import MAX_CHUNK_LIMIT
from image_store.codec import is_address


class InvalidManifest(ValueError):
    """The store's manifest of an image is unusable; ``field`` names what is wrong."""

    def __init__(self, image_id: str, field: str, message: str) -> None:
        super().__init__(f"image {image_id}: manifest {field}: {message}")
        self.image_id = image_id
        self.field = field


@dataclass(frozen=True)
class Entry:
    offset: int
    length: int
    address: str | None  # None: a hole (zeros, never stored)


@dataclass(frozen=True)
class Manifest:
    size: int
    entries: tuple[Entry, ...]

    def distinct(self) -> dict[str, Entry]:
        """Each data chunk once (its first entry): a repeated chunk is fetched once."""
        first: dict[str, Entry] = {}
        for entry in self.entries:
            if entry.address is not None:
                first.setdefault(entry.address, entry)
        return first


def _int(image_id: str, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidManifest(image_id, field, f"must be a non-negative integer, got {value!r}")
    return value


def parse_manifest(image_id: str, doc: Any, expected_size: int | None = None) -> Manifest:
    """``doc`` (``{"size", "chunks": [[offset, length, address|None], ...]}``) as a
    :class:`Manifest`: entries contiguous from 0, covering exactly ``size`` bytes."""
    if not isinstance(doc, dict):
        raise InvalidManifest(image_id, "(document)", f"must be an object, got {doc!r:.80}")
    size = _int(image_id, "size", doc.get("size"))
    if expected_size is not None and size != expected_size:
        raise InvalidManifest(image_id, "size",
                              f"the store says {size} bytes, the image record {expected_size}")
    chunks = doc.get("chunks")
    if not isinstance(chunks, list):
        raise InvalidManifest(image_id, "chunks", f"must be a list, got {chunks!r:.80}")
    entries: list[Entry] = []
    position = 0
    for i, item in enumerate(chunks):
        field = f"chunks[{i}]"
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise InvalidManifest(image_id, field,
                                  f"must be [offset, length, address|null], got {item!r:.80}")
        offset = _int(image_id, f"{field}.offset", item[0])
        length = _int(image_id, f"{field}.length", item[1])
        address = item[2]
        if offset != position:
            raise InvalidManifest(image_id, f"{field}.offset",
                                  f"expected {position} (entries must be contiguous), "
                                  f"got {offset}")
        if length == 0:
            raise InvalidManifest(image_id, f"{field}.length", "must be positive")
        if address is not None:
            if not is_address(address):
                raise InvalidManifest(image_id, f"{field}.address",
                                      f"must be 64 lower-case hex characters or null, "
                                      f"got {address!r:.80}")
            if length > MAX_CHUNK_LIMIT:
                raise InvalidManifest(image_id, f"{field}.length",
                                      f"{length} bytes is more than any chunk "
                                      f"({MAX_CHUNK_LIMIT})")
        entries.append(Entry(offset, length, address))
        position += length
    if position != size:
        raise InvalidManifest(image_id, "chunks",
                              f"cover {position} bytes, the manifest's size is {size}")
    return Manifest(size, tuple(entries))
