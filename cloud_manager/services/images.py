"""Images on behalf of an API caller: a thin, tenant-facing layer over the image store.

The image store owns image records (its own catalog, as Glance has) and enforces
tenancy itself from the caller headers its client sends, so nothing here filters
by project: every function binds the store's client to the caller
(``for_caller(project, is_admin)``) and turns the store's errors into the API's,
keeping the store's message (it names the field, the image and the chunk).

An image reference is an id or a name. A name that several visible images share
is ambiguous (409: use the id), except when booting, where the newest active one
wins (``bootable``), as the CLI's ``--image NAME`` expects after a re-upload.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import requests

from cloud_manager.auth import Principal
from cloud_manager.context import CloudContext
from cloud_manager.errors import BadInput, CloudError, Conflict, Forbidden, NotFound, Unavailable
from image_store.client import CorruptImage, ImageStoreClient, ImageStoreClientError
from ironbark.request_body import RequestBody as SafeBody
from message_bus.messages import BootImages, ImageRef

log = logging.getLogger(__name__)

STATUSES = ("queued", "saving", "active", "killed")
VISIBILITIES = ("public", "private")
READ_SIZE = 1024 * 1024  # what one read of an upload's request body asks for

_FIELD_IN_MESSAGE = re.compile(r"\bfield '([A-Za-z_][\w.]*)'")


class StoreFailure(CloudError):
    """The image store failed on its side (a corrupt chunk, for one): 500, its message."""


class RangeNotSatisfiable(CloudError):
    """The asked byte range lies beyond the image; the answer names the image's size."""

    status, title = 416, "Range Not Satisfiable"

    def __init__(self, message: str, size: int | None):
        super().__init__(message, field=None)
        self.size = size


# --- the store, bound to the caller ---------------------------------------------------------


def store_for(source: CloudContext | ImageStoreClient, principal: Principal) -> ImageStoreClient:
    """The store's client acting for ``principal`` (the store then enforces tenancy)."""
    client = source.images if isinstance(source, CloudContext) else source
    return client.for_caller(principal.project_id, principal.is_admin)


def api_error(exc: ImageStoreClientError) -> CloudError:
    """The API's error for a store error: 4xx pass through with the store's message."""
    status, message = exc.status, exc.message
    if status is None:
        return Unavailable(f"the image store is unreachable ({message}); nothing was changed")
    if status == 400:
        return BadInput(message, field=_field_of(exc))
    if status == 401:
        return Unavailable("the image store refused the Cloud Manager's service token "
                           "(check [image_store] token on both sides)")
    if status == 403:
        return Forbidden(message)
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status == 416:
        return RangeNotSatisfiable(message, None)
    if isinstance(exc, CorruptImage) or status == 500:
        return StoreFailure(message)
    return Unavailable(f"the image store failed ({status}: {message})")


def _field_of(exc: ImageStoreClientError) -> str | None:
    field = getattr(exc, "field", None)
    if isinstance(field, str) and field:
        return field
    found = _FIELD_IN_MESSAGE.search(exc.message)
    return found.group(1) if found else None


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Turn the store's errors raised inside the block into the API's."""
    try:
        yield
    except ImageStoreClientError as exc:
        raise api_error(exc) from exc


def is_uuid(ref: str) -> bool:
    """Whether ``ref`` is an image id as the store writes them (canonical, lower case)."""
    try:
        return str(uuid.UUID(ref)) == ref
    except ValueError:
        return False


# --- lookups ---------------------------------------------------------------------------------


def _by_ref(store: ImageStoreClient, ref: str) -> list[dict[str, Any]]:
    """The visible images ``ref`` may designate: the one with that id, else those so named."""
    if is_uuid(ref):
        try:
            return [store.get(ref)]
        except ImageStoreClientError as exc:
            if exc.status != 404:
                raise api_error(exc) from exc
    with store_errors():
        return [i for i in store.list(name=ref) if i.get("name") == ref]


def _resolve(store: ImageStoreClient, ref: str) -> dict[str, Any]:
    found = _by_ref(store, ref)
    if not found:
        raise NotFound(f"image '{ref}' not found")
    if len(found) > 1:
        raise Conflict(f"{len(found)} images are named '{ref}'; use the image's id")
    return found[0]


def get(source: CloudContext | ImageStoreClient, principal: Principal, ref: str) -> dict[str, Any]:
    """One visible image by id or (unique) name; 404 for another project's private one."""
    return _resolve(store_for(source, principal), ref)


def listing(source: CloudContext | ImageStoreClient, principal: Principal, *,
            name: str | None = None, status: str | None = None,
            visibility: str | None = None) -> list[dict[str, Any]]:
    """The images the caller sees (public ones and its project's), oldest first."""
    if status is not None and status not in STATUSES:
        raise BadInput(f"field 'status': unknown status '{status}' (one of "
                       f"{', '.join(STATUSES)})", field="status")
    if visibility is not None and visibility not in VISIBILITIES:
        raise BadInput(f"field 'visibility': unknown visibility '{visibility}' (one of "
                       f"{', '.join(VISIBILITIES)})", field="visibility")
    filters = {k: v for k, v in (("name", name), ("status", status),
                                 ("visibility", visibility)) if v is not None}
    with store_errors():
        return store_for(source, principal).list(**filters)


