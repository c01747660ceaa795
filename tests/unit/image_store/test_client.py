"""ImageStoreClient against a real HTTP server (werkzeug's, in a thread) on a real store."""

from __future__ import annotations

import hashlib
import io
import socket
import time
import uuid
from pathlib import Path

import pytest

from image_store.client import (
    ChecksumMismatch,
    ImageStoreClient,
    ImageStoreClientError,
    NotFound,
)
from image_store.store import ImageStore
from ironbark.wsgi import ThreadedServer

from .conftest import MIB, TOKEN, blob_files, payload, temp_files


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, 3 * MIB + 7])
def test_round_trip_from_and_to_files(
    client: ImageStoreClient, tmp_path: Path, size: int
) -> None:
    data = payload(size)
    source = tmp_path / "source.img"
    source.write_bytes(data)
    image = client.create(name="cirros", disk_format="raw", owner="demo")
    assert image["status"] == "queued"

    record = client.upload(image["id"], source)
    assert record["status"] == "active"
    assert record["size"] == size
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["md5"] == hashlib.md5(data).hexdigest()

    out = tmp_path / "cache" / "image"
    assert client.download_to(image["id"], out, record["sha256"]) == out
    assert out.read_bytes() == data
    assert leftovers(out.parent) == ["image"]


class Pipe(io.RawIOBase):
    """A non-seekable source (like a pipe), so the client must send it chunked."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._data.readinto(buffer)


@pytest.mark.parametrize("make_source", [io.BytesIO, lambda d: io.BufferedReader(Pipe(d))],
                         ids=["seekable", "pipe"])
def test_upload_from_open_files(client: ImageStoreClient, make_source, tmp_path: Path) -> None:
    data = payload(2 * MIB + 1)
    image = client.create(name="from-stream", disk_format="qcow2")

    record = client.upload(image["id"], make_source(data))

    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["size"] == len(data)


def test_create_get_list_delete(client: ImageStoreClient) -> None:
    wanted = str(uuid.uuid4())
    image = client.create(name="ubuntu", disk_format="qcow2", owner="demo",
                          visibility="public", image_id=wanted,
                          properties={"os_distro": "ubuntu"})
    assert image["id"] == wanted
    assert image["properties"] == {"os_distro": "ubuntu"}
    assert client.get(wanted) == image
    assert client.list() == [image]

    client.delete(wanted)
    assert client.list() == []
    with pytest.raises(NotFound) as info:
        client.get(wanted)
    assert info.value.status == 404
    assert wanted in info.value.message


def test_errors_carry_status_and_message(client: ImageStoreClient, tmp_path: Path) -> None:
    with pytest.raises(ImageStoreClientError, match="disk_format") as info:
        client.create(name="x", disk_format="vmdk")
    assert info.value.status == 400

    image = client.create(name="x", disk_format="raw")
    client.upload(image["id"], io.BytesIO(b"abc"))
    with pytest.raises(ImageStoreClientError) as info:
        client.upload(image["id"], io.BytesIO(b"def"))
    assert info.value.status == 409

    with pytest.raises(NotFound):
        client.delete(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        client.download_to(str(uuid.uuid4()), tmp_path / "cache" / "x", "0" * 64)
    assert leftovers(tmp_path / "cache") == []


def test_wrong_token_is_refused(server: ThreadedServer) -> None:
    with (
        ImageStoreClient(server.url, "not-the-token") as intruder,
        pytest.raises(ImageStoreClientError) as info,
    ):
        intruder.list()
    assert info.value.status == 401
    assert not isinstance(info.value, NotFound)


def test_wrong_expected_sha256_leaves_no_file(client: ImageStoreClient, tmp_path: Path) -> None:
    data = payload(MIB + 5)
    image = client.create(name="x", disk_format="raw")
    client.upload(image["id"], io.BytesIO(data))
    dest_dir = tmp_path / "cache"

    with pytest.raises(ChecksumMismatch, match=image["id"]):
        client.download_to(image["id"], dest_dir / "image", hashlib.sha256(b"other").hexdigest())

    assert leftovers(dest_dir) == []


def test_corrupt_image_download_is_refused(
    client: ImageStoreClient, store: ImageStore, tmp_path: Path
) -> None:
    data = payload(3 * MIB)
    image = client.create(name="x", disk_format="raw")
    record = client.upload(image["id"], io.BytesIO(data))
    (blob,) = blob_files(store)
    damaged = bytearray(blob.read_bytes())
    damaged[-1] ^= 0x80
    blob.write_bytes(bytes(damaged))

    with pytest.raises(ImageStoreClientError, match=image["id"]) as info:
        client.download_to(image["id"], tmp_path / "cache" / "image", record["sha256"])

    assert info.value.status == 500
    assert "corrupt" in info.value.message
    assert leftovers(tmp_path / "cache") == []


def test_unreachable_store_names_the_url(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with ImageStoreClient(url, "token", timeout=2.0) as client:
        with pytest.raises(ImageStoreClientError, match=f"127.0.0.1:{port}") as info:
            client.list()
        assert info.value.status is None
        with pytest.raises(ImageStoreClientError, match=f"127.0.0.1:{port}"):
            client.download_to(str(uuid.uuid4()), tmp_path / "image", "0" * 64)
    assert leftovers(tmp_path) == []


def test_client_vanishing_mid_upload_kills_the_image(
    client: ImageStoreClient, server: ThreadedServer, store: ImageStore
) -> None:
    image = client.create(name="x", disk_format="raw")

    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(
            f"PUT /v1/images/{image['id']}/file HTTP/1.1\r\n"
            f"Host: {server.host}\r\nX-Service-Token: {TOKEN}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {4 * MIB}\r\n\r\n"
            .encode()
        )
        sock.sendall(payload(MIB + 123))

    deadline = time.monotonic() + 5
    while client.get(image["id"])["status"] != "killed" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.get(image["id"])["status"] == "killed"
    assert temp_files(store) == []
    assert blob_files(store) == []
