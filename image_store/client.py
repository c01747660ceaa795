"""The client the other tiers use to reach the image store over HTTP.

Uploads stream from a file and downloads stream to disk, so neither side holds an
image in memory. :meth:`ImageStoreClient.download_to` is the one way to fetch a
whole image: the bytes land in ``dest.part``, are hashed while written, and only a
file whose sha256 matches is renamed to ``dest`` -- a half-written or damaged image
never appears under its final name. A download cut short (the store aborts the
connection when it meets a corrupt chunk mid-stream) is reported as
:class:`CorruptImage` naming the chunk, from the record's ``corrupt_chunks``.

Errors carry the HTTP status and the store's own message (and the ``field`` it
named); 403, 404 and 409 have their own classes so callers can map them.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import requests
import urllib3

from image_store import chunk_batch
from image_store.dedup_upload import upload_deduplicated
from ironbark import http_retry
from message_bus.context import current_request_id

BLOCK = 1024 * 1024
TOKEN_HEADER = "X-Service-Token"
REQUEST_ID_HEADER = "X-Openstack-Request-Id"
PROJECT_HEADER = "X-Ironbark-Project"
ADMIN_HEADER = "X-Ironbark-Admin"
CHUNK_MIMETYPE = "application/x-ironbark-chunk"
CHUNK_BATCH_PATH = "/v1/chunks/batch"

Progress = Callable[[int], None]


class ImageStoreClientError(Exception):
    """A request failed; ``status`` is the HTTP status, or None if there was no response."""

    def __init__(self, status: int | None, message: str, field: str | None = None):
        super().__init__(message if status is None else f"{status}: {message}")
        self.status = status
        self.message = message
        self.field = field


class NotFound(ImageStoreClientError):
    """The image, chunk or route does not exist (or is not visible to the caller)."""


class Conflict(ImageStoreClientError):
    """The image's status does not allow the request (upload to an active image...)."""


class Forbidden(ImageStoreClientError):
    """The caller may see the image but not change it, or the route is for admins."""


class ChecksumMismatch(ImageStoreClientError):
    """Downloaded bytes did not have the sha256 expected; nothing was kept."""


class CorruptImage(ImageStoreClientError):
    """The store holds a corrupt chunk of the image; ``addresses`` names it (them)."""

    def __init__(self, status: int | None, message: str, image_id: str | None = None,
                 addresses: builtins.list[str] | None = None, offset: int | None = None):
        super().__init__(status, message)
        self.image_id = image_id
        self.addresses = list(addresses or [])
        self.offset = offset

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None


_CLASS_OF = {403: Forbidden, 404: NotFound, 409: Conflict}


def _error(response: requests.Response) -> ImageStoreClientError:
    """The exception for an error response, from the store's JSON body when it has one."""
    error: dict[str, Any] = {}
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
    except ValueError:
        pass
    message = str(error.get("message") or response.text[:500] or response.reason
                  or "no message")
    status = response.status_code
    if status == 500 and isinstance(error.get("address"), str):
        return CorruptImage(status, message, error.get("image_id"), [error["address"]],
                            error.get("offset"))
    cls = _CLASS_OF.get(status, ImageStoreClientError)
    return cls(status, message, error.get("field"))


class _ReadFailed(Exception):
    """The connection failed while a streamed body was read."""


def _exact_reader(response: requests.Response) -> Callable[[int], bytes]:
    """``read(n)`` over a streamed body: exactly ``n`` bytes, fewer only at its end."""
    raw = response.raw

    def read(n: int) -> bytes:
        parts: builtins.list[bytes] = []
        left = n
        while left > 0:
            try:
                piece = raw.read(left)
            except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
                raise _ReadFailed(f"{type(exc).__name__}: {exc}") from exc
            if not piece:
                break
            parts.append(piece)
            left -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    return read


class _SizedBody:
    """An upload body of known length: sent with Content-Length, counted on the way.

    requests takes ``__len__`` for Content-Length and urllib3 sends what ``__iter__``
    yields as it comes, so the upload streams without holding more than one block.
    A source that ends early (a proxied body cut short, a file truncated meanwhile)
    or runs long raises in the middle of the request: the connection is dropped and
    the store, seeing a cut body, kills the image -- never a short image stored as
    whole, and never a request left waiting for bytes that will not come.
    """

    def __init__(self, blocks: Iterable[bytes], length: int,
                 progress: Progress | None) -> None:
        self._blocks = blocks
        self._length = length
        self._progress = progress

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        # One block of lookahead: a source running long must be caught before the
        # block that completes the announced length goes out, or the store would
        # already hold a "whole" image when we notice.
        blocks = (bytes(b) for b in self._blocks if b)
        sent = 0
        pending = next(blocks, None)
        while pending is not None:
            following = next(blocks, None)
            sent += len(pending)
            if sent > self._length or (sent == self._length and following is not None):
                raise ImageStoreClientError(
                    None, f"the upload source holds more than the {self._length} bytes "
                          "it announced; upload aborted (the store kills the image)")
            yield pending
            if self._progress is not None:
                self._progress(sent)
            pending = following
        if sent != self._length:
            raise ImageStoreClientError(
                None, f"the upload source ended after {sent} of {self._length} bytes; "
                      "upload aborted (the store kills the image)")


