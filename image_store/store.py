"""The image store's storage: image records plus their bytes, on one local directory.

Layout under ``data_dir``::

    records/<id>.json              one image record, replaced atomically on every change
    blobs/<sha256[:2]>/<sha256>    the bytes of every active image, stored once per content
    tmp/                           uploads in progress (emptied again at start-up)

Bytes are content-addressed whole blobs, so two uploads of the same image share one
file, and a blob is freed when the last record pointing at it is deleted. All blob
handling sits in :class:`BlobStore`; a later version replaces it with content-defined
chunking and deduplication without touching :class:`ImageStore`'s API or the HTTP API.

One :class:`ImageStore` owns a directory: the lock that keeps records and blobs
consistent is per process, and start-up clears what a crash left half-done (temp
files, uploads stuck in ``saving``, blobs no record refers to).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
DiskFormat = Literal["raw", "qcow2"]
Visibility = Literal["public", "private"]
DISK_FORMATS: tuple[DiskFormat, ...] = ("raw", "qcow2")
VISIBILITIES: tuple[Visibility, ...] = ("public", "private")
MAX_NAME_LENGTH = 255
MAX_PROPERTY_VALUE_LENGTH = 65535

QUEUED, SAVING, ACTIVE, KILLED = "queued", "saving", "active", "killed"
STATUSES = (QUEUED, SAVING, ACTIVE, KILLED)

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ImageStoreError(Exception):
    """Base of every error the store raises on purpose (the service maps each to a status)."""


class ImageNotFound(ImageStoreError):
    """No image has this id."""


class ImageConflict(ImageStoreError):
    """The request does not fit the image's state (id taken, upload to a non-queued image...)."""


