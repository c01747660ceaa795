"""Chunk backends, the same tests on a local directory and on a real S3 server.

The S3 side runs against ``moto_server`` in its own process (``s3_endpoint``), over
HTTP through boto3, as a production S3-compatible server would be used.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from image_store.backends import (
    BackendError,
    ChunkBackend,
    ChunkMissing,
    LocalBackend,
    S3Backend,
    Staging,
)
from image_store.codec import address, decode, encode
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY

PREFIX = "chunks/"


def chunk(seed: int, size: int = 10_000) -> tuple[str, bytes]:
    data = random.Random(seed).randbytes(size // 2) * 2   # half compressible
    return address(data), encode(data)


def staging_root(backend: ChunkBackend) -> Path:
    if isinstance(backend, LocalBackend):
        return backend.root / "staging"
    assert isinstance(backend, S3Backend)
    return backend.staging_dir


def staged_files(backend: ChunkBackend) -> list[Path]:
    return [p for p in staging_root(backend).rglob("*")]


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def make_s3(tmp_path: Path, endpoint: str, bucket: str, prefix: str = PREFIX) -> S3Backend:
    return S3Backend(endpoint, bucket, prefix, REGION, ACCESS_KEY, SECRET_KEY,
                     tmp_path / "s3-staging", workers=4)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkBackend]:
    if request.param == "local":
        yield LocalBackend(tmp_path / "store")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        yield make_s3(tmp_path, endpoint, bucket)


def damage(backend: ChunkBackend, addr: str, garbage: bytes) -> None:
    """Overwrite a published chunk behind the backend's back (a disk or bucket fault)."""
    if isinstance(backend, LocalBackend):
        (backend.root / "chunks" / addr[:2] / addr).write_bytes(garbage)
    else:
        assert isinstance(backend, S3Backend)
        s3_client(backend.endpoint_url or "").put_object(
            Bucket=backend.bucket, Key=backend.prefix + addr, Body=garbage)


def test_put_publish_get_round_trip(backend: ChunkBackend) -> None:
    chunks = dict(chunk(i) for i in range(12))
    with backend.staging() as staging:
        for addr, encoded in chunks.items():
            staging.put(addr, encoded)
        assert staging.publish() == list(chunks)
    for addr, encoded in chunks.items():
        assert backend.exists(addr)
        got = backend.get(addr)
        assert got == encoded
        assert decode(got, addr) is not None
    assert staged_files(backend) == []


def test_staged_chunks_are_invisible_before_publish(backend: ChunkBackend) -> None:
    addr, encoded = chunk(1)
    staging = backend.staging()
    staging.put(addr, encoded)
    assert not backend.exists(addr)
    with pytest.raises(ChunkMissing) as info:
        backend.get(addr)
    assert info.value.address == addr
    assert list(backend.addresses()) == []
    staging.publish()
    assert backend.get(addr) == encoded


def test_discard_leaves_nothing(backend: ChunkBackend) -> None:
    staging = backend.staging()
    for i in range(3):
        staging.put(*chunk(i))
    assert staged_files(backend) != []
    staging.discard()
    staging.discard()                                    # idempotent
    assert staged_files(backend) == []
    assert list(backend.addresses()) == []
    with pytest.raises(RuntimeError, match="discarded"):
        staging.put(*chunk(4))


def test_leaving_the_context_without_publish_discards(backend: ChunkBackend) -> None:
    addr, encoded = chunk(1)
    with pytest.raises(KeyError), backend.staging() as staging:
        staging.put(addr, encoded)
        raise KeyError("upload failed")
    assert staged_files(backend) == []
    assert not backend.exists(addr)


def test_publish_of_nothing_and_twice(backend: ChunkBackend) -> None:
    with backend.staging() as staging:
        assert staging.publish() == []
    staging = backend.staging()
    staging.put(*chunk(1))
    staging.publish()
    with pytest.raises(RuntimeError, match="published"):
        staging.publish()
    with pytest.raises(RuntimeError, match="published"):
        staging.put(*chunk(2))


def test_publish_replaces_a_damaged_chunk(backend: ChunkBackend) -> None:
    addr, encoded = chunk(7)
    with backend.staging() as staging:
        staging.put(addr, encoded)
        staging.publish()
    damage(backend, addr, b"\x00garbage")
    assert backend.get(addr) == b"\x00garbage"
    with backend.staging() as staging:
        staging.put(addr, encoded)
        staging.publish()
    assert backend.get(addr) == encoded