def _counted(blocks: Iterable[bytes], progress: Progress | None) -> Iterator[bytes]:
    """An upload of unknown length (sent chunked), reporting bytes handed to the socket."""
    sent = 0
    for block in blocks:
        if not block:
            continue
        sent += len(block)
        yield bytes(block)
        if progress is not None:
            progress(sent)


def _blocks(f: BinaryIO) -> Iterator[bytes]:
    while block := f.read(BLOCK):
        yield block


def _seekable(f: Any) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ImageStoreClient:
    """Talks to one image store at ``url`` with the shared service ``token``.

    As built, requests act as the service itself (full access); :meth:`for_caller`
    gives a client acting for a project, sharing the same connection pool.
    """

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        # upload_deduplicated PUTs from several threads: one pooled connection each.
        # Reads dropped on a reused keep-alive connection are resent; so is the
        # read-only chunk batch (a POST only for the length of its address list).
        self._session = http_retry.session(pool_maxsize=32)
        http_retry.allow_read_only_post(self._session, f"{self.url}{CHUNK_BATCH_PATH}",
                                        pool_maxsize=32)
        self._session.headers[TOKEN_HEADER] = token
        self._caller_headers: dict[str, str] = {}
        self._owns_session = True

    def for_caller(self, project_id: str | None, is_admin: bool) -> ImageStoreClient:
        """A client acting for ``project_id`` (admin or not), on this client's session.

        ``project_id=None`` is the service itself (no tenancy headers; ``is_admin`` is
        then irrelevant). Closing the returned client leaves the session open: its
        owner is the client it came from.
        """
        other = object.__new__(ImageStoreClient)
        other.url, other.timeout = self.url, self.timeout
        other._session = self._session
        other._owns_session = False
        other._caller_headers = (
            {} if project_id is None
            else {PROJECT_HEADER: project_id, ADMIN_HEADER: "true" if is_admin else "false"})
        return other

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> ImageStoreClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.url}{path}"
        headers = {**self._caller_headers, **(kwargs.pop("headers", None) or {})}
        request_id = current_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self._session.request(method, url, headers=headers, **kwargs)
        except requests.RequestException as exc:
            raise ImageStoreClientError(
                None, f"cannot reach the image store at {url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                raise _error(response)
            finally:
                response.close()
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ImageStoreClientError(
                response.status_code,
                f"{method} {path}: the image store answered non-JSON: {exc}") from exc

    # -- records ---------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The store's chunking policy, codec and backend (``GET /v1/info``)."""
        result: dict[str, Any] = self._json("GET", "/v1/info")
        return result

    def create(
        self,
        *,
        name: str,
        disk_format: str,
        owner: str | None = None,
        visibility: str = "private",
        image_id: str | None = None,
        properties: dict[str, str] | None = None,
        kernel_id: str | None = None,
        ramdisk_id: str | None = None,
        min_disk: int = 0,
        min_ram: int = 0,
    ) -> dict[str, Any]:
        """Register an image (status ``queued``) and return its record.

        ``owner=None`` leaves the owner to the store (the caller's project; none for
        the service).
        """
        body: dict[str, Any] = {"name": name, "disk_format": disk_format,
                                "visibility": visibility, "min_disk": min_disk,
                                "min_ram": min_ram}
        optional = {"owner": owner, "id": image_id, "properties": properties,
                    "kernel_id": kernel_id, "ramdisk_id": ramdisk_id}
        body.update({k: v for k, v in optional.items() if v is not None})
        result: dict[str, Any] = self._json("POST", "/v1/images", json=body)
        return result

    def get(self, image_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/images/{image_id}")
        return result

    def list(self, **filters: str) -> builtins.list[dict[str, Any]]:
        """Images visible to the caller, oldest first (``name``/``status``/``visibility``/
        ``owner`` filters; the store refuses any other)."""
        images: builtins.list[dict[str, Any]] = self._json(
            "GET", "/v1/images", params=filters)["images"]
        return images

    def update(self, image_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change fields; a ``properties`` value of None removes that key."""
        result: dict[str, Any] = self._json("PATCH", f"/v1/images/{image_id}", json=changes)
        return result

    def delete(self, image_id: str) -> None:
        self._request("DELETE", f"/v1/images/{image_id}").close()

    # -- whole-image bytes -----------------------------------------------------

    def upload(self, image_id: str, source: Path | BinaryIO | Iterable[bytes],
               progress: Progress | None = None) -> dict[str, Any]:
        """Stream the image's bytes from a path, an open binary file or an iterable.

        Sent with Content-Length when the length is known -- a path, a seekable file
        (from its current position), or a stream or iterable whose ``len()`` is its
        byte count (not a list or tuple) -- else chunked. ``progress(sent)`` is called
        as blocks go out. A sized source that yields a different number of bytes
        aborts the upload (the image is then killed).
        """
        path = f"/v1/images/{image_id}/file"
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as f:
                return self._upload(path, _blocks(f), os.fstat(f.fileno()).st_size, progress)
        length: int | None = None
        blocks: Iterable[bytes]
        if hasattr(source, "read"):
            f = source  # type: ignore[assignment]
            blocks = _blocks(f)
            if _seekable(f):
                here = f.tell()
                length = f.seek(0, os.SEEK_END) - here
                f.seek(here)
        else:
            blocks = source  # type: ignore[assignment]
        if length is None and hasattr(source, "__len__") and not isinstance(
                source, list | tuple):
            length = len(source) or None  # type: ignore[arg-type]  # 0: unknown (chunked)
        return self._upload(path, blocks, length, progress)

    def _upload(self, path: str, blocks: Iterable[bytes], length: int | None,
                progress: Progress | None) -> dict[str, Any]:
        headers = {"Content-Type": "application/octet-stream"}
        data: Any
        if length is None:
            data = _counted(blocks, progress)
        elif length == 0:  # requests would send an empty iterable chunked
            if any(blocks):
                raise ImageStoreClientError(None, "the upload source announced 0 bytes "
                                                  "but holds some; nothing was sent")
            data = b""
        else:
            data = _SizedBody(blocks, length, progress)
            headers["Content-Length"] = str(length)
        result: dict[str, Any] = self._json("PUT", path, data=data, headers=headers)
        return result

    def open_stream(self, image_id: str, byte_range: str | None = None) -> requests.Response:
        """The streamed ``GET .../file`` response (the caller closes it), for proxies.

        ``byte_range`` is sent as the ``Range`` header (``"bytes=0-99"``).
        """
        headers = {} if byte_range is None else {"Range": byte_range}
        return self._request("GET", f"/v1/images/{image_id}/file", stream=True,
                             headers=headers)

    def download_to(self, image_id: str, dest: Path, expected_sha256: str | None = None,
                    progress: Progress | None = None) -> Path:
        """Stream an image to ``dest`` and return it, only if its sha256 is right.

        Checks against ``expected_sha256``, or the ``X-Image-Sha256`` the store sends.
        Writes ``dest.part``, fsyncs it and renames it into place; on any failure the
        part file is removed and the error raised: a short body becomes
        :class:`CorruptImage` when the store recorded a corrupt chunk of the image.
        """
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        url_path = f"/v1/images/{image_id}/file"
        try:
            with self.open_stream(image_id) as response:
                expected = (expected_sha256 or response.headers.get("X-Image-Sha256")
                            or "").lower()
                if not expected:
                    raise ChecksumMismatch(None, f"image {image_id}: no sha256 to check the "
                                                 "download against (none given, none sent)")
                length = int(response.headers.get("Content-Length", "-1"))
                received, actual, cut = self._receive(response, part, progress)
            if cut is not None or (length >= 0 and received != length):
                raise self._short_body(image_id, received, length, cut)
            if actual != expected:
                raise ChecksumMismatch(
                    None, f"image {image_id} from {self.url}{url_path} has sha256 {actual}, "
                          f"expected {expected}; discarded")
            os.replace(part, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise
        _fsync_dir(dest.parent)
        return dest

    @staticmethod
    def _receive(response: requests.Response, part: Path,
                 progress: Progress | None) -> tuple[int, str, str | None]:
        """Write the body to ``part``: (bytes received, their sha256, why it was cut)."""
        digest = hashlib.sha256()
        received = 0
        cut = None
        with part.open("wb") as f:
            try:
                for block in response.iter_content(BLOCK):
                    f.write(block)
                    digest.update(block)
                    received += len(block)
                    if progress is not None:
                        progress(received)
            except requests.RequestException as exc:
                cut = str(exc)
            f.flush()
            os.fsync(f.fileno())
        return received, digest.hexdigest(), cut

    def _short_body(self, image_id: str, received: int, length: int,
                    why: str | None) -> ImageStoreClientError:
        """Why a download ended early: a corrupt chunk the store recorded, or the network."""
        how = f"after {received} of {length} bytes" + (f" ({why})" if why else "")
        try:
            record = self.get(image_id)
        except ImageStoreClientError as exc:
            return ImageStoreClientError(
                None, f"download of image {image_id} from {self.url} ended {how}; "
                      f"asking for its record failed too: {exc}")
        corrupt = record.get("corrupt_chunks") or []
        if corrupt:
            addresses = [c if isinstance(c, str) else str(c.get("address")) for c in corrupt]
            return CorruptImage(
                None, f"download of image {image_id} was cut {how}: the store holds "
                      f"corrupt chunk(s) {', '.join(addresses)}", image_id, addresses)
        return ImageStoreClientError(
            None, f"download of image {image_id} from {self.url} ended {how}; the store "
                  "reports no corrupt chunk (network or server failure)")

    # -- chunks (dedup upload, host caches) ------------------------------------

    def chunks(self, image_id: str) -> dict[str, Any]:
        """``{"size": N, "chunks": [[offset, length, address|None], ...]}`` (active only)."""
        result: dict[str, Any] = self._json("GET", f"/v1/images/{image_id}/chunks")
        return result

    def fetch_chunk(self, address: str) -> bytes:
        """The encoded chunk (service callers only); verify it with ``codec.decode``."""
        response = self._request("GET", f"/v1/chunks/{address}")
        return response.content

    def fetch_chunks(self, addresses: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """``(address, encoded)`` for each of ``addresses``, in order, as they arrive.

        One streamed ``POST /v1/chunks/batch`` (service callers only) for up to
        ``chunk_batch.MAX_ADDRESSES`` distinct addresses; verify each chunk with
        ``codec.decode``. Raises :class:`NotFound` (404) or :class:`CorruptImage` (500,
        ``address`` set) naming the first chunk the store lacks or found corrupt (the
        chunks before it were yielded, those after it are not read), and
        :class:`ImageStoreClientError` if the body is cut short. Closing the iterator
        early closes the response.
        """
        wanted = builtins.list(addresses)
        if not wanted:
            return
        path = CHUNK_BATCH_PATH
        response = self._request("POST", path, json={"addresses": wanted}, stream=True)
        read, whole = _exact_reader(response), False
        try:
            yield from chunk_batch.read_frames(read, wanted)
            whole = read(1) == b""  # read to its end: the connection can serve again
        except chunk_batch.ChunkAbsent as exc:
            if exc.reason is None:
                raise NotFound(404, f"chunk {exc.address} not found (in a batch of "
                                    f"{len(wanted)} from {self.url})", "addresses") from None
            raise CorruptImage(500, f"chunk {exc.address} is corrupt in the image store: "
                                    f"{exc.reason}", None, [exc.address]) from None
        except (chunk_batch.FrameError, _ReadFailed) as exc:
            raise ImageStoreClientError(
                None, f"POST {path} of {len(wanted)} chunks from {self.url} was cut "
                      f"short: {exc}") from None
        finally:
            if whole:
                response.raw.release_conn()
            response.close()

    def missing(self, image_id: str, addresses: Iterable[str]) -> builtins.list[str]:
        """Which of ``addresses`` the store lacks; starts a dedup upload (-> saving)."""
        result: builtins.list[str] = self._json(
            "POST", f"/v1/images/{image_id}/chunks/missing",
            json={"addresses": builtins.list(addresses)})["missing"]
        return result

    def put_chunk(self, image_id: str, address: str, encoded: bytes) -> None:
        self._request("PUT", f"/v1/images/{image_id}/chunks/{address}", data=encoded,
                      headers={"Content-Type": CHUNK_MIMETYPE}).close()

    def commit_manifest(self, image_id: str, size: int, chunks: builtins.list[Any]) -> dict:
        """Make the image active from its manifest (entries as lists or ``Entry``-likes).

        The store reads every chunk back to compute the whole-image checksums, so the
        wait grows with the image: the client's timeout plus a second per 20 MiB.
        """
        wire = [list(c) if isinstance(c, list | tuple)
                else [c.offset, c.length, c.address] for c in chunks]
        timeout = self.timeout + size / (20 * 1024 * 1024)
        result: dict[str, Any] = self._json("POST", f"/v1/images/{image_id}/manifest",
                                            json={"size": size, "chunks": wire},
                                            timeout=timeout)
        return result

    def upload_deduplicated(self, image_id: str, path: Path,
                            workers: int = 4) -> tuple[dict[str, Any], dict[str, int]]:
        """Upload a file sending only the chunks the store lacks.

        Returns ``(record, {"chunks", "sent_chunks", "sent_bytes", "zero_bytes"})``; see
        :mod:`image_store.dedup_upload`.
        """
        return upload_deduplicated(self, image_id, Path(path), workers)

    # -- operations ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/v1/stats")
        return result

    def scrub(self, timeout: float = 3600.0) -> dict[str, Any]:
        """Verify every chunk of the store (slow: reads everything; hence the timeout)."""
        result: dict[str, Any] = self._json("POST", "/v1/scrub", timeout=timeout)
        return result
