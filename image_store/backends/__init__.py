"""Chunk backends: a local directory or any S3-compatible object store.

``S3Backend`` is imported on first use: boto3 takes ~0.15 s to import, which every
command of a store on local disk would otherwise pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from image_store.backends.base import BackendError, ChunkBackend, ChunkMissing, Staging
from image_store.backends.local import LocalBackend

if TYPE_CHECKING:
    from image_store.backends.s3 import S3Backend

__all__ = ["BackendError", "ChunkBackend", "ChunkMissing", "LocalBackend", "S3Backend",
           "Staging"]


def __getattr__(name: str) -> Any:
    if name == "S3Backend":
        from image_store.backends.s3 import S3Backend

        return S3Backend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
