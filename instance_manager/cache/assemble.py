"""Writing an image's base file from its chunks: once, sparse, verified, atomic.

Holes are skipped (the file is extended with ``ftruncate``), so a mostly empty 20 GiB
image takes only its data on disk. The whole-image SHA-256 is computed in order while
writing (holes hash as zeros) and must match the image record; the file is written as
``<name>.part``, synced and renamed only then, so a base under its final name is
always complete and right, whatever happens to the process.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from instance_manager.cache.manifest import Manifest

PART_SUFFIX = ".part"
_ZEROS = memoryview(bytes(1024 * 1024))


class BaseMismatch(Exception):
    """The assembled bytes are not the image the record describes; nothing was kept."""


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + PART_SUFFIX)


def assemble(dest: Path, manifest: Manifest, read_chunk: Callable[[str, int], bytes],
             expected_sha256: str) -> None:
    """Write ``dest`` from ``manifest``; ``read_chunk(address, length)`` returns a chunk's
    verified bytes. Raises :class:`BaseMismatch` (or what ``read_chunk`` raises) and
    then leaves neither ``dest`` nor its ``.part``."""
    part = part_path(dest)
    digest = hashlib.sha256()
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            for entry in manifest.entries:
                if entry.address is None:
                    _hash_zeros(digest, entry.length)
                    continue
                data = read_chunk(entry.address, entry.length)
                _pwrite_all(fd, data, entry.offset)
                digest.update(data)
            os.ftruncate(fd, manifest.size)
            os.fsync(fd)
        finally:
            os.close(fd)
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise BaseMismatch(f"the assembled bytes have sha256 {actual}, the image record "
                               f"says {expected_sha256}")
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _hash_zeros(digest: hashlib._Hash, length: int) -> None:
    block = len(_ZEROS)
    while length > 0:
        n = min(length, block)
        digest.update(_ZEROS[:n])
        length -= n


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
