"""open_store: the store the [image_store] options describe, on real disks, databases, S3."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa

from image_store import codec
from image_store.factory import open_store
from image_store.store import SERVICE, ImageConflict
from ironbark.config import ImageStoreOptions
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY

from .store_util import check_record, read, text_like, upload


def test_defaults_give_a_local_store_with_a_sqlite_catalog(tmp_path: Path) -> None:
    options = ImageStoreOptions(data_dir=tmp_path / "images")
    store = open_store(options)
    try:
        assert store.info() == {"chunking": {"kind": "cdc", "min": 16384, "avg": 65536,
                                             "max": 262144},
                                "codec": "zstd", "backend": "local"}
        data = text_like(500_000)
        record = upload(store, data)
    finally:
        store.close()
    assert (tmp_path / "images" / "catalog.db").is_file()
    assert list((tmp_path / "images" / "chunks").rglob("*"))
    reopened = open_store(options)  # persistent, and migrating again is a no-op
    try:
        assert read(reopened, record.id) == data
    finally:
        reopened.close()


def test_chunking_and_compression_come_from_the_options(tmp_path: Path) -> None:
    store = open_store(ImageStoreOptions(data_dir=tmp_path, chunking="fixed",
                                         chunk_avg_kib=8, compression_level=0))
    try:
        assert store.info()["chunking"] == {"kind": "fixed", "min": 8192, "avg": 8192,
                                            "max": 8192}
        data = text_like(100_000)
        record = upload(store, data)
        check_record(record, data)
        _, entries = store.manifest(SERVICE, record.id)
        assert [e.length for e in entries] == [8192] * 12 + [100_000 - 12 * 8192]
        # Level 0 stores raw: one codec byte per chunk, however compressible.
        assert record.stored_size == len(data) + len(entries)
        assert all(store.read_chunk(e.address or "")[0] == codec.RAW for e in entries)
    finally:
        store.close()


def test_a_postgresql_catalog_is_migrated(tmp_path: Path, postgres_url: str) -> None:
    store = open_store(ImageStoreOptions(data_dir=tmp_path, database_url=postgres_url))
    try:
        record = upload(store, b"on postgresql")
        assert read(store, record.id) == b"on postgresql"
        with store.engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version_image"))
    finally:
        store.close()
    assert not (tmp_path / "catalog.db").exists()


def test_an_s3_backend_with_staging_under_the_data_dir(tmp_path: Path, s3_endpoint: str,
                                                       s3_bucket: str) -> None:
    options = ImageStoreOptions(
        data_dir=tmp_path, backend="s3", s3_endpoint=s3_endpoint, s3_bucket=s3_bucket,
        s3_prefix="img/", s3_region=REGION, s3_access_key=ACCESS_KEY,
        s3_secret_key=SECRET_KEY)
    store = open_store(options)
    try:
        assert store.info()["backend"] == "s3"
        data = text_like(300_000, 3)
        record = upload(store, data)
        assert read(store, record.id) == data
    finally:
        store.close()
    s3 = boto3.session.Session().client(
        "s3", endpoint_url=s3_endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys and all(k.startswith("img/") for k in keys)
    assert (tmp_path / "s3-staging").is_dir()
    assert not (tmp_path / "chunks").exists()


def test_recovery_kills_interrupted_uploads_unless_told_not_to(tmp_path: Path) -> None:
    options = ImageStoreOptions(data_dir=tmp_path)
    store = open_store(options)
    record = store.create(SERVICE, name="in flight", disk_format="raw")
    store.missing(SERVICE, record.id, [])  # a dedup upload started: saving
    store.close()
    second = open_store(options, recover=False)  # e.g. a second server process
    assert second.get(SERVICE, record.id).status == "saving"
    second.close()
    third = open_store(options)
    try:
        assert third.get(SERVICE, record.id).status == "killed"
        with pytest.raises(ImageConflict, match="killed"):
            third.upload(SERVICE, record.id, io.BytesIO(b"x"))
    finally:
        third.close()


@pytest.mark.parametrize("kwargs,field", [
    ({"chunk_avg_kib": 48}, "chunk_avg_kib"),      # cdc needs a power of two
    ({"data_dir": None}, "data_dir"),
])
def test_bad_options_name_the_option(tmp_path: Path, kwargs: dict, field: str) -> None:
    options = ImageStoreOptions(**{"data_dir": tmp_path, **kwargs})
    with pytest.raises(ValueError, match=field):
        open_store(options)
    assert not (tmp_path / "catalog.db").exists()
