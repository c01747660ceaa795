"""Ironbark's image store: where the cloud keeps the disk images instances boot from.

A Parallax-like service of its own (``ironbark-image-store``): an image is a manifest
of content-addressed chunks, each stored once and verified on every read, so only
missing chunks ever cross the wire. docs/image-store.md is the design and contract.

Names are exported lazily: the other tiers import ``image_store.client`` alone, and
that must not drag in the store, its database layer and the Flask service.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ChecksumMismatch": "image_store.client",
    "ImageStoreClient": "image_store.client",
    "ImageStoreClientError": "image_store.client",
    "NotFound": "image_store.client",
    "create_app": "image_store.service",
    "open_store": "image_store.factory",
    "SERVICE": "image_store.store",
    "Caller": "image_store.store",
    "ChunkNotFound": "image_store.store",
    "CorruptImage": "image_store.store",
    "Entry": "image_store.store",
    "Forbidden": "image_store.store",
    "ImageConflict": "image_store.store",
    "ImageNotFound": "image_store.store",
    "ImageReader": "image_store.store",
    "ImageRecord": "image_store.store",
    "ImageStore": "image_store.store",
    "ImageStoreError": "image_store.store",
    "InvalidImage": "image_store.store",
    "RangeNotSatisfiable": "image_store.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'image_store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
