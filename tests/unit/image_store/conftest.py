"""Fixtures of the image store tests: a real store, its Flask app, and a real HTTP server."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from image_store.client import ImageStoreClient
from image_store.service import create_app
from image_store.store import ImageStore
from ironbark.wsgi import ThreadedServer

TOKEN = "test-service-token-0123456789"
MIB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


@pytest.fixture
def app(store: ImageStore) -> Flask:
    return create_app(store, TOKEN)


@pytest.fixture
def http(app: Flask) -> FlaskClient:
    """Flask's test client, with the service token on every request."""
    client = app.test_client()
    client.environ_base["HTTP_X_SERVICE_TOKEN"] = TOKEN
    return client


class _CurrentApp:
    """A WSGI app that forwards to whichever app the running test set.

    Stopping werkzeug's server takes half a second (its poll interval), so the tests
    share one real server and each points it at an app over its own fresh store.
    """

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        assert self.app is not None, "request outside a test"
        return self.app(environ, start_response)


@pytest.fixture(scope="package")
def _shared_server() -> Iterator[tuple[ThreadedServer, _CurrentApp]]:
    current = _CurrentApp()
    srv = ThreadedServer(current, "127.0.0.1", 0).start()
    yield srv, current
    srv.stop()


@pytest.fixture
def server(
    _shared_server: tuple[ThreadedServer, _CurrentApp], app: Flask
) -> Iterator[ThreadedServer]:
    """A real HTTP server (ironbark.wsgi.ThreadedServer) serving this test's app."""
    srv, current = _shared_server
    current.app = app
    yield srv
    current.app = None


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[ImageStoreClient]:
    with ImageStoreClient(server.url, TOKEN, timeout=10.0) as c:
        yield c


def blob_files(store: ImageStore) -> list[Path]:
    return sorted(p for p in (store.data_dir / "blobs").rglob("*") if p.is_file())


def temp_files(store: ImageStore) -> list[Path]:
    """Upload temp files and half-written record files: none may outlive an operation."""
    return sorted(
        [*(store.data_dir / "tmp").iterdir(), *(store.data_dir / "records").glob(".*")]
    )


def payload(size: int) -> bytes:
    """Deterministic, non-repeating bytes (so reordered or dropped chunks would show)."""
    return random.Random(size).randbytes(size)
