"""Ironbark's image store: where the cloud keeps the disk images instances boot from.

A small service of its own (``ironbark-image-store``): image records plus their bytes
on a local directory, served over a token-protected HTTP API, and the client the
other tiers use to register, upload and -- checksum-verified -- download images.

This is the foundation version: bytes are stored as whole content-addressed blobs.
A Parallax-like store with content-defined chunking and deduplication comes later; it
replaces :class:`~image_store.store.BlobStore` behind :class:`ImageStore` and keeps
the HTTP API and the client as they are.
"""

from image_store.client import ChecksumMismatch, ImageStoreClient, ImageStoreClientError, NotFound
from image_store.service import create_app
from image_store.store import (
    CorruptImage,
    ImageConflict,
    ImageNotFound,
    ImageRecord,
    ImageStore,
    ImageStoreError,
    InvalidImage,
)

__all__ = [
    "ChecksumMismatch",
    "CorruptImage",
    "ImageConflict",
    "ImageNotFound",
    "ImageRecord",
    "ImageStore",
    "ImageStoreClient",
    "ImageStoreClientError",
    "ImageStoreError",
    "InvalidImage",
    "NotFound",
    "create_app",
]
