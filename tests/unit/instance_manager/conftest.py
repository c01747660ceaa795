"""Fixtures shared by the Instance Manager's image tests: a real chunk store, served.

Small chunks (cdc, 4..64 KiB) so that a few MiB make a hundred-odd chunks: enough to
see what a cache fetches or a snapshot sends, chunk by chunk, in a fast test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from image_store.client import ImageStoreClient
from image_store.factory import open_store
from image_store.store import ImageStore
from ironbark.config import ImageStoreOptions
from ironbark.wsgi import ThreadedServer

TOKEN = "test-service-token-0123456789"
AVG_KIB = 16


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return open_store(ImageStoreOptions(data_dir=tmp_path / "store", chunking="cdc",
                                        chunk_avg_kib=AVG_KIB))


@contextmanager
def serving(app: Any) -> Iterator[ThreadedServer]:
    """``app`` (the store's app, or a fault-injecting layer over it) on 127.0.0.1."""
    srv = ThreadedServer(app, "127.0.0.1", 0).start()
    try:
        yield srv
    finally:
        srv.stop()


def store_client(srv: ThreadedServer) -> ImageStoreClient:
    return ImageStoreClient(srv.url, TOKEN, timeout=10.0)