def bootable(source: CloudContext | ImageStoreClient, principal: Principal,
             ref: str) -> dict[str, Any]:
    """The image a server boots from: by id, or the newest active one of that name.

    Anything else (unknown, invisible, not active) is a 400 naming ``image``, the
    field of the server's request, before anything is created.
    """
    found = _by_ref(store_for(source, principal), ref)
    if not found:
        raise BadInput(f"field 'image': no image with id or name '{ref}'", field="image")
    active = [i for i in found if i.get("status") == "active"]
    if not active:
        newest = found[-1]
        raise BadInput(f"field 'image': image '{ref}' is {newest.get('status')}, not active",
                       field="image")
    image = max(active, key=lambda i: i.get("created_at") or "")
    if image.get("size") is None or not image.get("sha256"):
        raise BadInput(f"field 'image': image '{ref}' has no data", field="image")
    if image.get("disk_format") in NOT_BOOTABLE:
        raise BadInput(f"field 'image': image '{ref}' is a {NOT_BOOTABLE[image['disk_format']]}"
                       f" ({image['disk_format']}), not a disk to boot", field="image")
    return image


NOT_BOOTABLE = {"aki": "kernel", "ari": "ramdisk"}


KERNEL_CMDLINE_PROPERTY = "os_command_line"  # Glance's name for it


def boot_images(source: CloudContext | ImageStoreClient, principal: Principal,
                image: dict[str, Any]) -> BootImages | None:
    """What a direct kernel boot of ``image`` needs: its ``kernel_id``/``ramdisk_id``
    images (active and visible to the caller, else a 400 naming ``image``) and its
    ``os_command_line`` property. None for a whole-disk image."""
    if not image.get("kernel_id"):
        return None
    store = store_for(source, principal)
    parts: dict[str, ImageRef | None] = {"kernel": None, "ramdisk": None}
    for part in parts:
        ref = image.get(f"{part}_id")
        if not ref:
            continue
        found = _by_ref(store, ref)
        if not found or found[0].get("status") != "active" or not found[0].get("sha256"):
            what = "not found" if not found else f"{found[0].get('status')}, not active"
            raise BadInput(f"field 'image': the {part} image {ref} of image "
                           f"'{image['name']}' is {what}", field="image")
        parts[part] = image_ref(found[0])
    kernel = parts["kernel"]
    assert kernel is not None
    cmdline = (image.get("properties") or {}).get(KERNEL_CMDLINE_PROPERTY)
    return BootImages(kernel=kernel, ramdisk=parts["ramdisk"], cmdline=cmdline)


def image_ref(image: dict[str, Any]) -> ImageRef:
    """The bus's reference to an active image (what a host needs to fetch it)."""
    return ImageRef(id=image["id"], name=image["name"], disk_format=image["disk_format"],
                    size=image["size"], sha256=image["sha256"])


# --- changes ---------------------------------------------------------------------------------


def _image_id(store: ImageStoreClient, ref: str | None, field: str) -> str | None:
    """A kernel/ramdisk reference (id or name) as the id of an image the caller sees."""
    if ref is None:
        return None
    try:
        return str(_resolve(store, ref)["id"])
    except (NotFound, Conflict) as exc:
        raise BadInput(f"field '{field}': {exc.message}", field=field) from None


def create(source: CloudContext | ImageStoreClient, principal: Principal, *, name: str,
           disk_format: str, visibility: str = "private",
           properties: dict[str, str] | None = None, kernel_id: str | None = None,
           ramdisk_id: str | None = None, min_disk: int = 0, min_ram: int = 0,
           image_id: str | None = None) -> dict[str, Any]:
    """Register an image (``queued``) owned by the caller's project; its bytes come later.

    ``kernel_id``/``ramdisk_id`` may be given as ids or names of images the caller sees.
    """
    store = store_for(source, principal)
    kernel = _image_id(store, kernel_id, "kernel_id")
    ramdisk = _image_id(store, ramdisk_id, "ramdisk_id")
    with store_errors():
        return store.create(name=name, disk_format=disk_format, owner=principal.project_id,
                            visibility=visibility, properties=properties, kernel_id=kernel,
                            ramdisk_id=ramdisk, min_disk=min_disk, min_ram=min_ram,
                            image_id=image_id)


def update(source: CloudContext | ImageStoreClient, principal: Principal, ref: str,
           changes: dict[str, Any]) -> dict[str, Any]:
    """Change an image's metadata (owner or admin); ``properties`` values of None remove keys."""
    store = store_for(source, principal)
    image = _resolve(store, ref)
    changes = dict(changes)
    for field in ("kernel_id", "ramdisk_id"):
        if changes.get(field) is not None:
            changes[field] = _image_id(store, changes[field], field)
    with store_errors():
        return store.update(image["id"], changes)


