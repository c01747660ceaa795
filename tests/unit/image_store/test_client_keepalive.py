"""The client against a server that closes reused keep-alive connections as requests
arrive (tests/fault_proxy.py in front of the store under gunicorn, which keeps
connections alive where werkzeug closes each): reads are resent, a create is not, and a
server too slow to answer is not asked twice."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_store.client import ImageStoreClient, ImageStoreClientError
from image_store.codec import address, decode
from tests.fault_proxy import FaultProxy

from .conftest import TOKEN
from .http_util import image_bytes

GunicornStore = tuple[ImageStoreClient, Path, int]


@pytest.fixture
def proxy(gunicorn_store: GunicornStore) -> Iterator[FaultProxy]:
    with FaultProxy(gunicorn_store[2]) as p:
        yield p


@pytest.fixture
def client(gunicorn_store: GunicornStore) -> ImageStoreClient:
    """Straight to gunicorn."""
    return gunicorn_store[0]


def test_reads_dropped_on_a_reused_connection_are_resent(
        proxy: FaultProxy, client: ImageStoreClient, tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    source.write_bytes(data := image_bytes(300_000, seed=3))
    name = f"disk-{uuid.uuid4()}"
    image = client.upload(client.create(name=name, disk_format="raw")["id"], source)
    addresses = [a for _, _, a in client.chunks(image["id"])["chunks"] if a]

    with ImageStoreClient(proxy.url, TOKEN, timeout=10.0) as dropped:
        def download() -> None:
            dropped.download_to(image["id"], tmp_path / "copy", image["sha256"])
            assert (tmp_path / "copy").read_bytes() == data

        def batch() -> None:  # a POST, but it only reads: resent too
            got = dict(dropped.fetch_chunks(addresses))
            assert b"".join(decode(got[a], a) for a in addresses) == data

        reads = {"get": lambda: dropped.get(image["id"])["sha256"] == image["sha256"],
                 "list": lambda: [i["id"] for i in dropped.list(name=name)] == [image["id"]],
                 "batch": batch, "download": download}
        for round_ in range(3):
            for what, read in reads.items():
                before = proxy.dropped
                assert read() is not False, what
                # From the second round on, each read goes out on a reused connection
                # (the chunk batch has a pool of its own), which the proxy drops.
                assert round_ == 0 or proxy.dropped - before == 1, (what, round_)


def test_a_create_dropped_on_a_reused_connection_is_not_resent(
        proxy: FaultProxy, client: ImageStoreClient) -> None:
    name = f"once-{uuid.uuid4()}"
    with ImageStoreClient(proxy.url, TOKEN, timeout=10.0) as dropped:
        first = dropped.create(name=name, disk_format="raw")
        with pytest.raises(ImageStoreClientError, match="cannot reach the image store") as info:
            dropped.create(name=name, disk_format="raw")
        assert info.value.status is None
    # The second create was sent once, and reached no server (RFC 9110 9.2.2: a
    # request that is not idempotent is not repeated on the client's own authority).
    assert (proxy.requests_seen, proxy.dropped, proxy.forwarded) == (2, 1, 1)
    assert [i["id"] for i in client.list(name=name)] == [first["id"]]


def test_a_server_too_slow_to_answer_is_asked_once(gunicorn_store: GunicornStore) -> None:
    with FaultProxy(gunicorn_store[2], mode="silent") as silent, \
            ImageStoreClient(silent.url, TOKEN, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(ImageStoreClientError, match="cannot reach"):
            client.list()
        assert time.monotonic() - started < 2.0
        time.sleep(0.1)
        assert silent.requests_seen == 1


def test_a_chunk_fetch_of_an_absent_chunk_still_says_so(
        proxy: FaultProxy, client: ImageStoreClient) -> None:
    """Retries are for dropped connections only: an answer (here a 404) is final."""
    with ImageStoreClient(proxy.url, TOKEN, timeout=10.0) as dropped:
        for _ in range(2):
            with pytest.raises(ImageStoreClientError) as info:
                dropped.fetch_chunk(address(b"absent"))
            assert info.value.status == 404
    assert proxy.dropped == 1 and proxy.forwarded == 2
