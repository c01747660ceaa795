"""A thin typed client of the native API (docs/api.md), one method per route.

Every failure, HTTP or network, surfaces as one ``ApiError`` carrying the message the
server wrote, so the commands have a single error path and the user sees the API's
own explanation (``field 'flavor': no flavor named 'm1.huge'``) rather than a
traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple
from urllib.parse import quote

import requests

from ironbark import http_retry

JsonObject = dict[str, Any]

SERVER_ACTIONS = ("start", "stop", "reboot", "pause", "unpause", "suspend", "resume")

_UUID_RE = re.compile(
    r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.IGNORECASE
)
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\"()]+)")

TRANSFER_SIZE = 1024 * 1024  # one read of an image upload or download
TRANSFER_TIMEOUT = 300.0  # seconds one read of image bytes may take (the store hashes)


class ApiError(Exception):
    """The API refused a call, or could not be reached (``status`` 0).

    ``status`` 0 also marks errors found by the client itself that have no HTTP
    status, such as an ambiguous server name.
    """

    def __init__(
        self, status: int, message: str, field: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.request_id = request_id

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        """Build the error from the API's JSON error body, or its raw text otherwise."""
        request_id = response.headers.get("X-Openstack-Request-Id")
        message: str | None = None
        field: str | None = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            if err.get("message"):
                message = str(err["message"])
            if isinstance(err.get("field"), str):
                field = err["field"]
        if message is None:
            text = response.text.strip()
            if len(text) > 500:
                text = text[:500] + "..."
            message = text or response.reason or f"HTTP {response.status_code}"
        return cls(response.status_code, message, field=field, request_id=request_id)


def is_uuid(ref: str) -> bool:
    """Whether a reference looks like a server id rather than a name."""
    return bool(_UUID_RE.match(ref))


def _network_reason(exc: requests.RequestException) -> str:
    """A one-line reason out of requests' nested connection errors.

    ``str(exc)`` is a long urllib3 repr; the useful part is the errno text
    ("Connection refused", "Name or service not known").
    """
    found = _ERRNO_RE.findall(str(exc))
    if found:
        return found[-1].strip().rstrip(":").strip()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    return type(exc).__name__


class _Upload:
    """A file's bytes as 1 MiB pieces, with a length (so requests sends Content-Length)."""

    def __init__(self, source: BinaryIO, size: int,
                 progress: Callable[[int], None] | None) -> None:
        self._source, self._size, self._progress = source, size, progress

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        left = self._size
        while left > 0:
            piece = self._source.read(min(TRANSFER_SIZE, left))
            if not piece:
                # Sending less than the Content-Length would leave the server waiting:
                # stop instead (the connection closes and the upload is refused).
                raise ApiError(0, f"the file shrank while it was being uploaded "
                                  f"({self._size - left} of {self._size} bytes sent)")
            left -= len(piece)
            yield piece
            if self._progress is not None:
                self._progress(len(piece))


class HostListing(NamedTuple):
    """``GET /v1/hosts``: the hosts, plus the groups that did not answer in time."""

    hosts: list[JsonObject]
    unreachable_groups: list[str]