def test_delete_is_idempotent(backend: ChunkBackend) -> None:
    (a1, e1), (a2, e2) = chunk(1), chunk(2)
    with backend.staging() as staging:
        staging.put(a1, e1)
        staging.put(a2, e2)
        staging.publish()
    backend.delete(a1)
    assert not backend.exists(a1)
    with pytest.raises(ChunkMissing):
        backend.get(a1)
    backend.delete(a1)
    backend.delete(address(b"never stored"))
    assert backend.get(a2) == e2
    assert list(backend.addresses()) == [a2]


def test_addresses_lists_exactly_the_published(backend: ChunkBackend) -> None:
    published = dict(chunk(i) for i in range(40))
    with backend.staging() as staging:
        for addr, encoded in published.items():
            staging.put(addr, encoded)
        staging.publish()
    pending = backend.staging()
    pending.put(*chunk(1000))
    assert sorted(backend.addresses()) == sorted(published)
    pending.discard()


def test_recover_clears_staging(backend: ChunkBackend) -> None:
    published, _ = chunk(0)
    with backend.staging() as staging:
        staging.put(published, chunk(0)[1])
        staging.publish()
    abandoned: list[Staging] = [backend.staging(), backend.staging()]
    for i, staging in enumerate(abandoned):
        staging.put(*chunk(10 + i))
        staging.put(*chunk(20 + i))
    assert backend.recover() == 4
    assert staged_files(backend) == []
    assert list(backend.addresses()) == [published]
    assert backend.recover() == 0


@pytest.mark.parametrize("bad", ["", "ABC", "A" * 64, "../" + "a" * 61, "a" * 65])
def test_bad_addresses_are_refused_and_change_nothing(backend: ChunkBackend, bad: str) -> None:
    staging = backend.staging()
    with pytest.raises(ValueError, match="address"):
        staging.put(bad, b"\x00x")
    for op in (backend.get, backend.exists, backend.delete):
        with pytest.raises(ValueError, match="address"):
            op(bad)
    assert staging.publish() == []
    assert list(backend.addresses()) == []


def test_empty_encoded_chunk_is_refused(backend: ChunkBackend) -> None:
    with backend.staging() as staging, pytest.raises(ValueError, match="encoded"):
        staging.put(address(b""), b"")


# --- local only ----------------------------------------------------------------------