class InvalidImage(ImageStoreError):
    """Bad input; ``field`` names the offending field so callers can report it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class CorruptImage(ImageStoreError):
    """The stored bytes no longer match the checksum recorded at upload; never serve them."""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class ImageRecord:
    """What the store knows about one image; ``size``/``sha256``/``md5`` are set once active."""

    id: str
    name: str
    disk_format: str
    status: str
    size: int | None
    sha256: str | None
    md5: str | None
    owner: str | None
    visibility: str
    properties: dict[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used on disk and in the HTTP API (times in ISO 8601 UTC)."""
        data = dataclasses.asdict(self)
        data["properties"] = dict(self.properties)
        data["created_at"] = _iso(self.created_at)
        data["updated_at"] = _iso(self.updated_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        values = dict(data)
        values["created_at"] = datetime.fromisoformat(values["created_at"])
        values["updated_at"] = datetime.fromisoformat(values["updated_at"])
        values["properties"] = dict(values.get("properties") or {})
        return cls(**values)


@dataclass(frozen=True)
class BlobInfo:
    """The checksums and size of a blob, computed while it was written."""

    sha256: str
    md5: str
    size: int


def _fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (the entry lives in the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _BlobReader:
    """Yields a blob's bytes chunk by chunk; closes the file when exhausted or closed.

    A class rather than a generator so that ``close()`` releases the file even when the
    consumer (e.g. a WSGI server whose client went away) never started iterating.
    """

    def __init__(self, f: BinaryIO, chunk_size: int = CHUNK_SIZE):
        self._f = f
        self._chunk_size = chunk_size

    def __iter__(self) -> _BlobReader:
        return self

    def __next__(self) -> bytes:
        if self._f.closed:
            raise StopIteration
        data = self._f.read(self._chunk_size)
        if not data:
            self.close()
            raise StopIteration
        return data

    def close(self) -> None:
        self._f.close()


class BlobStore:
    """Content-addressed whole-file blobs: the part of the store a later version swaps out.

    Blobs are immutable once in place. Callers (ImageStore) serialise :meth:`commit`
    and :meth:`remove` against their reference bookkeeping; :meth:`write` and reading
    an opened blob need no lock.
    """

    def __init__(self, root: Path, tmp_dir: Path):
        self.root = root
        self.tmp_dir = tmp_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not _SHA256_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def write(self, chunks: Iterable[bytes]) -> tuple[Path, BlobInfo]:
        """Stream ``chunks`` into a temp file, hashing as they come; fsync it.

        Returns the temp file for :meth:`commit` or :meth:`discard`. If the chunks (or
        the disk) fail, the temp file is removed before the error propagates.
        """
        sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        fd, tmp_name = tempfile.mkstemp(prefix="upload-", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    if not chunk:
                        continue
                    f.write(chunk)
                    sha256.update(chunk)
                    md5.update(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            _unlink_quietly(tmp_name)
            raise
        return Path(tmp_name), BlobInfo(sha256.hexdigest(), md5.hexdigest(), size)

    def commit(self, tmp: Path, info: BlobInfo) -> None:
        """Move a written temp file into place under its sha256.

        If the blob already exists the rename replaces it with identical bytes, so the
        content is still stored once, and a blob damaged on disk is repaired for free.
        """
        dest = self.path(info.sha256)
        dest.parent.mkdir(exist_ok=True)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)

    def discard(self, tmp: Path) -> None:
        _unlink_quietly(tmp)

    def open_verified(self, sha256: str, size: int, name: str) -> _BlobReader:
        """Open a blob, check its size and sha256, and return a reader from its start.

        The file is hashed in full before a byte is served, so a client never receives
        damaged data; one open file is used for checking and serving, so the check holds
        even if the blob is removed or replaced meanwhile. ``name`` goes in error messages.
        """
        f = open(self.path(sha256), "rb")  # noqa: SIM115 - handed to the reader
        try:
            actual_size = os.fstat(f.fileno()).st_size
            if actual_size != size:
                raise CorruptImage(
                    f"{name} is corrupt: stored data is {actual_size} bytes, "
                    f"{size} were uploaded"
                )
            digest = hashlib.sha256()
            while data := f.read(CHUNK_SIZE):
                digest.update(data)
            if digest.hexdigest() != sha256:
                raise CorruptImage(
                    f"{name} is corrupt: stored data has sha256 {digest.hexdigest()}, "
                    f"expected {sha256}"
                )
            f.seek(0)
        except BaseException:
            f.close()
            raise
        return _BlobReader(f)

    def remove(self, sha256: str) -> None:
        dest = self.path(sha256)
        _unlink_quietly(dest)
        with contextlib.suppress(OSError):  # not empty, or already gone
            dest.parent.rmdir()

    def all_digests(self) -> set[str]:
        return {p.name for p in self.root.glob("*/*") if _SHA256_RE.match(p.name)}

    def clear_tmp(self) -> int:
        removed = 0
        for p in self.tmp_dir.iterdir():
            _unlink_quietly(p)
            removed += 1
        return removed


def _canonical_id(image_id: object) -> str | None:
    """The lower-case hyphenated uuid, or None; ids become file names, so be strict."""
    if isinstance(image_id, str) and _UUID_RE.match(image_id):
        return image_id.lower()
    return None


def _check_create_args(
    name: object, disk_format: object, owner: object, visibility: object,
    properties: object,
) -> dict[str, str]:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidImage("name", f"name must be a string of 1 to {MAX_NAME_LENGTH} characters")
    if disk_format not in DISK_FORMATS:
        raise InvalidImage(
            "disk_format",
            f"disk_format must be one of {', '.join(DISK_FORMATS)}, got {disk_format!r}",
        )
    if owner is not None and (
        not isinstance(owner, str) or not 1 <= len(owner) <= MAX_NAME_LENGTH
    ):
        raise InvalidImage(
            "owner", f"owner must be null or a string of 1 to {MAX_NAME_LENGTH} characters"
        )
    if visibility not in VISIBILITIES:
        raise InvalidImage(
            "visibility",
            f"visibility must be one of {', '.join(VISIBILITIES)}, got {visibility!r}",
        )
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise InvalidImage("properties", "properties must be an object of string values")
    for key, value in properties.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_NAME_LENGTH:
            raise InvalidImage(
                "properties",
                f"properties: names must be strings of 1 to {MAX_NAME_LENGTH} characters",
            )
        if not isinstance(value, str) or len(value) > MAX_PROPERTY_VALUE_LENGTH:
            raise InvalidImage(
                "properties",
                f"properties: value of {key!r} must be a string of at most "
                f"{MAX_PROPERTY_VALUE_LENGTH} characters",
            )
    return dict(properties)


class ImageStore:
    """Image records and their bytes in ``data_dir``; safe to share between threads."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self._records_dir = self.data_dir / "records"
        self._records_dir.mkdir(parents=True, exist_ok=True)
        self._blobs = BlobStore(self.data_dir / "blobs", self.data_dir / "tmp")
        self._lock = threading.Lock()
        self._recover()

    # -- records on disk -------------------------------------------------------

    def _record_path(self, image_id: str) -> Path:
        return self._records_dir / f"{image_id}.json"

    def _write_record(self, record: ImageRecord) -> None:
        """tmp + fsync + os.replace: a reader or a crash sees the old or the new record."""
        fd, tmp_name = tempfile.mkstemp(prefix=f".{record.id}.", suffix=".tmp",
                                        dir=self._records_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record.to_dict(), f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, self._record_path(record.id))
        except BaseException:
            _unlink_quietly(tmp_name)
            raise
        _fsync_dir(self._records_dir)

    def _read_record(self, image_id: str) -> ImageRecord:
        canonical = _canonical_id(image_id)
        if canonical is None:
            raise ImageNotFound(f"image {image_id} not found")
        try:
            text = self._record_path(canonical).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ImageNotFound(f"image {canonical} not found") from None
        return ImageRecord.from_dict(json.loads(text))

    def _all_records(self) -> builtins.list[ImageRecord]:
        records = []
        for path in self._records_dir.glob("*.json"):
            if _canonical_id(path.stem) is None:
                continue
            try:
                records.append(ImageRecord.from_dict(json.loads(path.read_text("utf-8"))))
            except FileNotFoundError:  # deleted meanwhile
                continue
        return records

    def _recover(self) -> None:
        """Undo what a crash left half-done; see the module docstring."""
        with self._lock:
            for stale in self._records_dir.glob(".*.tmp"):
                _unlink_quietly(stale)
            removed_tmp = self._blobs.clear_tmp()
            records = self._all_records()
            for record in records:
                if record.status == SAVING:
                    log.warning("image %s was being uploaded when the store stopped; "
                                "marking it killed", record.id)
                    self._set_status(record, KILLED)
            used = {r.sha256 for r in records if r.sha256}
            orphans = self._blobs.all_digests() - used
            for digest in orphans:
                self._blobs.remove(digest)
        if removed_tmp or orphans:
            log.info("image store recovery: removed %d temp files and %d unreferenced blobs",
                     removed_tmp, len(orphans))

    def _set_status(self, record: ImageRecord, status: str) -> None:
        record.status = status
        record.updated_at = _now()
        self._write_record(record)

    # -- public API ------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        disk_format: DiskFormat,
        owner: str | None,
        visibility: Visibility = "private",
        image_id: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> ImageRecord:
        """Register a new image in status ``queued``; its bytes come with :meth:`upload`."""
        props = _check_create_args(name, disk_format, owner, visibility, properties)
        if image_id is None:
            canonical = str(uuid.uuid4())
        else:
            canonical_or_none = _canonical_id(image_id)
            if canonical_or_none is None:
                raise InvalidImage("id", f"id must be a uuid, got {image_id!r}")
            canonical = canonical_or_none
        now = _now()
        record = ImageRecord(
            id=canonical, name=name, disk_format=disk_format, status=QUEUED, size=None,
            sha256=None, md5=None, owner=owner, visibility=visibility, properties=props,
            created_at=now, updated_at=now,
        )
        with self._lock:
            if self._record_path(canonical).exists():
                raise ImageConflict(f"image {canonical} already exists")
            self._write_record(record)
        log.info("image %s (%s) created", canonical, name)
        return record

    def upload(self, image_id: str, chunks: Iterable[bytes]) -> ImageRecord:
        """Store an image's bytes, streamed: ``queued`` -> ``saving`` -> ``active``.

        Only a queued image accepts data (an image's bytes never change once set). If
        the chunks raise, the image becomes ``killed``, its temp file is removed and
        the error propagates.
        """
        with self._lock:
            record = self._read_record(image_id)
            if record.status != QUEUED:
                raise ImageConflict(
                    f"image {record.id} is {record.status}; only a queued image accepts data"
                )
            self._set_status(record, SAVING)
        try:
            tmp, info = self._blobs.write(chunks)
        except BaseException:
            self._kill(record.id)
            raise
        with self._lock:
            try:
                record = self._read_record(record.id)
            except ImageNotFound:
                self._blobs.discard(tmp)
                raise ImageNotFound(f"image {image_id} was deleted during its upload") from None
            if record.status != SAVING:  # pragma: no cover - only this method sets SAVING
                self._blobs.discard(tmp)
                raise ImageConflict(f"image {record.id} became {record.status} during upload")
            self._blobs.commit(tmp, info)
            record.size, record.sha256, record.md5 = info.size, info.sha256, info.md5
            self._set_status(record, ACTIVE)
        log.info("image %s active: %d bytes, sha256 %s", record.id, info.size, info.sha256)
        return record

    def _kill(self, image_id: str) -> None:
        with self._lock:
            try:
                record = self._read_record(image_id)
            except ImageNotFound:
                return
            if record.status == SAVING:
                self._set_status(record, KILLED)
        log.warning("upload of image %s failed; image killed", image_id)

    def get(self, image_id: str) -> ImageRecord:
        return self._read_record(image_id)

    def open(self, image_id: str) -> Iterator[bytes]:
        """The bytes of an active image, after checking them against the recorded sha256.

        Raises CorruptImage (naming the image) before anything is streamed if they do
        not match. Close the iterator if you stop early.
        """
        # No lock: records are replaced atomically and blobs are immutable. The one race,
        # this image being deleted (and its blob freed) before the blob is opened, is
        # told apart from a lost blob by looking at the record again.
        record = self._read_record(image_id)
        if record.status != ACTIVE or record.sha256 is None or record.size is None:
            raise ImageConflict(
                f"image {record.id} is {record.status}; only an active image has data"
            )
        try:
            return self._blobs.open_verified(record.sha256, record.size, f"image {record.id}")
        except FileNotFoundError:
            self._read_record(record.id)  # ImageNotFound if it was deleted meanwhile
            raise CorruptImage(
                f"image {record.id} is corrupt: its stored data is missing"
            ) from None

    def delete(self, image_id: str) -> None:
        """Remove an image; its blob goes too unless another image has the same bytes."""
        with self._lock:
            record = self._read_record(image_id)
            _unlink_quietly(self._record_path(record.id))
            _fsync_dir(self._records_dir)
            if record.sha256 and not any(
                r.sha256 == record.sha256 for r in self._all_records()
            ):
                self._blobs.remove(record.sha256)
        log.info("image %s deleted", record.id)

    def list(self) -> builtins.list[ImageRecord]:
        """Every image, oldest first."""
        return sorted(self._all_records(), key=lambda r: (r.created_at, r.id))
