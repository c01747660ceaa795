"""Fixtures of the image store tests: a real store, its Flask app, and a real HTTP server."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from image_store import catalog
from image_store.backends.local import LocalBackend
from image_store.chunking import DEFAULT_POLICY, ChunkingPolicy
from image_store.client import ImageStoreClient
from image_store.service import create_app
from image_store.store import ImageStore
from ironbark.db import create_engine
from ironbark.wsgi import ThreadedServer

TOKEN = "test-service-token-0123456789"
MIB = 1024 * 1024


StoreFactory = Callable[..., ImageStore]


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[StoreFactory]:
    """Open stores on one data dir (local backend + SQLite catalog), closed afterwards.

    ``make_store(policy=..., compression_level=..., recover=...)``; opening a second
    store on the same dir is how a restart is simulated.
    """
    opened: list[ImageStore] = []
    root = tmp_path / "images"

    def make(policy: ChunkingPolicy = DEFAULT_POLICY, compression_level: int = 3,
             recover: bool = True, database_url: str | None = None) -> ImageStore:
        engine = create_engine(database_url or f"sqlite:///{root / 'catalog.db'}")
        catalog.migrate(engine)
        new = ImageStore(engine, LocalBackend(root), policy, compression_level,
                         recover=recover)
        opened.append(new)
        return new

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store: StoreFactory) -> ImageStore:
    """A ready store on a temp dir: local backend, SQLite catalog, default policy."""
    return make_store()


@pytest.fixture
def app(store: ImageStore) -> Flask:
    return create_app(store, TOKEN)


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


@pytest.fixture
def api(server: ThreadedServer) -> Iterator[Any]:
    """Plain HTTP requests to the server (tests/unit/image_store/http_util.Api)."""
    from .http_util import Api

    api = Api(server.url)
    yield api
    api.session.close()


# -- ``ironbark-image-store serve``, under gunicorn (the production server) -------------

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="package")
def gunicorn_store(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[ImageStoreClient, Path, int]]:
    """``ironbark-image-store serve`` as a subprocess: (client, data dir, port)."""
    root = tmp_path_factory.mktemp("gunicorn")
    port = _free_port()
    config = root / "ironbark.toml"
    config.write_text(f'data_dir = "{root}"\n[image_store]\nhost = "127.0.0.1"\n'
                      f'port = {port}\ntoken = "{TOKEN}"\n[logging]\nlevel = "WARNING"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONBARK_")}
    process = subprocess.Popen([sys.executable, "-m", "image_store.main", "--config",
                                str(config)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = ImageStoreClient(f"http://127.0.0.1:{port}", TOKEN, timeout=10)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore
            try:
                client.info()
                break
            except Exception:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield client, root, port
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


def chunk_files(store: ImageStore) -> list[Path]:
    """The published chunk files of a store on the local backend."""
    assert isinstance(store.backend, LocalBackend)
    return sorted(p for p in (store.backend.root / "chunks").rglob("*") if p.is_file())


def staged_files(store: ImageStore) -> list[Path]:
    """Staging leftovers: none may outlive an operation."""
    assert isinstance(store.backend, LocalBackend)
    return sorted(p for p in (store.backend.root / "staging").rglob("*") if p.is_file())


def payload(size: int) -> bytes:
    """Deterministic, non-repeating bytes (so reordered or dropped chunks would show)."""
    return random.Random(size).randbytes(size)
