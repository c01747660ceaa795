"""The image store process killed (SIGKILL) in the middle of an upload, then restarted.

What must hold afterwards: the image is not active (recovery marks it killed), no
partial chunk is readable (every chunk file under the store decodes to its own
address, nothing is left staged), scrub finds the store clean, and a re-upload of
the same bytes succeeds and reads back identical.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from image_store.client import ImageStoreClient, ImageStoreClientError
from image_store.codec import decode

REPO = Path(__file__).resolve().parents[2]
TOKEN = "crash-test-token-0123456789"
MIB = 1024 * 1024
SIZE = 96 * MIB


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StoreProcess:
    """``ironbark-image-store`` (gunicorn) on ``root``, in its own process group."""

    def __init__(self, root: Path):
        self.root, self.port = root, _free_port()
        self.config = root / "ironbark.toml"
        self.config.write_text(
            f'data_dir = "{root}"\n[image_store]\nhost = "127.0.0.1"\nport = {self.port}\n'
            f'token = "{TOKEN}"\n[logging]\nlevel = "WARNING"\n')
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ImageStoreClient:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IRONBARK_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "image_store.main", "--config", str(self.config)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        client = ImageStoreClient(f"http://127.0.0.1:{self.port}", TOKEN, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, "the image store exited at start"
            try:
                client.info()
                return client
            except ImageStoreClientError:
                assert time.monotonic() < deadline, "the image store did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the master and its worker at once: nothing gets to clean up."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


@pytest.fixture
def store_process(tmp_path: Path) -> Iterator[StoreProcess]:
    proc = StoreProcess(tmp_path)
    yield proc
    proc.stop()


def image_bytes() -> bytes:
    """88 MiB of distinct, compressible data (hex text) then 8 MiB of zeros (a hole)."""
    text = b"".join(random.Random(i).randbytes(MIB // 2).hex().encode() for i in range(88))
    return text + bytes(8 * MIB)


def test_a_store_killed_mid_upload_keeps_nothing_partial_and_takes_the_upload_again(
        store_process: StoreProcess) -> None:
    data = image_bytes()
    assert len(data) == SIZE
    client = store_process.start()
    image = client.create(name="victim", disk_format="raw")
    sent = threading.Event()
    killed = threading.Event()

    def body() -> Iterator[bytes]:
        for offset in range(0, len(data), MIB):
            if offset == 48 * MIB:
                sent.set()
                killed.wait(timeout=30)
            yield data[offset:offset + MIB]

    errors: list[BaseException] = []

    def upload() -> None:
        try:
            client.upload(image["id"], body())
        except BaseException as exc:  # the connection dies with the store
            errors.append(exc)

    uploader = threading.Thread(target=upload)
    uploader.start()
    assert sent.wait(timeout=60), "the upload never got half-way"
    time.sleep(0.3)  # let the store chunk, stage and publish part of what it got
    store_process.kill()
    killed.set()
    uploader.join(timeout=30)
    assert errors, "an upload to a killed store cannot have succeeded"
    client.close()

    # Nothing half-written is visible, even before the store starts again.
    chunk_files = [p for p in (store_process.root / "images" / "chunks").rglob("*")
                   if p.is_file()]
    for path in chunk_files:
        decode(path.read_bytes(), path.name)  # raises CorruptChunk on a partial chunk
    staged_at_kill = [p for p in (store_process.root / "images").rglob("staging/**/*")
                      if p.is_file()]
    # The kill really caught an upload in flight: bytes published, or staged, or both.
    assert chunk_files or staged_at_kill

    client = store_process.start()
    try:
        after = client.get(image["id"])
        assert after["status"] == "killed", after
        staged = [p for p in (store_process.root / "images").rglob("staging/**/*")
                  if p.is_file()]
        assert staged == [], staged
        report = client.scrub()
        assert (report["corrupt"], report["missing"]) == ([], []), report

        again = client.create(name="victim, again", disk_format="raw")
        record = client.upload(again["id"], iter([data]))
        assert record["status"] == "active"
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        out = store_process.root / "out.raw"
        client.download_to(again["id"], out, record["sha256"])
        assert out.read_bytes() == data
        client.delete(image["id"])
        client.delete(again["id"])
        assert client.stats()["chunk_count"] == 0
    finally:
        client.close()
