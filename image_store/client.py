"""The client the other tiers use to reach the image store over HTTP.

Uploads stream from a file and downloads stream to disk, so neither side holds an
image in memory. :meth:`ImageStoreClient.download_to` is the one way a host should
fetch an image: the bytes land in ``dest.part``, are hashed while written, and only
a file whose sha256 matches what the caller expects is renamed to ``dest`` -- a
half-written or damaged image never appears under its final name.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import requests

from image_store.store import DiskFormat, Visibility
from message_bus.context import current_request_id

CHUNK_SIZE = 1024 * 1024
TOKEN_HEADER = "X-Service-Token"
REQUEST_ID_HEADER = "X-Openstack-Request-Id"


class ImageStoreClientError(Exception):
    """A request failed; ``status`` is the HTTP status, or None if there was no response."""

    def __init__(self, status: int | None, message: str):
        super().__init__(message if status is None else f"{status}: {message}")
        self.status = status
        self.message = message


class NotFound(ImageStoreClientError):
    """The image (or route) does not exist."""


class ChecksumMismatch(ImageStoreClientError):
    """Downloaded bytes did not have the sha256 the caller expected; nothing was kept."""


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_SIZE):
        yield chunk


class ImageStoreClient:
    """Talks to one image store at ``url`` with the shared service ``token``."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers[TOKEN_HEADER] = token

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ImageStoreClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.url}{path}"
        headers = dict(kwargs.pop("headers", None) or {})
        request_id = current_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        try:
            response = self._session.request(method, url, headers=headers,
                                             timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ImageStoreClientError(
                None, f"cannot reach the image store at {url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                raise self._error(response)
            finally:
                response.close()
        return response

    @staticmethod
    def _error(response: requests.Response) -> ImageStoreClientError:
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = response.text[:500] or response.reason or "no message"
        cls = NotFound if response.status_code == 404 else ImageStoreClientError
        return cls(response.status_code, message)

    # -- API -------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        disk_format: DiskFormat,
        owner: str | None = None,
        visibility: Visibility = "private",
        image_id: str | None = None,
        properties: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Register an image (status ``queued``) and return its record."""
        body: dict[str, Any] = {"name": name, "disk_format": disk_format,
                                "visibility": visibility}
        if owner is not None:
            body["owner"] = owner
        if image_id is not None:
            body["id"] = image_id
        if properties is not None:
            body["properties"] = properties
        result: dict[str, Any] = self._request("POST", "/v1/images", json=body).json()
        return result

    def upload(self, image_id: str, source: Path | BinaryIO) -> dict[str, Any]:
        """Stream a file (a path or an open binary file) as the image's bytes."""
        headers = {"Content-Type": "application/octet-stream"}
        path = f"/v1/images/{image_id}/file"
        if isinstance(source, Path):
            with source.open("rb") as f:
                response = self._request("PUT", path, data=f, headers=headers)
        elif _seekable(source):  # requests finds the length: sent with Content-Length
            response = self._request("PUT", path, data=source, headers=headers)
        else:  # a pipe or socket: length unknown, sent chunked
            response = self._request("PUT", path, data=_read_chunks(source), headers=headers)
        result: dict[str, Any] = response.json()
        return result

    def get(self, image_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/images/{image_id}").json()
        return result

    def delete(self, image_id: str) -> None:
        self._request("DELETE", f"/v1/images/{image_id}").close()

    def download_to(self, image_id: str, dest: Path, expected_sha256: str) -> Path:
        """Stream an image to ``dest`` and return it, only if its sha256 is as expected.

        Writes ``dest`` + ``.part``, fsyncs it and renames it into place; on a checksum
        mismatch or any failure the part file is removed and the error raised.
        """
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        url_path = f"/v1/images/{image_id}/file"
        response = self._request("GET", url_path, stream=True)
        digest = hashlib.sha256()
        try:
            with response, part.open("wb") as f:
                for chunk in response.iter_content(CHUNK_SIZE):
                    f.write(chunk)
                    digest.update(chunk)
                f.flush()
                os.fsync(f.fileno())
            actual = digest.hexdigest()
            if actual != expected_sha256.lower():
                raise ChecksumMismatch(
                    None,
                    f"image {image_id} from {self.url}{url_path} has sha256 {actual}, "
                    f"expected {expected_sha256}; discarded",
                )
            os.replace(part, dest)
        except requests.RequestException as exc:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise ImageStoreClientError(
                None, f"download of image {image_id} from {self.url}{url_path} failed: {exc}"
            ) from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return dest

    def list(self) -> builtins.list[dict[str, Any]]:
        images: list[dict[str, Any]] = self._request("GET", "/v1/images").json()["images"]
        return images