def test_local_layout(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    addr, encoded = chunk(3)
    with backend.staging() as staging:
        staging.put(addr, encoded)
        staging.publish()
    assert (tmp_path / "chunks" / addr[:2] / addr).read_bytes() == encoded
    assert backend.name == "local"


def test_local_crash_between_staging_and_publish(tmp_path: Path) -> None:
    before = LocalBackend(tmp_path)
    staging = before.staging()          # abandoned: the process "dies" here
    chunks = dict(chunk(i) for i in range(5))
    for addr, encoded in chunks.items():
        staging.put(addr, encoded)
    after = LocalBackend(tmp_path)      # the next start
    assert after.recover() == 5
    assert [p for p in (tmp_path / "chunks").rglob("*") if p.is_file()] == []
    assert list((tmp_path / "staging").iterdir()) == []
    assert list(after.addresses()) == []


def test_local_delete_removes_the_empty_prefix_dir(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    addr, encoded = chunk(5)
    with backend.staging() as staging:
        staging.put(addr, encoded)
        staging.publish()
    backend.delete(addr)
    assert not (tmp_path / "chunks" / addr[:2]).exists()


def test_local_publish_survives_a_prefix_dir_removed_behind_its_back(tmp_path: Path) -> None:
    """Another deleter emptied and removed <aa> after this backend cached it."""
    publisher, deleter = LocalBackend(tmp_path), LocalBackend(tmp_path)
    addr, encoded = chunk(6)
    for _ in range(2):
        with publisher.staging() as staging:
            staging.put(addr, encoded)
            staging.publish()
        assert publisher.get(addr) == encoded
        deleter.delete(addr)
        assert not (tmp_path / "chunks" / addr[:2]).exists()


def test_local_addresses_ignore_foreign_files(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    addr, encoded = chunk(8)
    with backend.staging() as staging:
        staging.put(addr, encoded)
        staging.publish()
    (tmp_path / "chunks" / addr[:2] / "notes.txt").write_text("x")
    (tmp_path / "chunks" / "zz").mkdir()
    (tmp_path / "chunks" / "README").write_text("x")
    assert list(backend.addresses()) == [addr]


def test_local_publish_fails_loudly_when_a_staged_file_vanished(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    staging = backend.staging()
    (a1, e1), (a2, e2) = chunk(1), chunk(2)
    staging.put(a1, e1)
    staging.put(a2, e2)
    os.unlink(next(p for p in (tmp_path / "staging").rglob(a2)))
    with pytest.raises(FileNotFoundError):
        staging.publish()
    staging.discard()
    assert staged_files(backend) == []


# --- S3 only -------------------------------------------------------------------------

def test_s3_objects_live_under_the_prefix(tmp_path: Path, s3_endpoint: str,
                                          s3_bucket: str) -> None:
    backend = make_s3(tmp_path, s3_endpoint, s3_bucket, prefix="images/chunks/")
    addr, encoded = chunk(2)
    with backend.staging() as staging:
        staging.put(addr, encoded)
        staging.publish()
    client = s3_client(s3_endpoint)
    body = client.get_object(Bucket=s3_bucket, Key=f"images/chunks/{addr}")["Body"].read()
    assert body == encoded
    client.put_object(Bucket=s3_bucket, Key="images/chunks/not-a-chunk", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key="elsewhere/" + addr, Body=b"x")
    assert list(backend.addresses()) == [addr]
    other = make_s3(tmp_path / "other", s3_endpoint, s3_bucket, prefix="other/")
    assert list(other.addresses()) == []
    assert not other.exists(addr)
    assert backend.name == "s3"


def test_s3_addresses_paginates(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    backend = S3Backend(s3_endpoint, s3_bucket, PREFIX, REGION, ACCESS_KEY, SECRET_KEY,
                        tmp_path, list_page_size=4)
    chunks = dict(chunk(i, size=100) for i in range(23))   # six pages of four keys
    with backend.staging() as staging:
        for addr, encoded in chunks.items():
            staging.put(addr, encoded)
        staging.publish()
    assert sorted(backend.addresses()) == sorted(chunks)


def test_s3_creates_a_missing_bucket_and_reuses_an_existing_one(
        tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    client = s3_client(s3_endpoint)
    make_s3(tmp_path, s3_endpoint, s3_bucket)
    client.head_bucket(Bucket=s3_bucket)
    make_s3(tmp_path, s3_endpoint, s3_bucket)


def test_s3_unreachable_endpoint_is_a_backend_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]       # bound, never listening: refuses at once
        with pytest.raises(BackendError, match="bucket ironbark-nowhere"):
            S3Backend(f"http://127.0.0.1:{port}", "ironbark-nowhere", "", REGION,
                      ACCESS_KEY, SECRET_KEY, tmp_path, max_attempts=1, connect_timeout=1)


def test_s3_errors_other_than_missing_name_the_chunk(tmp_path: Path, s3_endpoint: str,
                                                     s3_bucket: str) -> None:
    backend = make_s3(tmp_path, s3_endpoint, s3_bucket)
    s3_client(s3_endpoint).delete_bucket(Bucket=s3_bucket)   # the bucket vanishes
    addr, _ = chunk(1)
    with pytest.raises(BackendError, match=addr):
        backend.get(addr)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"bucket": "Bad_Bucket"}, "bucket"), ({"bucket": "ab"}, "bucket"),
    ({"prefix": None}, "prefix"), ({"region": ""}, "region"),
    ({"access_key": "x", "secret_key": None}, "access_key"),
    ({"endpoint_url": ""}, "endpoint_url"), ({"workers": 0}, "workers"),
    ({"list_page_size": True}, "list_page_size"),
])
def test_s3_bad_settings_name_the_field(tmp_path: Path, kwargs: dict, field: str) -> None:
    settings = {"endpoint_url": "http://127.0.0.1:1", "bucket": "ironbark", "prefix": "",
                "region": REGION, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
                "staging_dir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}: "):
        S3Backend(**settings)
