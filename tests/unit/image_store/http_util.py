"""Helpers of the HTTP tests: raw requests to the API, error checks, images with holes."""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any

import requests

from .conftest import TOKEN

KIB = 1024
MIB = 1024 * KIB
ALPHA, BETA = "alpha", "beta"


class Api:
    """Plain HTTP requests to the store, with the service token unless told otherwise."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def request(self, method: str, path: str, *, project: str | None = None,
                admin: bool | None = None, headers: dict[str, str] | None = None,
                token: str | None = TOKEN, **kwargs: Any) -> requests.Response:
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("X-Service-Token", token)
        if project is not None:
            sent["X-Ironbark-Project"] = project
        if admin is not None:
            sent["X-Ironbark-Admin"] = "true" if admin else "false"
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, f"{self.url}{path}", headers=sent, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create(self, **body: Any) -> dict[str, Any]:
        project = body.pop("project", None)
        admin = body.pop("admin", None)
        response = self.post("/v1/images", project=project, admin=admin,
                             json={"name": "cirros", "disk_format": "raw", **body})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def upload(self, image_id: str, data: bytes, **kwargs: Any) -> dict[str, Any]:
        response = self.put(f"/v1/images/{image_id}/file", data=data, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def assert_error(response: requests.Response, code: int, *words: str,
                 field: str | None = None) -> dict[str, Any]:
    """The response is the JSON error ``code`` whose message holds ``words``."""
    assert response.status_code == code, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["title"]
    for word in words:
        assert word in error["message"], error
    if field is not None:
        assert error.get("field") == field, error
    return error


def image_bytes(size: int, holes: list[tuple[int, int]] = (), seed: int = 0) -> bytes:
    """Random bytes with all-zero runs (holes) at ``(offset, length)``."""
    data = bytearray(random.Random(seed * 7919 + size).randbytes(size))
    for offset, length in holes:
        data[offset:offset + length] = bytes(length)
    return bytes(data)


def chunk_file(root: Path, address: str) -> Path:
    """The stored file of a chunk (local backend: ``chunks/<aa>/<address>``) under root."""
    found = [p for p in root.rglob(address) if p.is_file() and "staging" not in p.parts]
    assert len(found) == 1, found
    return found[0]


def flip_byte(path: Path, index: int | None = None) -> None:
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2 if index is None else index] ^= 0x40
    path.write_bytes(bytes(damaged))


def data_entries(manifest: dict[str, Any]) -> list[list[Any]]:
    return [e for e in manifest["chunks"] if e[2] is not None]


def raw_http(host: str, port: int, head: str, body: bytes = b"",
             timeout: float = 10) -> socket.socket:
    """A socket that has sent ``head`` (CRLF-joined by the caller) and ``body``."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.sendall(head.encode() + body)
    return sock
