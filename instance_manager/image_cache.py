"""The host's image cache: each image's bytes fetched once, verified, shared by its
instances (whose disks are copy-on-write overlays over the cached file).

Files are named by their SHA-256, so two image records with the same bytes share one
file and a cached file is known to be intact. (Chunk-level caching and eviction come
with the image store issue.)
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from image_store.client import ImageStoreClient
from message_bus.messages import ImageRef

log = logging.getLogger(__name__)


class ImageCache:
    def __init__(self, directory: Path, client: ImageStoreClient):
        self.directory, self._client = directory, client
        directory.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def ensure(self, image: ImageRef) -> Path:
        """The cached base file of ``image``, fetching it the first time."""
        path = self.directory / image.sha256
        if path.exists():
            os.utime(path)  # recency, for eviction
            return path
        with self._lock(image.sha256):
            if not path.exists():
                log.info("fetching image %s (%s, %d bytes) into the cache", image.name,
                         image.id, image.size)
                self._client.download_to(image.id, path, image.sha256)
        return path

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())
