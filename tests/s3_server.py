"""A real S3-API server for the tests: moto's standalone server as a subprocess.

No production S3 server installs from this machine's registries (MinIO is not in
Debian, PyPI or npm; Debian's radosgw needs a Ceph cluster), so the backends are
tested against ``moto_server`` (package ``moto[server]``): a separate process
speaking S3 over HTTP, reached exactly as a real one would be through boto3.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


class S3ServerError(RuntimeError):
    """The S3 server did not start (the message carries its output)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:  # any HTTP answer means it is serving
        return True
    except OSError:
        return False


class S3Server:
    """``moto_server`` on 127.0.0.1 and a free port; ``url`` once :meth:`start` returns."""

    def __init__(self, executable: Path | None = None) -> None:
        self.executable = executable or Path(sys.executable).parent / "moto_server"
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        # Output goes to a file, not a pipe: moto logs every request and a full pipe
        # would stall the server.
        self._log_dir = tempfile.mkdtemp(prefix="moto-")
        self._log = Path(self._log_dir) / "moto_server.log"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> S3Server:
        if not self.executable.exists():
            raise S3ServerError(f"{self.executable} is missing: pip install 'moto[server]' "
                                f"(the project's test extra)")
        last = ""
        for _ in range(attempts):  # another process may grab the free port first
            port = _free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
            with open(self._log, "ab") as log:  # the child keeps its own copy of the fd
                self._proc = subprocess.Popen(
                    [str(self.executable), "-H", "127.0.0.1", "-p", str(port)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._proc.poll() is None:
                if _answers(url):
                    self.url = url
                    return self
                time.sleep(0.05)
            last = self._output()
            self.stop()
        raise S3ServerError(f"moto_server did not start: {last[-2000:]}")

    def _output(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