class ApiClient:
    """One authenticated session against one Ironbark endpoint."""

    def __init__(self, url: str, token: str, timeout: float = 30) -> None:
        base = url.rstrip("/")
        # Accept the endpoint as printed by `ironbark up` or with the /v1 suffix.
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        self.url = base
        self.timeout = timeout
        # Reads dropped on a reused keep-alive connection are resent; never a create.
        self.session = http_retry.session()
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )

    # -- plumbing -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: JsonObject | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Call ``/v1<path>``; returns the decoded JSON body (None for 204)."""
        # Our own request id, so a failure can be followed through every tier's logs.
        request_id = f"req-{uuid.uuid4()}"
        try:
            response = self.session.request(
                method,
                f"{self.url}/v1{path}",
                json=json,
                params=params,
                timeout=self.timeout,
                headers={"X-Openstack-Request-Id": request_id},
            )
        except requests.exceptions.ReadTimeout as exc:
            raise ApiError(
                0,
                f"the Ironbark API at {self.url} did not answer within {self.timeout:g} s",
                request_id=request_id,
            ) from exc
        except requests.RequestException as exc:
            raise ApiError(
                0,
                f"cannot reach the Ironbark API at {self.url}: {_network_reason(exc)} "
                "(is `ironbark up` running?)",
                request_id=request_id,
            ) from exc
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                response.status_code,
                f"unexpected non-JSON answer from {self.url}{path} "
                f"(is {self.url} an Ironbark API endpoint?)",
                request_id=response.headers.get("X-Openstack-Request-Id"),
            ) from exc

    def _get_key(self, method: str, path: str, key: str, **kwargs: Any) -> Any:
        body = self.request(method, path, **kwargs)
        if not isinstance(body, dict) or key not in body:
            raise ApiError(0, f"unexpected answer to {method} /v1{path}: no {key!r} in it")
        return body[key]

    @staticmethod
    def _ref(ref: str) -> str:
        # Names may contain anything, '/' included: quote every character that matters.
        return quote(ref, safe="")

    # -- servers --------------------------------------------------------------------

    def create_server(
        self, name: str, flavor: str, image: str, group: str | None = None
    ) -> JsonObject:
        body: JsonObject = {"name": name, "flavor": flavor, "image": image}
        if group is not None:
            body["group"] = group
        return self._get_key("POST", "/servers", "server", json=body)

    def list_servers(
        self, status: str | None = None, name: str | None = None, all_projects: bool = False
    ) -> list[JsonObject]:
        params: dict[str, str] = {}
        if status is not None:
            params["status"] = status
        if name is not None:
            params["name"] = name
        if all_projects:
            params["all_projects"] = "true"
        return self._get_key("GET", "/servers", "servers", params=params)

    def get_server(self, server_id: str) -> JsonObject:
        return self._get_key("GET", f"/servers/{self._ref(server_id)}", "server")

    def delete_server(self, server_id: str) -> JsonObject:
        return self._get_key("DELETE", f"/servers/{self._ref(server_id)}", "server")

    def server_action(
        self, server_id: str, action: str, reboot_type: str | None = None
    ) -> JsonObject:
        """Run one of ``SERVER_ACTIONS``; ``reboot_type`` ("soft"/"hard") for reboot."""
        if action not in SERVER_ACTIONS:
            raise ValueError(f"unknown server action {action!r}")
        body: JsonObject = {"action": action}
        if action == "reboot":
            body["type"] = reboot_type or "soft"
        return self._get_key(
            "POST", f"/servers/{self._ref(server_id)}/action", "server", json=body
        )

    def create_server_image(
        self, server_id: str, name: str, properties: dict[str, str] | None = None
    ) -> JsonObject:
        """Snapshot a server's disk into a new image (``queued`` until it is uploaded)."""
        request: JsonObject = {"name": name}
        if properties:
            request["properties"] = properties
        return self._get_key(
            "POST", f"/servers/{self._ref(server_id)}/action", "image",
            json={"create_image": request},
        )

    def find_server(self, ref: str, all_projects: bool = False) -> JsonObject:
        """The one server that ``ref`` (an id or an exact name) designates.

        An id-looking ref is fetched directly (404 if gone). A name must match exactly
        one server: the listing's ``name`` filter narrows the search, and exact
        equality is checked here so the result never depends on how the server
        interprets that filter.
        """
        if is_uuid(ref):
            return self.get_server(ref)
        matches = [
            s for s in self.list_servers(name=ref, all_projects=all_projects)
            if s.get("name") == ref
        ]
        if not matches:
            raise ApiError(404, f"no server named {ref!r}")
        if len(matches) > 1:
            raise ApiError(0, f"{len(matches)} servers are named {ref!r}; use the id")
        return matches[0]

    # -- flavors --------------------------------------------------------------------

    def list_flavors(self) -> list[JsonObject]:
        return self._get_key("GET", "/flavors", "flavors")

    def get_flavor(self, ref: str) -> JsonObject:
        return self._get_key("GET", f"/flavors/{self._ref(ref)}", "flavor")

    def create_flavor(
        self,
        name: str,
        vcpus: int,
        memory_mb: int,
        disk_gb: int,
        flavor_id: str | None = None,
        is_public: bool | None = None,
    ) -> JsonObject:
        body: JsonObject = {
            "name": name, "vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb,
        }
        if flavor_id is not None:
            body["id"] = flavor_id
        if is_public is not None:
            body["is_public"] = is_public
        return self._get_key("POST", "/flavors", "flavor", json=body)

    def delete_flavor(self, ref: str) -> None:
        self.request("DELETE", f"/flavors/{self._ref(ref)}")

    # -- images ---------------------------------------------------------------------

    def list_images(
        self, name: str | None = None, status: str | None = None, visibility: str | None = None
    ) -> list[JsonObject]:
        params = {k: v for k, v in (("name", name), ("status", status),
                                    ("visibility", visibility)) if v is not None}
        return self._get_key("GET", "/images", "images", params=params)

    def get_image(self, ref: str) -> JsonObject:
        return self._get_key("GET", f"/images/{self._ref(ref)}", "image")

    def create_image(
        self,
        name: str,
        disk_format: str,
        visibility: str | None = None,
        properties: dict[str, str] | None = None,
        kernel_id: str | None = None,
        ramdisk_id: str | None = None,
        min_disk: int | None = None,
        min_ram: int | None = None,
    ) -> JsonObject:
        """Register an image (``queued``); its bytes come with :meth:`upload_image`."""
        body: JsonObject = {"name": name, "disk_format": disk_format}
        optional = {"visibility": visibility, "properties": properties, "kernel_id": kernel_id,
                    "ramdisk_id": ramdisk_id, "min_disk": min_disk, "min_ram": min_ram}
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._get_key("POST", "/images", "image", json=body)

    def update_image(self, ref: str, changes: JsonObject) -> JsonObject:
        return self._get_key("PATCH", f"/images/{self._ref(ref)}", "image", json=changes)

    def delete_image(self, ref: str) -> None:
        self.request("DELETE", f"/images/{self._ref(ref)}")

    def image_stats(self) -> JsonObject:
        return self._get_key("GET", "/images/stats", "stats")

    def upload_image(
        self, image_id: str, source: BinaryIO, size: int,
        progress: Callable[[int], None] | None = None,
    ) -> JsonObject:
        """Stream ``size`` bytes of ``source`` as the image's data (1 MiB at a time).

        Sent with a Content-Length, so the API can tell a complete upload from a cut
        one; ``progress(n)`` is called after each piece with its length.
        """
        response = self._transfer("PUT", f"/images/{self._ref(image_id)}/file",
                                  data=_Upload(source, size, progress),
                                  headers={"Content-Type": "application/octet-stream"})
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "unexpected non-JSON answer to an upload") \
                from exc
        if not isinstance(body, dict) or "image" not in body:
            raise ApiError(0, "unexpected answer to an upload: no 'image' in it")
        return body["image"]

    def download_image(
        self, ref: str, dest: Path, progress: Callable[[int], None] | None = None,
    ) -> JsonObject:
        """Stream an image to ``dest``, verified against its sha256; returns the image.

        The bytes land in ``dest.part`` and are renamed to ``dest`` only once their
        sha256 matches the image's: a cut or damaged download never appears under the
        final name. A download the store cut short (a corrupt chunk) is reported with
        the chunk, which the store then lists in the image's ``corrupt_chunks``.
        """
        image = self.get_image(ref)
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        digest = hashlib.sha256()
        try:
            response = self._transfer("GET", f"/images/{self._ref(image['id'])}/file",
                                      stream=True)
            with response, part.open("wb") as f:
                try:
                    for piece in response.iter_content(TRANSFER_SIZE):
                        f.write(piece)
                        digest.update(piece)
                        if progress is not None:
                            progress(len(piece))
                except requests.RequestException as exc:
                    raise self._cut(image, exc) from exc
                f.flush()
                os.fsync(f.fileno())
            actual = digest.hexdigest()
            if image.get("sha256") and actual != image["sha256"]:
                raise ApiError(0, f"image {image['id']} downloaded with sha256 {actual}, "
                                  f"expected {image['sha256']}; nothing was kept")
            os.replace(part, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            raise
        return image

    def _cut(self, image: JsonObject, exc: Exception) -> ApiError:
        """Why a download stopped short: the corrupt chunks if the image now lists any."""
        with contextlib.suppress(ApiError):
            chunks = self.get_image(image["id"]).get("corrupt_chunks") or []
            if chunks:
                names = ", ".join(str(c.get("address") if isinstance(c, dict) else c)
                                  for c in chunks)
                return ApiError(500, f"image {image['id']}: chunk {names} is corrupt; "
                                     "the download was stopped and nothing was kept")
        return ApiError(0, f"the download of image {image['id']} was cut short "
                           f"({_network_reason(exc)}); nothing was kept")

    def _transfer(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request carrying or returning image bytes; errors as :meth:`request` makes them.

        The read timeout applies to each read, not to the whole transfer.
        """
        request_id = f"req-{uuid.uuid4()}"
        headers = {"X-Openstack-Request-Id": request_id, **kwargs.pop("headers", {})}
        try:
            response = self.session.request(method, f"{self.url}/v1{path}", headers=headers,
                                            timeout=(self.timeout, TRANSFER_TIMEOUT), **kwargs)
        except requests.RequestException as exc:
            raise ApiError(0, f"cannot reach the Ironbark API at {self.url}: "
                              f"{_network_reason(exc)} (is `ironbark up` running?)",
                           request_id=request_id) from exc
        if response.status_code >= 400:
            try:
                raise ApiError.from_response(response)
            finally:
                response.close()
        return response

    # -- hosts and groups -----------------------------------------------------------

    def list_hosts(self) -> HostListing:
        body = self.request("GET", "/hosts")
        if not isinstance(body, dict) or "hosts" not in body:
            raise ApiError(0, "unexpected answer to GET /v1/hosts: no 'hosts' in it")
        return HostListing(body["hosts"], list(body.get("unreachable_groups") or []))

    def get_host(self, name: str) -> JsonObject:
        return self._get_key("GET", f"/hosts/{self._ref(name)}", "host")

    def list_groups(self) -> list[JsonObject]:
        return self._get_key("GET", "/groups", "groups")
