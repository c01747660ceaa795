"""ImageStoreClient against a real HTTP server (werkzeug's, in a thread) on a real store."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest

from image_store.client import (
    ChecksumMismatch,
    Conflict,
    CorruptImage,
    Forbidden,
    ImageStoreClient,
    ImageStoreClientError,
    NotFound,
)
from image_store.codec import address, decode, encode
from ironbark.wsgi import ThreadedServer
from message_bus.context import bound

from .http_util import (
    ALPHA,
    BETA,
    KIB,
    MIB,
    chunk_file,
    data_entries,
    flip_byte,
    image_bytes,
)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def policy_sizes(client: ImageStoreClient) -> list[int]:
    """Sizes around the store's chunk limits (where off-by-ones live)."""
    chunking = client.info()["chunking"]
    low, high = chunking["min"], chunking["max"]
    return [0, 1, low - 1, low, low + 1, high - 1, high, high + 1, 2 * high]


def test_round_trip_at_chunk_boundary_sizes(client: ImageStoreClient, tmp_path: Path) -> None:
    for size in policy_sizes(client):
        data = image_bytes(size, seed=size)
        source = tmp_path / f"{size}.img"
        source.write_bytes(data)
        image = client.create(name=f"size-{size}", disk_format="raw")
        record = client.upload(image["id"], source)
        assert record["status"] == "active"
        assert record["size"] == size
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        out = tmp_path / "cache" / f"{size}.out"
        assert client.download_to(image["id"], out, record["sha256"]) == out
        assert out.read_bytes() == data, size
    assert not [p for p in leftovers(tmp_path / "cache") if p.endswith(".part")]


def _raw_with_holes(path: Path, size: int) -> bytes:
    data = image_bytes(size, holes=[(MIB, 2 * MIB), (size - MIB, MIB)], seed=11)
    path.write_bytes(data)
    return data


def test_round_trip_raw_and_qcow2_with_holes(client: ImageStoreClient, tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    raw.write_bytes(image_bytes(5 * MIB + 4321, holes=[(MIB, 2 * MIB), (4 * MIB, MIB)],
                                seed=11))
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                    str(qcow2)], check=True)
    for source, disk_format in ((raw, "raw"), (qcow2, "qcow2")):
        image = client.create(name=disk_format, disk_format=disk_format)
        reports: list[int] = []
        record = client.upload(image["id"], source, progress=reports.append)
        size = source.stat().st_size
        assert reports == sorted(reports) and reports[-1] == size
        assert record["size"] == size
        out = tmp_path / f"out.{disk_format}"
        client.download_to(image["id"], out)  # checked against the store's X-Image-Sha256
        assert out.read_bytes() == source.read_bytes()
    raw_image = client.list(name="raw")[0]
    assert any(e[2] is None for e in client.chunks(raw_image["id"])["chunks"])
    # The qcow2 that came back is the same disk as the raw one it was made from.
    compared = subprocess.run(["qemu-img", "compare", "-q", str(raw), str(out)])
    assert compared.returncode == 0


