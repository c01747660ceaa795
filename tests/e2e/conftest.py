"""Fixtures of the end-to-end tests: the installed ``ironbark`` command, run as a user would.

Every cloud is a real ``ironbark up`` subprocess with a sandbox of its own: a private
``HOME``, XDG directories and clouds.yaml under the test's temporary directory,
a free port, and no ``IRONBARK_`` variable from the caller's environment (an unknown
one is a start-up error, and a stray ``IRONBARK_URL`` would point the CLI elsewhere).
The CLI is run with the same environment, so it finds the clouds.yaml entry ``ironbark up``
wrote exactly as it would on a workstation.

``cloud`` and ``make_cloud`` here replace, for this directory only, the in-process
fixtures of the same names in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

BIN = Path(sys.executable).parent
IRONBARK = BIN / "ironbark"
READY_LINE = "Press Ctrl-C to stop."
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 60.0

# Short intervals so hosts and the group summary are seen quickly.
FAST_ENV = {
    "IRONBARK_HOST_REPORT_INTERVAL": "0.5",
    "IRONBARK_GROUP_SUMMARY_INTERVAL": "0.5",
    "IRONBARK_BUS_POLLING_INTERVAL": "0.001",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sandbox_env(root: Path, **extra: str) -> dict[str, str]:
    """The caller's environment minus every IRONBARK_ variable, with homes under ``root``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IRONBARK_", "OS_"))}
    home, config_home, data_home = root / "home", root / "xdg-config", root / "xdg-data"
    for d in (home, config_home, data_home):
        d.mkdir(parents=True, exist_ok=True)
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(config_home),
        "XDG_DATA_HOME": str(data_home),
        "OS_CLIENT_CONFIG_FILE": str(root / "clouds.yaml"),
        **FAST_ENV,
        **extra,
    })
    return env


class Result(NamedTuple):
    """One finished ``ironbark`` command."""

    code: int
    out: str
    err: str

    def describe(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def run_ironbark(env: dict[str, str], *args: str, timeout: float = COMMAND_TIMEOUT) -> Result:
    """Run ``ironbark ARGS...``; returns (exit code, stdout, stderr)."""
    try:
        proc = subprocess.run([str(IRONBARK), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"`ironbark {' '.join(args)}` did not finish within {timeout:g} s\n"
                    f"--- stdout\n{out}\n--- stderr\n{err}")
    return Result(proc.returncode, proc.stdout, proc.stderr)


class Cloud:
    """One ``ironbark up`` process and the sandbox the CLI talks to it from."""

    def __init__(self, root: Path, hosts: int = 3, data_dir: Path | None = None,
                 port: int | None = None) -> None:
        self.root, self.hosts = root, hosts
        self.data_dir = data_dir or root / "data"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = sandbox_env(root)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # --- the process --------------------------------------------------------------------

    def up_args(self, port: int | None = None) -> list[str]:
        return ["up", "--hosts", str(self.hosts), "--port", str(port or self.port),
                "--data-dir", str(self.data_dir)]

    def start(self) -> Cloud:
        assert IRONBARK.exists(), f"the ironbark command is not installed next to {sys.executable}"
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.stdout = self.root / f"up{self.starts}.stdout"
        self.stderr = self.root / f"up{self.starts}.stderr"
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen([str(IRONBARK), *self.up_args()], env=self.env,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self._wait_ready()
        return self

    def output(self) -> str:
        def tail(path: Path) -> str:
            text = path.read_text(errors="replace") if path.exists() else ""
            return text[-8000:]

        return f"--- stdout of ironbark up\n{tail(self.stdout)}\n" \
               f"--- stderr of ironbark up (tail)\n{tail(self.stderr)}"

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while READY_LINE not in self.stdout.read_text(errors="replace"):
            code = self.proc.poll()
            if code is not None:
                pytest.fail(f"`ironbark {' '.join(self.up_args())}` exited with {code} "
                            f"before it was ready\n{self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"`ironbark up` did not print {READY_LINE!r} within "
                            f"{READY_TIMEOUT:g} s\n{self.output()}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit status of ``ironbark up``, which must come within ``timeout``."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"`ironbark up` did not exit within {timeout:g} s\n{self.output()}")

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, then the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.wait_exit()

    def state(self) -> str:
        """How ``ironbark up`` looks from outside, for failure messages."""
        assert self.proc is not None
        try:
            letter = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            letter = "gone"
        what = {"Z": "exited (a zombie: not yet reaped by its parent, this test)"}
        pid_file = self.data_dir / "ironbark.pid"
        return (f"ironbark up (pid {self.proc.pid}) is {what.get(letter, letter)}; "
                f"{pid_file} {'exists' if pid_file.exists() else 'is gone'}")

    def down(self, timeout: float = STOP_TIMEOUT) -> Result:
        """``ironbark down --data-dir D``, which must return within ``timeout``."""
        args = ["down", "--data-dir", str(self.data_dir)]
        try:
            proc = subprocess.run([str(IRONBARK), *args], env=self.env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`ironbark {' '.join(args)}` did not return within {timeout:g} s; "
                        f"{self.state()}\n{self.output()}")
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def kill(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=30)

    # --- the CLI ------------------------------------------------------------------------

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> Result:
        return run_ironbark(self.env, *args, timeout=timeout)

    def ok(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> Result:
        """Run a command that must succeed."""
        result = self.run(*args, timeout=timeout)
        assert result.code == 0, f"`ironbark {' '.join(args)}` failed: {result.describe()}"
        return result


def stop_cleanly(cloud: Cloud) -> None:
    """Ctrl-C a running cloud; it must exit with status 0."""
    if not cloud.running():
        return
    try:
        code = cloud.interrupt()
    finally:
        cloud.kill()
    assert code == 0, f"`ironbark up` exited with {code} after Ctrl-C\n{cloud.output()}"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """One three-host ``ironbark up`` shared by the module's tests."""
    running = Cloud(tmp_path_factory.mktemp("e2e-cloud")).start()
    try:
        yield running
    finally:
        stop_cleanly(running)


CloudFactory = Callable[..., Cloud]


@pytest.fixture
def make_cloud(tmp_path: Path) -> Iterator[CloudFactory]:
    """Clouds of this test's own (own sandbox, data dir and port), not yet started."""
    made: list[Cloud] = []

    def make(**kwargs: object) -> Cloud:
        new = Cloud(tmp_path / f"cloud{len(made)}", **kwargs)  # type: ignore[arg-type]
        made.append(new)
        return new

    yield make
    try:
        for each in made:
            stop_cleanly(each)
    finally:
        for each in made:
            each.kill()