def delete(source: CloudContext | ImageStoreClient, principal: Principal, ref: str) -> None:
    """Delete an image (owner or admin); the store frees chunks no other image holds."""
    store = store_for(source, principal)
    image = _resolve(store, ref)
    with store_errors():
        store.delete(image["id"])


def stats(source: CloudContext | ImageStoreClient, principal: Principal) -> dict[str, Any]:
    """The store's totals (logical vs stored bytes, dedup ratio); admins only."""
    if not principal.is_admin:
        raise Forbidden("image store statistics are for the cloud's administrators")
    with store_errors():
        return store_for(source, principal).stats()


# --- bytes -----------------------------------------------------------------------------------


class RequestBody:
    """An upload's body as 1 MiB reads: memory stays bounded whatever the image's size.

    Reads go through :class:`ironbark.request_body.RequestBody`, so a body cut short
    raises ``UploadInterrupted`` (the store then sees its own upload cut and kills the
    image) instead of ending quietly. ``len()`` is the request's Content-Length when it
    gave one (0 otherwise), for a client that sends a sized iterable with Content-Length.
    """

    def __init__(self, stream: Any, length: int | None):
        self._body, self._length = SafeBody(stream, length), length

    def __iter__(self) -> Iterator[bytes]:
        while piece := self._body.read(READ_SIZE):
            yield piece

    def __len__(self) -> int:
        return self._length or 0


def upload(source: CloudContext | ImageStoreClient, principal: Principal, ref: str,
           body: Iterable[bytes]) -> dict[str, Any]:
    """Stream the image's bytes to the store (owner or admin; only a queued image)."""
    store = store_for(source, principal)
    image = _resolve(store, ref)
    with store_errors():
        return store.upload(image["id"], body)


class Download:
    """An open download from the store: status, headers to pass on, and the bytes.

    The first piece is read before the API answers, so an image whose first chunk is
    corrupt fails with a clean 500 naming it rather than a cut stream. ``close()``
    releases the store's connection (the API calls it when its client goes away).
    """

    PASSED_HEADERS = ("Content-Length", "Content-Range", "Accept-Ranges", "X-Image-Sha256",
                      "X-Image-Md5", "Content-Type")

    def __init__(self, image: dict[str, Any], upstream: requests.Response, first: bytes,
                 pieces: Iterator[bytes], store: ImageStoreClient):
        self.image, self._upstream, self._store = image, upstream, store
        self._first, self._pieces = first, pieces
        self.status = upstream.status_code
        self.headers = {h: upstream.headers[h] for h in self.PASSED_HEADERS
                        if h in upstream.headers}

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        try:
            yield from self._pieces
        except requests.RequestException as exc:
            # The status line is gone: all the API can do is cut its own stream too
            # (the client sees a short body) and say why in its log.
            log.error("download of image %s cut by the image store: %s", self.image["id"],
                      corruption(self._store, self.image["id"]) or exc)
            raise

    def close(self) -> None:
        self._upstream.close()


def corruption(store: ImageStoreClient, image_id: str) -> str | None:
    """Which chunks of an image the store found corrupt, as a sentence; None if none.

    A corrupt chunk met in the middle of a stream cuts the connection (the status is
    already sent); the store then lists it in the record's ``corrupt_chunks``.
    """
    try:
        record = store.get(image_id)
    except ImageStoreClientError:
        return None
    chunks = record.get("corrupt_chunks") or []
    if not chunks:
        return None
    names = [c.get("address") if isinstance(c, dict) else c for c in chunks]
    return f"image {image_id}: chunk {', '.join(str(n) for n in names)} is corrupt"


def open_download(source: CloudContext | ImageStoreClient, principal: Principal, ref: str,
                  byte_range: str | None) -> Download:
    """Start streaming an image (or the ``Range`` asked) from the store (only active ones)."""
    store = store_for(source, principal)
    image = _resolve(store, ref)
    try:
        upstream = store.open_stream(image["id"], byte_range)
    except ImageStoreClientError as exc:
        error = api_error(exc)
        if isinstance(error, RangeNotSatisfiable):
            raise RangeNotSatisfiable(exc.message, image.get("size")) from exc
        raise error from exc
    if upstream.status_code == 416:
        upstream.close()
        raise RangeNotSatisfiable(f"range {byte_range!r} is beyond image {image['id']} "
                                  f"({image.get('size')} bytes)", image.get("size"))
    pieces = upstream.iter_content(READ_SIZE)
    try:
        first = next(pieces, b"")
    except requests.RequestException as exc:
        upstream.close()
        raise StoreFailure(corruption(store, image["id"]) or
                           f"image {image['id']}: the image store cut the download ({exc})"
                           ) from exc
    return Download(image, upstream, first, pieces, store)