class Pipe(io.RawIOBase):
    """A non-seekable source (like a pipe), so the client must send it chunked."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._data.readinto(buffer)


def test_upload_from_open_files_and_iterables(client: ImageStoreClient) -> None:
    data = image_bytes(2 * MIB + 1, seed=12)
    seekable = io.BytesIO(b"skipped" + data)
    seekable.seek(7)  # from the current position on
    sources: list[Any] = [seekable, io.BufferedReader(Pipe(data)),
                          (data[i:i + 100_000] for i in range(0, len(data), 100_000))]
    for source in sources:
        image = client.create(name="from-stream", disk_format="raw")
        reports: list[int] = []
        record = client.upload(image["id"], source, progress=reports.append)
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert reports[-1] == len(data)


class SizedBody:
    """An iterable that announces its byte count (as the Cloud Manager's proxied body)."""

    def __init__(self, data: bytes, announced: int) -> None:
        self._data, self._announced = data, announced

    def __len__(self) -> int:
        return self._announced

    def __iter__(self) -> Any:
        for i in range(0, len(self._data), 64 * KIB):
            yield self._data[i:i + 64 * KIB]


def test_sized_iterable_goes_with_its_length_and_must_keep_its_word(
    client: ImageStoreClient,
) -> None:
    data = image_bytes(MIB + 17, seed=20)
    image = client.create(name="sized", disk_format="raw")
    assert client.upload(image["id"], SizedBody(data, len(data)))["size"] == len(data)

    # Cut short; runs long mid-block; runs long by exactly one more block.
    for announced in (len(data) + 1000, len(data) - 1000, 16 * 64 * KIB):
        image = client.create(name="liar", disk_format="raw")
        with pytest.raises(ImageStoreClientError, match="upload aborted"):
            client.upload(image["id"], SizedBody(data, announced))
        deadline = time.monotonic() + 10
        while client.get(image["id"])["status"] != "killed":
            assert time.monotonic() < deadline, client.get(image["id"])
            time.sleep(0.01)


def test_records(client: ImageStoreClient) -> None:
    wanted = str(uuid.uuid4())
    image = client.create(name="ubuntu", disk_format="qcow2", owner=ALPHA, visibility="public",
                          image_id=wanted, properties={"os_distro": "ubuntu"}, min_disk=3,
                          min_ram=256)
    assert (image["id"], image["owner"], image["min_disk"]) == (wanted, ALPHA, 3)
    assert client.get(wanted) == image
    assert client.list() == [image]
    assert client.list(name="other") == []
    updated = client.update(wanted, {"properties": {"os_distro": None, "k": "v"}})
    assert updated["properties"] == {"k": "v"}

    client.delete(wanted)
    assert client.list() == []
    with pytest.raises(NotFound) as info:
        client.get(wanted)
    assert info.value.status == 404
    assert wanted in info.value.message


def test_errors_carry_status_message_and_field(client: ImageStoreClient) -> None:
    with pytest.raises(ImageStoreClientError, match="disk_format") as info:
        client.create(name="x", disk_format="vmdk")
    assert info.value.status == 400
    assert info.value.field == "disk_format"
    with pytest.raises(ImageStoreClientError) as info:
        client.list(colour="red")
    assert (info.value.status, info.value.field) == (400, "colour")

    image = client.create(name="x", disk_format="raw")
    client.upload(image["id"], io.BytesIO(b"abc"))
    with pytest.raises(Conflict) as conflict:
        client.upload(image["id"], io.BytesIO(b"def"))
    assert conflict.value.status == 409


def test_for_caller_shares_the_session_and_enforces_tenancy(client: ImageStoreClient) -> None:
    alpha = client.for_caller(ALPHA, False)
    beta = client.for_caller(BETA, False)
    beta_admin = client.for_caller(BETA, True)
    assert alpha._session is client._session is beta._session

    private = alpha.create(name="mine", disk_format="raw")
    assert private["owner"] == ALPHA
    public = client.create(name="shared", disk_format="raw", owner=ALPHA, visibility="public")
    assert [i["name"] for i in beta.list()] == ["shared"]
    with pytest.raises(NotFound):
        beta.get(private["id"])
    with pytest.raises(Forbidden) as info:
        beta.delete(public["id"])
    assert info.value.status == 403
    with pytest.raises(Forbidden):
        alpha.create(name="x", disk_format="raw", visibility="public")
    with pytest.raises(Forbidden):
        alpha.stats()
    beta_admin.delete(private["id"])
    alpha.close()  # leaves the shared session usable
    assert client.for_caller(None, False).get(public["id"])["name"] == "shared"


def test_request_id_travels(client: ImageStoreClient) -> None:
    image = client.create(name="x", disk_format="raw")
    client.upload(image["id"], io.BytesIO(b"abc"))
    with bound(request_id="req-from-the-api"), client.open_stream(image["id"]) as response:
        assert response.headers["X-Openstack-Request-Id"] == "req-from-the-api"
        assert response.content == b"abc"


def test_open_stream_passes_ranges(client: ImageStoreClient) -> None:
    data = image_bytes(300 * KIB, seed=13)
    image = client.create(name="x", disk_format="raw")
    client.upload(image["id"], io.BytesIO(data))
    with client.open_stream(image["id"], "bytes=100-199") as response:
        assert response.status_code == 206
        assert response.content == data[100:200]
    with pytest.raises(ImageStoreClientError) as info:
        client.open_stream(image["id"], f"bytes={len(data)}-")
    assert info.value.status == 416


def test_download_checks_and_leaves_no_part_file(client: ImageStoreClient,
                                                 tmp_path: Path) -> None:
    data = image_bytes(MIB + 5, seed=14)
    image = client.create(name="x", disk_format="raw")
    client.upload(image["id"], io.BytesIO(data))
    cache = tmp_path / "cache"

    with pytest.raises(ChecksumMismatch, match=image["id"]):
        client.download_to(image["id"], cache / "image", hashlib.sha256(b"other").hexdigest())
    with pytest.raises(NotFound):
        client.download_to(str(uuid.uuid4()), cache / "nothing")
    queued = client.create(name="y", disk_format="raw")
    with pytest.raises(Conflict):
        client.download_to(queued["id"], cache / "queued")
    assert leftovers(cache) == []

    reports: list[int] = []
    client.download_to(image["id"], cache / "image", progress=reports.append)
    assert reports[-1] == len(data)
    assert leftovers(cache) == ["image"]


def test_corrupt_chunk_is_named_by_download_and_fetch(
    client: ImageStoreClient, tmp_path: Path
) -> None:
    data = image_bytes(2 * MIB, seed=15)
    image = client.create(name="x", disk_format="raw")
    client.upload(image["id"], io.BytesIO(data))
    entries = data_entries(client.chunks(image["id"]))
    cache = tmp_path / "cache"

    # Mid-stream: the connection is cut; the client asks the record which chunk.
    late = entries[-1][2]
    flip_byte(chunk_file(tmp_path, late))
    with pytest.raises(CorruptImage, match=late) as info:
        client.download_to(image["id"], cache / "image")
    assert late in info.value.addresses
    assert leftovers(cache) == []

    # Before the first byte: a clean 500 naming it.
    first = entries[0][2]
    flip_byte(chunk_file(tmp_path, first))
    with pytest.raises(CorruptImage, match=first) as info:
        client.download_to(image["id"], cache / "image")
    assert info.value.status == 500
    assert info.value.address == first
    assert leftovers(cache) == []

    with pytest.raises(CorruptImage, match=late) as info:
        client.fetch_chunk(late)
    assert (info.value.status, info.value.address) == (500, late)


def test_chunk_protocol(client: ImageStoreClient) -> None:
    data = image_bytes(10_000, seed=16)
    image = client.create(name="x", disk_format="raw")
    assert client.missing(image["id"], [address(data)]) == [address(data)]
    client.put_chunk(image["id"], address(data), encode(data))
    record = client.commit_manifest(image["id"], 10_000, [[0, 10_000, address(data)]])
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert client.chunks(image["id"]) == {"size": 10_000, "chunks": [[0, 10_000, address(data)]]}
    assert decode(client.fetch_chunk(address(data)), address(data), 10_000) == data
    with pytest.raises(NotFound):
        client.fetch_chunk(address(b"absent"))


def _changed_copy(source: Path, dest: Path, offset: int, length: int) -> None:
    data = bytearray(source.read_bytes())
    data[offset:offset + length] = image_bytes(length, seed=99)
    dest.write_bytes(bytes(data))


def test_dedup_upload_sends_only_what_the_store_lacks(
    client: ImageStoreClient, tmp_path: Path
) -> None:
    v1 = tmp_path / "v1.img"
    data = image_bytes(6 * MIB, holes=[(2 * MIB, 2 * MIB)], seed=17)
    v1.write_bytes(data)
    first = client.create(name="v1", disk_format="raw")
    record, counters = client.upload_deduplicated(first["id"], v1, workers=4)
    assert record["status"] == "active"
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    entries = data_entries(client.chunks(first["id"]))
    distinct = {e[2] for e in entries}
    assert counters["chunks"] == len(entries)
    assert counters["sent_chunks"] == len(distinct)
    assert counters["zero_bytes"] >= 2 * MIB - 2 * client.info()["chunking"]["max"]
    assert counters["sent_bytes"] >= 4 * MIB  # random bytes do not compress

    # v2 differs from v1 in one 8 KiB region: only the chunks around it travel.
    v2 = tmp_path / "v2.img"
    _changed_copy(v1, v2, 5 * MIB, 8 * KIB)
    second = client.create(name="v2", disk_format="raw")
    record2, counters2 = client.upload_deduplicated(second["id"], v2)
    assert 1 <= counters2["sent_chunks"] <= 3, counters2
    assert counters2["sent_bytes"] <= 3 * client.info()["chunking"]["max"] + 3
    assert counters2["chunks"] == len(data_entries(client.chunks(second["id"])))
    client.download_to(second["id"], tmp_path / "v2.out", record2["sha256"])
    assert (tmp_path / "v2.out").read_bytes() == v2.read_bytes()

    # The same file again: nothing at all.
    third = client.create(name="v2-again", disk_format="raw")
    _, counters3 = client.upload_deduplicated(third["id"], v2, workers=1)
    assert (counters3["sent_chunks"], counters3["sent_bytes"]) == (0, 0)


def test_dedup_upload_of_empty_and_all_zero_files(client: ImageStoreClient,
                                                  tmp_path: Path) -> None:
    for size in (0, 3 * MIB):
        path = tmp_path / f"zeros-{size}"
        with path.open("wb") as f:
            f.truncate(size)
        image = client.create(name="zeros", disk_format="raw")
        record, counters = client.upload_deduplicated(image["id"], path)
        assert record["size"] == size
        assert counters == {"chunks": 0, "sent_chunks": 0, "sent_bytes": 0, "zero_bytes": size}
        assert client.chunks(image["id"]) == {
            "size": size, "chunks": [[0, size, None]] if size else []}


def test_dedup_upload_of_a_big_sparse_file_is_bounded_in_memory(
    client: ImageStoreClient, tmp_path: Path
) -> None:
    path = tmp_path / "big.img"
    size = 1024 * MIB
    with path.open("wb") as f:
        f.truncate(size)
        for i, offset in enumerate((0, 300 * MIB, size - 2 * MIB)):
            f.seek(offset)
            f.write(image_bytes(2 * MIB, seed=100 + i))
    image = client.create(name="big", disk_format="raw")
    tracemalloc.start()
    try:
        record, counters = client.upload_deduplicated(image["id"], path, workers=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert record["size"] == size
    assert counters["zero_bytes"] >= size - 8 * MIB
    # Measured: ~12 MiB (client and in-process server together); holding the file would
    # be 1 GiB.
    assert peak < 32 * MIB, f"peak {peak / MIB:.0f} MiB for a 1 GiB file"


def test_dedup_upload_refuses_a_file_changed_under_it(
    client: ImageStoreClient, server: ThreadedServer, tmp_path: Path
) -> None:
    path = tmp_path / "moving.img"
    path.write_bytes(image_bytes(MIB, seed=18))
    image = client.create(name="x", disk_format="raw")
    original_missing = client.missing

    def missing_then_change(image_id: str, addresses: Any) -> list[str]:
        answer = original_missing(image_id, addresses)
        _changed_copy(path, path, 0, MIB)  # the file changes between the two passes
        return answer

    client.missing = missing_then_change  # type: ignore[method-assign]
    with pytest.raises(ImageStoreClientError, match="changed while it was uploaded"):
        client.upload_deduplicated(image["id"], path)
    assert client.get(image["id"])["status"] == "saving"
    client.delete(image["id"])


def test_stats_and_scrub(client: ImageStoreClient) -> None:
    image = client.create(name="x", disk_format="raw")
    client.upload(image["id"], io.BytesIO(image_bytes(MIB, seed=19)))
    assert client.stats()["active_images"] == 1
    result = client.scrub()
    assert result["corrupt"] == [] and result["checked"] >= 1


def test_wrong_token_is_refused(server: ThreadedServer) -> None:
    with (
        ImageStoreClient(server.url, "not-the-token") as intruder,
        pytest.raises(ImageStoreClientError) as info,
    ):
        intruder.list()
    assert info.value.status == 401
    assert not isinstance(info.value, NotFound)


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
    assert not os.path.exists(tmp_path / "image.part")
