"""OpenStack Placement served by gunicorn on 127.0.0.1, on a fresh MariaDB database.

Each ``PlacementServer`` creates its own database, runs ``placement-manage db sync`` on
it before starting, and drops it when it stops: every run begins from the same empty
state, so runs are comparable, and two benchmarks at once never touch each other's data.
gunicorn binds port 0 and we read the port it got from its log, so there is no window
in which another process could take a port we picked.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

import requests

from tests.perf.placement_ref import config, install, mariadb

# Two sync workers for two cores. A Placement request is mostly Python on the CPU
# (building the candidates query, then turning up to 1,000 rows into JSON) plus MariaDB
# time, and both share the same two cores with the benchmark's client: more processes
# than cores would only time-slice them, fewer would leave a core idle while one
# worker waits on MariaDB. Pass ``workers=`` to measure other choices.
DEFAULT_WORKERS = 2

_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


class PlacementError(RuntimeError):
    """Placement could not be prepared or started; the message carries its log."""


class PlacementServer:
    """Context manager: on entry a running Placement API at ``url`` on an empty database;
    on exit the server is stopped and its database dropped. Its directory (conf, gunicorn
    and Placement logs) is removed after a clean run and kept after a failure."""

    def __init__(self, workers: int = DEFAULT_WORKERS, start_timeout: float = 120.0) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.database = f"{config.DB_PREFIX}{uuid.uuid4().hex[:8]}"
        self.run_dir = config.RUN_DIR / self.database
        self.start_timeout = start_timeout
        self.url = ""
        self.pid = 0
        self.sync_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.run_dir / "gunicorn.log"

    def __enter__(self) -> PlacementServer:
        if not install.venv_ready():
            raise PlacementError(f"no Placement virtualenv at {config.VENV}: run "
                                 "`python -m tests.perf.placement_ref.install`")
        mariadb.start()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            conf = self._write_conf()
            mariadb.create_database(self.database)
            started = time.perf_counter()
            sync = subprocess.run(
                [str(config.VENV / "bin" / "placement-manage"), "--config-file", str(conf),
                 "db", "sync"], capture_output=True, text=True, timeout=600)
            if sync.returncode != 0:
                raise PlacementError(f"placement-manage db sync failed:\n"
                                     f"{sync.stderr[-3000:]}")
            self.sync_seconds = time.perf_counter() - started
            self._start(conf)
        except BaseException:
            self._clean_up(failed=True)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._clean_up(failed=exc is not None)

    def _clean_up(self, failed: bool) -> None:
        self.stop()
        mariadb.drop_database(self.database)
        if failed:
            print(f"placement_ref: logs kept in {self.run_dir}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _write_conf(self) -> Path:
        conf = self.run_dir / "placement.conf"
        conf.write_text(
            "[DEFAULT]\n"
            "debug = false\n"
            f"log_file = {self.run_dir / 'placement.log'}\n"
            "[api]\n"
            # No Keystone here: noauth2 takes the token as the user ('admin' is admin).
            "auth_strategy = noauth2\n"
            "[placement_database]\n"
            f"connection = {config.database_url(self.database)}\n")
        return conf

    def _start(self, conf: Path) -> None:
        env = dict(os.environ, OS_PLACEMENT_CONFIG_DIR=str(conf.parent))
        env.pop("VIRTUAL_ENV", None)
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [str(config.VENV / "bin" / "gunicorn"), "--workers", str(self.workers),
                 "--bind", "127.0.0.1:0", "--timeout", "120", "--error-logfile", "-",
                 "--no-control-socket",  # gunicorn 23+: one per user, not needed
                 "placement.wsgi.api:application"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=self.run_dir)
        self.pid = self._process.pid
        deadline = time.monotonic() + self.start_timeout
        port = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PlacementError(f"gunicorn exited with {self._process.returncode} "
                                     f"while starting Placement:\n{self._tail()}")
            if port is None:
                match = _LISTENING.search(self._log.read_text(errors="replace"))
                port = int(match.group(1)) if match else None
            if port is not None and self._answers(f"http://127.0.0.1:{port}"):
                self.url = f"http://127.0.0.1:{port}"
                return
            time.sleep(0.2)
        raise PlacementError(f"Placement did not answer within {self.start_timeout:.0f} s:\n"
                             + self._tail())

    @staticmethod
    def _answers(url: str) -> bool:
        """The version document at / needs no token and touches no table, but is served
        by a worker, so it proves the application was loaded."""
        try:
            return requests.get(url + "/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop, workers included
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def _tail(self, lines: int = 40) -> str:
        try:
            text = self._log.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text[-lines:])
