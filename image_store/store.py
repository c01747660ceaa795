"""The image store: records, chunked uploads, verified reads, dedup and its bookkeeping.

An image is a manifest of content-addressed chunks (docs/image-store.md is the
contract). The catalog (SQLAlchemy: SQLite or PostgreSQL) holds records, manifests
and the chunk index with reference counts; a :class:`ChunkBackend` holds the
encoded chunk bytes. This module is the API over both, and enforces tenancy; the
moving parts live next to it:

- :mod:`image_store.ingest`: the streamed upload pipeline;
- :mod:`image_store.reader`: verified, read-ahead downloads;
- :mod:`image_store.scrubber`: whole-store verification and orphan removal;
- :mod:`image_store.catalog.chunk_index`: every statement that counts references.

Several threads may share one store; several processes may share one PostgreSQL
catalog and one S3 bucket, provided only one of them runs start-up recovery (see
``recover`` below) while no upload is in flight.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import sqlalchemy as sa

from image_store import codec
from image_store.backends.base import ChunkBackend, ChunkMissing
from image_store.catalog import chunk_index as ci
from image_store.chunking import ChunkingPolicy
from image_store.ingest import Ingest, Totals
from image_store.reader import ImageReader
from image_store.records import (
    ACTIVE,
    KILLED,
    QUEUED,
    SAVING,
    SERVICE,
    Caller,
    ChunkNotFound,
    CorruptImage,
    Entry,
    Forbidden,
    ImageConflict,
    ImageNotFound,
    ImageRecord,
    ImageStoreError,
    InvalidImage,
    RangeNotSatisfiable,
    canonical_id,
    check_disk_format,
    check_minimum,
    check_name,
    check_owner,
    check_properties,
    check_status,
    check_visibility,
    merge_properties,
    new_image_id,
)
from image_store.scrubber import Scrub
from ironbark.db import utcnow

__all__ = [
    "SERVICE",
    "Caller",
    "ChunkNotFound",
    "CorruptImage",
    "Entry",
    "Forbidden",
    "ImageConflict",
    "ImageNotFound",
    "ImageReader",
    "ImageRecord",
    "ImageStore",
    "ImageStoreError",
    "InvalidImage",
    "RangeNotSatisfiable",
]

log = logging.getLogger(__name__)

ORPHAN_GRACE = 600.0
"""Seconds a backend object must have been seen without a row before scrub removes it."""
MAX_ADDRESSES = 1_000_000
"""Addresses per ``missing`` call (a 64 GiB image at 64 KiB chunks)."""
ENTRY_PAGE = 2048
UPDATABLE = ("name", "visibility", "kernel_id", "ramdisk_id", "min_disk", "min_ram",
             "properties")
_OWNER_UNSET: Any = ...

images = ci.images
chunks = ci.chunks


def _not_found(image_id: object) -> ImageNotFound:
    return ImageNotFound(f"image {str(image_id)[:80]} not found")


class ImageStore:
    """Image records and their chunks; safe to share between threads.

    ``recover`` (start-up recovery, docs invariant 5): empty the backend's staging,
    kill images left ``saving`` and free what they held. Only one process per
    catalog should recover, at its start, before serving: it cannot tell an
    upload in flight elsewhere from one that died with its process.
    """

    def __init__(self, engine: sa.Engine, backend: ChunkBackend, policy: ChunkingPolicy,
                 compression_level: int = codec.DEFAULT_LEVEL, *, recover: bool = True,
                 read_workers: int = 4, ingest_workers: int = 2) -> None:
        self.engine = engine
        self.backend = backend
        self.policy = policy
        self.compression_level = codec.check_level(compression_level)
        self._ingest_workers = ingest_workers
        self._pool = ThreadPoolExecutor(read_workers, thread_name_prefix="image-read")
        if recover:
            self.recover()

    def close(self) -> None:
        """Stop the read threads and the catalog's connections."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.engine.dispose()

    def info(self) -> dict[str, Any]:
        return {"chunking": self.policy.to_dict(), "codec": "zstd",
                "backend": self.backend.name}

    # -- records ----------------------------------------------------------------------

    def _records(self, conn: sa.Connection,
                 rows: Sequence[sa.Row[Any]]) -> builtins.list[ImageRecord]:
        ids = [r.id for r in rows]
        corrupt: dict[str, builtins.list[str]] = {}
        for batch in ci.batches(ids):
            for ref in conn.execute(
                    sa.select(ci.image_refs.c.image_id, ci.image_refs.c.address)
                    .join(chunks, chunks.c.address == ci.image_refs.c.address)
                    .where(chunks.c.corrupt_at.is_not(None),
                           ci.image_refs.c.image_id.in_(batch))
                    .order_by(ci.image_refs.c.address)):
                corrupt.setdefault(ref.image_id, []).append(ref.address)
        return [ImageRecord(
            id=r.id, name=r.name, disk_format=r.disk_format, status=r.status, size=r.size,
            checksum=r.checksum, sha256=r.sha256, owner=r.owner, visibility=r.visibility,
            kernel_id=r.kernel_id, ramdisk_id=r.ramdisk_id, min_disk=r.min_disk,
            min_ram=r.min_ram, properties=dict(r.properties or {}), chunk_count=r.chunk_count,
            stored_size=r.stored_size, created_at=r.created_at, updated_at=r.updated_at,
            corrupt_chunks=corrupt.get(r.id, [])) for r in rows]

    def _record(self, conn: sa.Connection, image_id: str) -> ImageRecord:
        row = conn.execute(sa.select(images).where(images.c.id == image_id)).first()
        if row is None:
            raise _not_found(image_id)
        return self._records(conn, [row])[0]

    @staticmethod
    def _visible(caller: Caller, row: sa.Row[Any] | None) -> bool:
        return row is not None and (caller.privileged or row.visibility == "public"
                                    or row.owner == caller.project_id)

    def _row(self, conn: sa.Connection, caller: Caller, image_id: object, *,
             lock: bool = False, field: str | None = None) -> sa.Row[Any]:
        """The image row if ``caller`` may see it; else ImageNotFound (or InvalidImage
        naming ``field``, for ids given as references to other images)."""
        canonical = canonical_id(image_id)
        row = None
        if canonical is not None:
            query = sa.select(images).where(images.c.id == canonical)
            row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None or not self._visible(caller, row):
            if field is not None:
                raise InvalidImage(field, f"{field}: no image {str(image_id)[:80]} "
                                          "(it must be an existing image you can see)")
            raise _not_found(image_id)
        return row

    @staticmethod
    def _require_owner(caller: Caller, row: sa.Row[Any], action: str) -> None:
        if not caller.privileged and row.owner != caller.project_id:
            raise Forbidden(f"image {row.id} belongs to another project: only its owner "
                            f"or an admin may {action} it")

    @staticmethod
    def _require_may_publicize(caller: Caller) -> None:
        if not caller.privileged:
            raise Forbidden("visibility: only an admin (or the service) may make an "
                            "image public")

    def create(self, caller: Caller, *, name: str, disk_format: str,
               visibility: str = "private", owner: str | None = _OWNER_UNSET,
               image_id: str | None = None, properties: dict[str, str] | None = None,
               kernel_id: str | None = None, ramdisk_id: str | None = None,
               min_disk: int = 0, min_ram: int = 0) -> ImageRecord:
        """Register a ``queued`` image; its bytes come with :meth:`upload` or the dedup
        protocol. A project's image belongs to the project (``owner`` may only repeat
        it); the service and admins may set any owner or none."""
        check_name(name)
        check_disk_format(disk_format)
        check_visibility(visibility)
        props = check_properties(properties)
        check_minimum("min_disk", min_disk)
        check_minimum("min_ram", min_ram)
        new_id = new_image_id(image_id)
        if owner is _OWNER_UNSET:
            owner = caller.project_id
        check_owner(owner)
        if not caller.privileged and owner != caller.project_id:
            raise InvalidImage("owner", f"owner: a project creates images for itself "
                                        f"({caller.project_id}), not for {owner!r:.80}")
        if visibility == "public":
            self._require_may_publicize(caller)
        now = utcnow()

        def work(conn: sa.Connection) -> ImageRecord:
            for field, ref in (("kernel_id", kernel_id), ("ramdisk_id", ramdisk_id)):
                if ref is not None:
                    self._row(conn, caller, ref, field=field)
            if conn.scalar(sa.select(images.c.id).where(images.c.id == new_id)) is not None:
                raise ImageConflict(f"image {new_id} already exists")
            conn.execute(images.insert().values(
                id=new_id, name=name, disk_format=disk_format, status=QUEUED, size=None,
                checksum=None, sha256=None, owner=owner, visibility=visibility,
                kernel_id=canonical_id(kernel_id), ramdisk_id=canonical_id(ramdisk_id),
                min_disk=min_disk, min_ram=min_ram, properties=props, chunk_count=0,
                stored_size=None, zero_bytes=0, created_at=now, updated_at=now))
            return self._record(conn, new_id)

        try:
            record = ci.run(self.engine, work)
        except sa.exc.IntegrityError:  # the same id created concurrently
            raise ImageConflict(f"image {new_id} already exists") from None
        log.info("image %s (%s) created for %s", new_id, name, owner or "no project")
        return record

    def get(self, caller: Caller, image_id: str) -> ImageRecord:
        with self.engine.begin() as conn:
            row = self._row(conn, caller, image_id)
            return self._records(conn, [row])[0]

    def list(self, caller: Caller, *, name: str | None = None, status: str | None = None,
             visibility: str | None = None,
             owner: str | None = None) -> builtins.list[ImageRecord]:
        """The images ``caller`` may see, oldest first, filtered."""
        query = sa.select(images).order_by(images.c.created_at, images.c.id)
        if name is not None:
            query = query.where(images.c.name == check_name(name))
        if status is not None:
            query = query.where(images.c.status == check_status(status))
        if visibility is not None:
            query = query.where(images.c.visibility == check_visibility(visibility))
        if owner is not None:
            query = query.where(images.c.owner == check_owner(owner))
        if not caller.privileged:
            query = query.where(sa.or_(images.c.visibility == "public",
                                       images.c.owner == caller.project_id))
        with self.engine.begin() as conn:
            return self._records(conn, conn.execute(query).all())

    def update(self, caller: Caller, image_id: str, changes: dict[str, Any]) -> ImageRecord:
        """Change record fields (``UPDATABLE``); a property set to None is removed."""
        if not isinstance(changes, dict):
            raise InvalidImage("changes", "changes must be an object of fields")
        for key in changes:
            if key not in UPDATABLE:
                raise InvalidImage(str(key), f"{str(key)[:80]} cannot be changed (only "
                                             f"{', '.join(UPDATABLE)} can)")
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = check_name(changes["name"])
        if "visibility" in changes:
            values["visibility"] = check_visibility(changes["visibility"])
        for field in ("min_disk", "min_ram"):
            if field in changes:
                values[field] = check_minimum(field, changes[field])
        if "properties" in changes:
            merge_properties({}, changes["properties"])  # refuse a bad patch up front

        def work(conn: sa.Connection) -> ImageRecord:
            row = self._row(conn, caller, image_id, lock=True)
            self._require_owner(caller, row, "change")
            if values.get("visibility") == "public" and row.visibility != "public":
                self._require_may_publicize(caller)
            for field in ("kernel_id", "ramdisk_id"):
                if field in changes:
                    ref = changes[field]
                    if ref is not None:
                        if canonical_id(ref) == row.id:
                            raise InvalidImage(field, f"{field}: an image cannot be its "
                                                      f"own {field[:-3]}")
                        self._row(conn, caller, ref, field=field)
                    values[field] = canonical_id(ref)
            if "properties" in changes:
                values["properties"] = merge_properties(dict(row.properties or {}),
                                                        changes["properties"])
            conn.execute(images.update().where(images.c.id == row.id)
                         .values(**values, updated_at=utcnow()))
            return self._record(conn, row.id)

        return ci.run(self.engine, work)

    def delete(self, caller: Caller, image_id: str) -> None:
        """Remove an image; chunks no other image holds are freed (their bytes too)."""
        def work(conn: sa.Connection) -> tuple[str, builtins.list[str]]:
            row = self._row(conn, caller, image_id, lock=True)
            self._require_owner(caller, row, "delete")
            unused = ci.release_all(conn, row.id)
            conn.execute(images.delete().where(images.c.id == row.id))
            return row.id, unused

        deleted, unused = ci.run(self.engine, work)
        freed = self._collect(unused)
        log.info("image %s deleted; %d chunks freed", deleted, freed)

    # -- chunk collection -------------------------------------------------------------

    def _collect(self, addresses: builtins.list[str]) -> int:
        """Free the unused chunks among ``addresses``; a backend failure leaves them for
        the next recovery or scrub (their rows stay at ``refs = 0``)."""
        freed = 0
        for batch in ci.batches(sorted(addresses)):
            try:
                freed += ci.run(self.engine, lambda c, b=batch: ci.collect(c, self.backend, b))
            except OSError as exc:
                log.error("freeing %d chunks failed (left for the next scrub): %s",
                          len(batch), exc)
                break
        return freed

    def _kill(self, image_id: str, why: str) -> None:
        def work(conn: sa.Connection) -> builtins.list[str] | None:
            row = ci.lock_image(conn, image_id)
            if row is None or row.status != SAVING:
                return None
            unused = ci.release_all(conn, image_id)
            conn.execute(images.update().where(images.c.id == image_id)
                         .values(status=KILLED, updated_at=utcnow()))
            return unused

        unused = ci.run(self.engine, work)
        if unused is not None:
            freed = self._collect(unused)
            log.warning("image %s killed (%s); %d chunks freed", image_id, why, freed)

    def recover(self) -> dict[str, int]:
        """Start-up recovery (see the class docstring); returns what it did."""
        staged = self.backend.recover()
        with self.engine.begin() as conn:
            saving = list(conn.scalars(sa.select(images.c.id).where(images.c.status == SAVING)))
        for image_id in saving:
            self._kill(image_id, "its upload was interrupted by a restart")
        freed = 0
        while True:
            dead = ci.run(self.engine, ci.garbage)
            collected = self._collect(dead) if dead else 0
            freed += collected
            if not collected:
                break
        if staged or saving or freed:
            log.warning("image store recovery: %d staged chunks dropped, %d uploads killed, "
                        "%d unused chunks freed", staged, len(saving), freed)
        return {"staged": staged, "killed": len(saving), "freed": freed}

    # -- streamed upload --------------------------------------------------------------

    def _saving_check(self, image_id: str) -> Any:
        def check(conn: sa.Connection) -> sa.Row[Any]:
            row = ci.lock_image(conn, image_id)
            if row is None:
                raise ImageNotFound(f"image {image_id} was deleted during its upload")
            if row.status != SAVING:
                raise ImageConflict(f"image {image_id} became {row.status} during its upload")
            return row
        return check

    def _activate(self, image_id: str) -> Any:
        def activate(conn: sa.Connection, totals: Totals) -> None:
            stored = conn.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(chunks.c.stored_size), 0))
                .select_from(ci.image_refs.join(chunks,
                                                chunks.c.address == ci.image_refs.c.address))
                .where(ci.image_refs.c.image_id == image_id))
            conn.execute(images.update().where(images.c.id == image_id).values(
                status=ACTIVE, size=totals.size, checksum=totals.checksum,
                sha256=totals.sha256, chunk_count=totals.chunk_count,
                zero_bytes=totals.zero_bytes, stored_size=int(stored or 0),
                updated_at=utcnow()))
        return activate

    def _claim(self, conn: sa.Connection, caller: Caller, image_id: str, action: str,
               allowed: tuple[str, ...] = (QUEUED,)) -> str:
        """Lock the image, check the caller and its status; ``queued`` becomes ``saving``."""
        row = self._row(conn, caller, image_id, lock=True)
        self._require_owner(caller, row, action)
        if row.status not in allowed:
            raise ImageConflict(f"image {row.id} is {row.status}: only a "
                                f"{' or '.join(allowed)} image accepts data")
        if row.status == QUEUED:
            conn.execute(images.update().where(images.c.id == row.id)
                         .values(status=SAVING, updated_at=utcnow()))
        return str(row.id)

    def upload(self, caller: Caller, image_id: str, stream: BinaryIO) -> ImageRecord:
        """Store an image's bytes from ``stream``: ``queued`` -> ``saving`` -> ``active``.

        Chunked, deduplicated and compressed on the way, in bounded memory. If the
        stream (or anything else) fails, the image becomes ``killed``, what it held is
        released and the error propagates.
        """
        canonical = ci.run(self.engine,
                           lambda conn: self._claim(conn, caller, image_id, "upload to"))
        ingest = Ingest(self.engine, self.backend, self.policy, self.compression_level,
                        canonical, self._saving_check(canonical), self._activate(canonical),
                        workers=self._ingest_workers)
        try:
            totals = ingest.run(stream)
        except BaseException as exc:
            self._kill(canonical, f"upload failed: {type(exc).__name__}: {exc}")
            raise
        log.info("image %s active: %d bytes, %d chunks, %d bytes of holes", canonical,
                 totals.size, totals.chunk_count, totals.zero_bytes)
        with self.engine.begin() as conn:
            return self._record(conn, canonical)

    # -- reads ------------------------------------------------------------------------

    def _fetch(self, address: str, length: int) -> bytes:
        return codec.decode(self.backend.get(address), address, length)

    def _mark_corrupt(self, address: str, reason: str, image_id: str | None) -> None:
        ci.run(self.engine, lambda conn: ci.mark_corrupt(conn, address))
        log.error("%schunk %s is corrupt: %s", f"image {image_id}: " if image_id else "",
                  address, reason)

    def _read_failure(self, image_id: str, entry: Entry, error: BaseException) -> BaseException:
        """The error a reader raises for a chunk that did not read back right."""
        assert entry.address is not None
        if isinstance(error, ChunkMissing):
            with self.engine.begin() as conn:
                row = conn.execute(sa.select(images.c.status)
                                   .where(images.c.id == image_id)).first()
            if row is None:
                return ImageNotFound(f"image {image_id} was deleted while being read")
            reason = "its bytes are missing from the backend"
        elif isinstance(error, codec.CorruptChunk):
            reason = error.reason
        else:
            return error
        self._mark_corrupt(entry.address, reason, image_id)
        return CorruptImage(image_id, entry.address, entry.offset, reason)

    def _entries(self, image_id: str, start: int) -> Iterator[Entry]:
        """The manifest from the entry holding ``start``, a page at a time."""
        e = ci.entries
        cols = (e.c.offset, e.c.length, e.c.address)
        with self.engine.begin() as conn:
            first = conn.execute(sa.select(*cols).where(e.c.image_id == image_id,
                                                        e.c.offset <= start)
                                 .order_by(e.c.offset.desc()).limit(1)).first()
        if first is None:
            return
        yield Entry(first.offset, first.length, first.address)
        after = first.offset
        while True:
            with self.engine.begin() as conn:
                page = conn.execute(sa.select(*cols).where(e.c.image_id == image_id,
                                                           e.c.offset > after)
                                    .order_by(e.c.offset).limit(ENTRY_PAGE)).all()
            if not page:
                return
            for r in page:
                yield Entry(r.offset, r.length, r.address)
            after = page[-1].offset

    def _reader(self, image_id: str, entries: Iterator[Entry], start: int,
                end: int) -> ImageReader:
        return ImageReader(
            image_id, entries, start, end, self._fetch, self._pool,
            lambda entry, error: self._read_failure(image_id, entry, error),
            lambda: ImageNotFound(f"image {image_id} was deleted while being read"))

    def _active_row(self, conn: sa.Connection, caller: Caller, image_id: str) -> sa.Row[Any]:
        row = self._row(conn, caller, image_id)
        if row.status != ACTIVE:
            raise ImageConflict(f"image {row.id} is {row.status}: only an active image "
                                "has data")
        return row

    def open(self, caller: Caller, image_id: str, start: int = 0,
             end: int | None = None) -> ImageReader:
        """Verified bytes of ``[start, end)`` (``end`` None = the size), as an iterator
        with ``close()``. A range that does not lie within the image is refused
        (``start`` at or past the end of a non-empty image included)."""
        with self.engine.begin() as conn:
            row = self._active_row(conn, caller, image_id)
        size = int(row.size or 0)
        for field, value in (("start", start), ("end", end)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidImage(field, f"{field} must be an integer, got {value!r:.80}")
        stop = size if end is None else end
        if start < 0 or stop < start or stop > size or (start >= size and size > 0):
            raise RangeNotSatisfiable(size, f"range {start}-{stop} is not within image "
                                            f"{row.id} of {size} bytes")
        return self._reader(row.id, self._entries(row.id, start), start, stop)

    def manifest(self, caller: Caller, image_id: str) -> tuple[int, builtins.list[Entry]]:
        with self.engine.begin() as conn:
            row = self._active_row(conn, caller, image_id)
            e = ci.entries
            found = [Entry(r.offset, r.length, r.address) for r in conn.execute(
                sa.select(e.c.offset, e.c.length, e.c.address)
                .where(e.c.image_id == row.id).order_by(e.c.offset))]
        return int(row.size or 0), found

    def read_chunk(self, address: str) -> bytes:
        """One encoded chunk, verified first (for hosts filling their caches)."""
        if not codec.is_address(address):
            raise InvalidImage("address", f"address must be 64 lower-case hex characters, "
                                          f"got {address!r:.80}")
        with self.engine.begin() as conn:
            length = conn.scalar(sa.select(chunks.c.length).where(
                chunks.c.address == address, chunks.c.refs > 0))
        if length is None:
            raise ChunkNotFound(f"chunk {address} not found")
        try:
            encoded = self.backend.get(address)
            codec.decode(encoded, address, length)
        except ChunkMissing:
            reason = "its bytes are missing from the backend"
        except codec.CorruptChunk as exc:
            reason = exc.reason
        else:
            return encoded
        self._mark_corrupt(address, reason, None)
        raise CorruptImage(None, address, None, reason)

    # -- dedup upload protocol --------------------------------------------------------

    def missing(self, caller: Caller, image_id: str,
                addresses: builtins.list[str]) -> builtins.list[str]:
        """Which of ``addresses`` the client must send; references are taken on the rest.

        Starts a dedup upload (``queued`` -> ``saving``). A chunk whose stored bytes are
        suspect (marked corrupt) is reported missing, so the client sends it again.
        """
        if not isinstance(addresses, list):
            raise InvalidImage("addresses", "addresses must be a list of chunk addresses")
        if len(addresses) > MAX_ADDRESSES:
            raise InvalidImage("addresses", f"addresses: at most {MAX_ADDRESSES} per call")
        for a in addresses:
            if not codec.is_address(a):
                raise InvalidImage("addresses", f"addresses: {a!r:.80} is not 64 lower-case "
                                                "hex characters")
        unique = list(dict.fromkeys(addresses))

        def work(conn: sa.Connection) -> builtins.list[str]:
            canonical = self._claim(conn, caller, image_id, "upload to", (QUEUED, SAVING))
            already = ci.held(conn, canonical, unique)
            suspect: set[str] = set()
            for batch in ci.batches(sorted(already)):
                suspect.update(conn.scalars(sa.select(chunks.c.address).where(
                    chunks.c.address.in_(batch), chunks.c.corrupt_at.is_not(None))))
            _, trusted = ci.take_refs(conn, canonical, [a for a in unique if a not in already])
            present = (already - suspect) | trusted
            return [a for a in unique if a not in present]

        return ci.run(self.engine, work)

    def put_chunk(self, caller: Caller, image_id: str, address: str, encoded: bytes) -> None:
        """Store one encoded chunk of a dedup upload, verified against its address.

        Raises :class:`codec.CorruptChunk` when the bytes are not that chunk (the
        caller's fault: the HTTP layer answers 400).
        """
        if not codec.is_address(address):
            raise InvalidImage("address", f"address must be 64 lower-case hex characters, "
                                          f"got {address!r:.80}")
        if not isinstance(encoded, bytes | bytearray | memoryview) or not encoded:
            raise InvalidImage("chunk", "chunk: the encoded chunk must be non-empty bytes")
        data = codec.decode(encoded, address)
        if len(data) > self.policy.max_size:
            raise InvalidImage("chunk", f"chunk {address} is {len(data)} bytes, more than "
                                        f"the store's largest chunk ({self.policy.max_size})")
        with self.engine.begin() as conn:  # refuse early, before writing anything
            row = self._row(conn, caller, image_id)
            self._require_owner(caller, row, "upload to")
        staging = self.backend.staging()
        with staging:
            staging.put(address, bytes(encoded))

            def work(conn: sa.Connection) -> None:
                canonical = self._claim(conn, caller, image_id, "upload to", (QUEUED, SAVING))
                referenced = ci.held(conn, canonical, [address])
                ci.add_chunks(conn, canonical, [(address, len(data), len(encoded))],
                              referenced)
                staging.publish()

            ci.run(self.engine, work)

    def _check_manifest(self, size: object, given: object) -> builtins.list[Entry]:
        """Entries that cover ``[0, size)`` contiguously, adjacent holes merged."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidImage("size", f"size must be a non-negative integer, got {size!r:.80}")
        if not isinstance(given, list | tuple):
            raise InvalidImage("chunks", "chunks must be a list of [offset, length, address]")
        merged: builtins.list[Entry] = []
        position = 0
        for i, item in enumerate(given):
            if isinstance(item, Entry):
                offset, length, address = item.offset, item.length, item.address
            elif isinstance(item, list | tuple) and len(item) == 3:
                offset, length, address = item
            else:
                raise InvalidImage("chunks", f"chunks[{i}] must be [offset, length, address]")
            for name, value in (("offset", offset), ("length", length)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise InvalidImage("chunks", f"chunks[{i}]: {name} must be an integer")
            if offset != position:
                raise InvalidImage("chunks", f"chunks[{i}] starts at {offset}, expected "
                                             f"{position} (entries must be contiguous from 0)")
            if length < 1:
                raise InvalidImage("chunks", f"chunks[{i}]: length must be positive")
            if address is not None:
                if not codec.is_address(address):
                    raise InvalidImage("chunks", f"chunks[{i}]: address must be null or 64 "
                                                 "lower-case hex characters")
                if length > self.policy.max_size:
                    raise InvalidImage("chunks", f"chunks[{i}]: {length} bytes is more than "
                                                 f"the largest chunk ({self.policy.max_size})")
            position += length
            if address is None and merged and merged[-1].address is None:
                merged[-1] = Entry(merged[-1].offset, merged[-1].length + length, None)
            else:
                merged.append(Entry(offset, length, address))
        if position != size:
            raise InvalidImage("chunks", f"the chunks cover {position} bytes, size is {size}")
        return merged

    def _check_held(self, conn: sa.Connection, image_id: str,
                    entries: builtins.list[Entry]) -> set[str]:
        """Every data entry's chunk must be held by the image, sound and of its length.
        Returns everything the image holds."""
        lengths: dict[str, int] = {}
        for e in entries:
            if e.address is not None:
                lengths.setdefault(e.address, e.length)
        held_now = set(conn.scalars(sa.select(ci.image_refs.c.address)
                                    .where(ci.image_refs.c.image_id == image_id)))
        rows: dict[str, tuple[int, bool]] = {}
        for batch in ci.batches(sorted(set(lengths) & held_now)):
            for r in conn.execute(sa.select(chunks.c.address, chunks.c.length,
                                            chunks.c.corrupt_at)
                                  .where(chunks.c.address.in_(batch))):
                rows[r.address] = (r.length, r.corrupt_at is not None)
        for e in entries:
            if e.address is None:
                continue
            row = rows.get(e.address)
            if row is None or row[1]:
                raise InvalidImage("chunks", f"chunk {e.address} at offset {e.offset} has "
                                             "not been uploaded (ask /chunks/missing, then "
                                             "put it)")
            if row[0] != e.length:
                raise InvalidImage("chunks", f"chunk {e.address} at offset {e.offset}: the "
                                             f"manifest says {e.length} bytes, the chunk has "
                                             f"{row[0]}")
        return held_now

    def commit_manifest(self, caller: Caller, image_id: str, size: int,
                        entries: Sequence[Entry]) -> ImageRecord:
        """Finish a dedup upload: check the manifest, hash the image from the stored
        (verified) chunks, record it, release what it did not use; -> ``active``."""
        manifest = self._check_manifest(size, entries)

        def claim(conn: sa.Connection) -> str:
            row = self._row(conn, caller, image_id, lock=True)
            self._check_held(conn, row.id, manifest)  # before anything changes
            return self._claim(conn, caller, image_id, "upload to", (QUEUED, SAVING))

        canonical = ci.run(self.engine, claim)
        md5 = hashlib.md5(usedforsecurity=False)
        sha256 = hashlib.sha256()
        reader = self._reader(canonical, iter(manifest), 0, size)
        with reader:
            for piece in reader:
                md5.update(piece)
                sha256.update(piece)
        totals = Totals(size, md5.hexdigest(), sha256.hexdigest(),
                        sum(1 for e in manifest if e.address is not None),
                        sum(e.length for e in manifest if e.address is None))
        used = {e.address for e in manifest if e.address is not None}

        def work(conn: sa.Connection) -> builtins.list[str]:
            self._saving_check(canonical)(conn)
            held_now = self._check_held(conn, canonical, manifest)
            unused = ci.release(conn, canonical, held_now - used)
            for start in range(0, len(manifest), ci.BATCH * 8):
                ci.insert_entries(conn, canonical, manifest[start:start + ci.BATCH * 8])
            self._activate(canonical)(conn, totals)
            return unused

        unused = ci.run(self.engine, work)
        self._collect(unused)
        log.info("image %s active (dedup upload): %d bytes, %d chunks", canonical,
                 totals.size, totals.chunk_count)
        with self.engine.begin() as conn:
            return self._record(conn, canonical)

    # -- whole store ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Totals; ``dedup_ratio`` = logical_bytes / stored_bytes, i.e. what holes,
        deduplication and compression save together (0.0 while nothing is stored)."""
        active = images.c.status == ACTIVE
        with self.engine.begin() as conn:
            image_row = conn.execute(sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.case((active, 1), else_=0)), 0),
                sa.func.coalesce(sa.func.sum(sa.case((active, images.c.size), else_=0)), 0),
                sa.func.coalesce(sa.func.sum(sa.case((active, images.c.zero_bytes),
                                                     else_=0)), 0),
            ).select_from(images)).one()
            chunk_row = conn.execute(sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(chunks.c.stored_size), 0),
            ).select_from(chunks)).one()
        logical, stored = int(image_row[2]), int(chunk_row[1])
        return {
            "images": int(image_row[0]),
            "active_images": int(image_row[1]),
            "logical_bytes": logical,
            "stored_bytes": stored,
            "zero_bytes": int(image_row[3]),
            "chunk_count": int(chunk_row[0]),
            "dedup_ratio": round(logical / stored, 3) if stored else 0.0,
        }

    def scrub(self, *, orphan_grace: float = ORPHAN_GRACE) -> dict[str, Any]:
        """Verify every chunk; report corrupt and missing ones (and mark them, so that an
        upload holding one rewrites it); remove backend objects no row names once they
        have been seen so for ``orphan_grace`` seconds."""
        return Scrub(self.engine, self.backend, self._pool, self._collect, orphan_grace).run()
