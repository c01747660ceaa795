"""Staged chunks as plain files in a private directory, shared by every backend.

Staging on local disk rather than in memory keeps an upload's memory bounded (a
1 GiB image is ~16k chunks) and lets the local backend publish by renaming.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid

from image_store.backends.base import Staging
from image_store.codec import check_address

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def write_file(path: str, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` with the fewest syscalls (open, write, close)."""
    fd = os.open(path, _OPEN_FLAGS, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def remove_tree(path: str) -> int:
    """Remove a staging directory (or stray file); returns how many files it held."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
            return 1
        count = sum(1 for _ in os.scandir(path))
    except FileNotFoundError:
        return 0
    shutil.rmtree(path, ignore_errors=True)
    return count


def clear_children(parent: str) -> int:
    """Remove everything under ``parent`` (start-up recovery); returns the file count."""
    removed = 0
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return 0
    for entry in entries:
        removed += remove_tree(entry.path)
    return removed


class StagedFiles:
    """A private directory ``<parent>/<random>/`` holding one file per staged chunk.

    The directory is made on the first put, so a batch that stages nothing (an
    upload whose chunks all exist) costs no syscall at all.
    """

    def __init__(self, parent: str) -> None:
        self.dir = os.path.join(parent, uuid.uuid4().hex)
        self.addresses: dict[str, None] = {}  # ordered set: publish in put order
        self._made = False
        self._lock = threading.Lock()
        self.state = "open"

    def path(self, address: str) -> str:
        return f"{self.dir}/{address}"

    def check_open(self) -> None:
        if self.state != "open":
            raise RuntimeError(f"staging area {self.dir} is already {self.state}")

    def put(self, address: str, encoded: bytes | bytearray | memoryview) -> None:
        check_address(address)
        if not isinstance(encoded, bytes | bytearray | memoryview):
            raise TypeError(f"encoded: must be bytes, got {type(encoded).__name__}")
        if len(encoded) == 0:
            raise ValueError(f"encoded: chunk {address} is empty (an encoded chunk has at "
                             f"least its codec byte)")
        self.check_open()
        if not self._made:
            with self._lock:
                if not self._made:
                    os.mkdir(self.dir, 0o700)
                    self._made = True
        write_file(self.path(address), encoded)
        self.addresses[address] = None

    def remove(self) -> None:
        """Delete the directory and whatever is still in it."""
        if self._made:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._made = False


class FileStaging(Staging):
    """A staging area of :class:`StagedFiles`; a backend says only how to install them.

    ``publish`` runs ``_install(files, addresses)`` over the staged chunks (none: a
    batch whose chunks all existed), then drops the directory.
    """

    def __init__(self, parent: str) -> None:
        self._files = StagedFiles(parent)

    def put(self, address: str, encoded: bytes) -> None:
        self._files.put(address, encoded)

    def publish(self) -> list[str]:
        files = self._files
        files.check_open()
        addresses = list(files.addresses)
        if addresses:
            self._install(files, addresses)
        files.remove()
        files.state = "published"
        return addresses

    def _install(self, files: StagedFiles, addresses: list[str]) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        if self._files.state == "open":
            self._files.state = "discarded"
        self._files.remove()
