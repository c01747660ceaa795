"""Chunks as objects in an S3-compatible store: ``<prefix><address>`` in one bucket.

Staging stays on local disk (bounded memory for big uploads); publishing PUTs the
staged files from a few threads. A PUT is atomic on S3 (an object appears whole or
not at all) and carries its MD5, so no partial or damaged chunk is ever visible, and
a successful PUT is durable: nothing like ``syncfs`` is needed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from image_store.backends.base import BackendError, ChunkBackend, ChunkMissing
from image_store.backends.staged import FileStaging, StagedFiles, clear_children
from image_store.codec import check_address, is_address

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})
_BOTO_ERRORS = (ClientError, BotoCoreError)


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _non_empty(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: must be a non-empty string, got {value!r}")
    return value


class S3Staging(FileStaging):
    """Local files under ``<staging_dir>/<random>/``, PUT to the bucket on publish."""

    def __init__(self, backend: S3Backend) -> None:
        super().__init__(str(backend.staging_dir))
        self._backend = backend

    def _install(self, files: StagedFiles, addresses: list[str]) -> None:
        backend = self._backend

        def upload(address: str) -> None:
            backend._put_file(files.path(address), address)

        if len(addresses) == 1:
            upload(addresses[0])
        else:
            with ThreadPoolExecutor(min(backend.workers, len(addresses)),
                                    thread_name_prefix="s3-publish") as pool:
                for _ in pool.map(upload, addresses):
                    pass


class S3Backend(ChunkBackend):
    """One bucket (created if missing) of any S3-API server: AWS, MinIO, Ceph RGW, moto."""

    name = "s3"

    def __init__(self, endpoint_url: str | None, bucket: str, prefix: str, region: str,
                 access_key: str | None, secret_key: str | None, staging_dir: Path | str,
                 *, workers: int = 8, connect_timeout: float = 5.0,
                 read_timeout: float = 60.0, max_attempts: int = 5,
                 list_page_size: int = 1000) -> None:
        if endpoint_url is not None:
            _non_empty("endpoint_url", endpoint_url)
        if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
            raise ValueError(f"bucket: must be 3-63 characters of a-z, 0-9, '.' and '-', "
                             f"got {bucket!r}")
        if not isinstance(prefix, str):
            raise ValueError(f"prefix: must be a string, got {prefix!r}")
        _non_empty("region", region)
        if (access_key is None) != (secret_key is None):
            raise ValueError("access_key: access_key and secret_key go together")
        if access_key is not None:
            _non_empty("access_key", access_key)
            _non_empty("secret_key", secret_key)
        for field, value in (("workers", workers), ("list_page_size", list_page_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field}: must be a positive integer, got {value!r}")
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.prefix = prefix
        self.workers = workers
        self.list_page_size = list_page_size
        self.staging_dir = Path(staging_dir)
        os.makedirs(self.staging_dir, exist_ok=True)
        config = Config(
            region_name=region,
            max_pool_connections=max(10, 2 * workers),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # Path-style addressing and MD5 rather than the newer flexible checksums:
            # what every S3-compatible server (MinIO, Ceph, moto) understands.
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session()
        self._client = session.client(
            "s3", endpoint_url=endpoint_url, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, region_name=region, config=config)
        self._ensure_bucket(region)

    def _where(self) -> str:
        return f"bucket {self.bucket} at {self.endpoint_url or 'AWS'}"

    def _ensure_bucket(self, region: str) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in _MISSING_BUCKET:
                raise BackendError(f"s3: cannot use {self._where()}: {exc}") from exc
        except BotoCoreError as exc:
            raise BackendError(f"s3: cannot reach {self._where()}: {exc}") from exc
        kwargs: dict[str, object] = {"Bucket": self.bucket}
        if region != "us-east-1":  # S3 rejects an explicit us-east-1 constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) != "BucketAlreadyOwnedByYou":  # created concurrently: fine
                raise BackendError(f"s3: cannot create {self._where()}: {exc}") from exc
        except BotoCoreError as exc:
            raise BackendError(f"s3: cannot create {self._where()}: {exc}") from exc

    def _key(self, address: str) -> str:
        return self.prefix + check_address(address)

    def _error(self, action: str, address: str, exc: Exception) -> BackendError:
        return BackendError(f"s3: {action} of chunk {address} in {self._where()} failed: {exc}")

    def _put_file(self, path: str, address: str) -> None:
        with open(path, "rb", buffering=0) as f:
            data = f.readall()
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(address), Body=data,
                                    ContentMD5=md5,
                                    ContentType="application/x-ironbark-chunk")
        except _BOTO_ERRORS as exc:
            raise self._error("put", address, exc) from exc

    def staging(self) -> S3Staging:
        return S3Staging(self)

    def get(self, address: str) -> bytes:
        key = self._key(address)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY:
                raise ChunkMissing(address) from None
            raise self._error("get", address, exc) from exc
        except BotoCoreError as exc:
            raise self._error("get", address, exc) from exc

    def exists(self, address: str) -> bool:
        key = self._key(address)
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY:
                return False
            raise self._error("head", address, exc) from exc
        except BotoCoreError as exc:
            raise self._error("head", address, exc) from exc

    def delete(self, address: str) -> None:
        key = self._key(address)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY:
                return
            raise self._error("delete", address, exc) from exc
        except BotoCoreError as exc:
            raise self._error("delete", address, exc) from exc

    def addresses(self) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        start = len(self.prefix)
        try:
            pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix,
                                       PaginationConfig={"PageSize": self.list_page_size})
            for page in pages:
                for obj in page.get("Contents", ()):
                    name = obj["Key"][start:]
                    if is_address(name):
                        yield name
        except _BOTO_ERRORS as exc:
            raise BackendError(f"s3: listing {self._where()} failed: {exc}") from exc

    def recover(self) -> int:
        return clear_children(str(self.staging_dir))
