"""Process plumbing: every tier refuses a bad configuration at once, and stops on a signal."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironbark import runtime

SCRIPTS = ["ironbark-cloud-manager", "ironbark-group-manager", "ironbark-instance-manager",
           "ironbark-image-store"]
BIN = Path(sys.executable).parent
LIMIT = 10.0  # seconds: a tier that refuses its configuration does so in well under this


def _environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONBARK_")}
    env["IRONBARK_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def _run_all(tmp_path: Path, *args: str, **extra: str
             ) -> dict[str, tuple[int, str, str, float, Path]]:
    """Start every tier at once with the same bad setting; return how each ended."""
    started = {}
    for script in SCRIPTS:
        path = BIN / script
        assert path.is_file(), f"{path} is not installed (pip install -e .)"
        data_dir = tmp_path / script
        proc = subprocess.Popen([str(path), *args], env=_environment(data_dir, **extra),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
        started[script] = (proc, time.monotonic(), data_dir)
    results = {}
    try:
        for script, (proc, t0, data_dir) in started.items():
            out, err = proc.communicate(timeout=LIMIT * 3)
            results[script] = (proc.returncode, out, err, time.monotonic() - t0, data_dir)
    finally:
        for proc, _, _ in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.parametrize(
    ("env", "value", "option"),
    [
        ("IRONBARK_GROUP_CPU_ALLOCATION_RATIO", "-1", "group.cpu_allocation_ratio"),
        ("IRONBARK_API_PORT", "notaport", "api.port"),
    ],
)
def test_every_tier_exits_2_naming_a_bad_option(
    tmp_path: Path, env: str, value: str, option: str
) -> None:
    for script, (code, out, err, took, data_dir) in _run_all(tmp_path, **{env: value}).items():
        assert code == 2, f"{script} exited {code}: {err}"
        assert option in err, f"{script}: {err}"
        assert env in err, f"{script}: {err}"
        assert "Traceback" not in err, f"{script}: {err}"
        assert out == ""
        assert took < LIMIT, f"{script} took {took:.1f} s to refuse its configuration"
        assert not data_dir.exists(), f"{script} started something in {data_dir}"


def test_every_tier_exits_2_naming_a_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    for script, (code, _, err, _, data_dir) in _run_all(
            tmp_path, "--config", str(missing)).items():
        assert code == 2, f"{script} exited {code}: {err}"
        assert str(missing) in err, f"{script}: {err}"
        assert not data_dir.exists()


def test_every_tier_exits_2_on_a_dict_option_that_is_not_json(tmp_path: Path) -> None:
    """IRONBARK_GROUP_HOST_OVERRIDES takes JSON; a plain word must be refused like any other
    bad value (status 2, naming the option), not crash with a traceback."""
    for script, (code, _, err, _, data_dir) in _run_all(
            tmp_path, IRONBARK_GROUP_HOST_OVERRIDES="hv1").items():
        assert code == 2, f"{script} exited {code}: {err[-500:]}"
        assert "IRONBARK_GROUP_HOST_OVERRIDES" in err, f"{script}: {err[-500:]}"
        assert "Traceback" not in err, f"{script}: {err[-500:]}"
        assert not data_dir.exists()


# --- in process ------------------------------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IRONBARK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_load_config_or_exit_prints_the_error_and_exits_2(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IRONBARK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IRONBARK_GROUP_SCHEDULER_POLICY", "random")
    with pytest.raises(SystemExit) as info:
        runtime.load_config_or_exit(None)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("ironbark: ")
    assert "group.scheduler_policy" in captured.err
    assert "IRONBARK_GROUP_SCHEDULER_POLICY" in captured.err
    assert not (tmp_path / "data").exists()


def test_load_config_or_exit_loads_fills_secrets_and_sets_up_logging(
    clean_environment: None, restore_logging: None, tmp_path: Path,
) -> None:
    log_file = tmp_path / "logs" / "ironbark.log"
    path = tmp_path / "c.toml"
    path.write_text(f'[logging]\nlevel = "WARNING"\nfile = "{log_file}"\n')
    cfg = runtime.load_config_or_exit(path, data_dir=tmp_path / "data",
                                      group={"name": "rack4"})
    assert cfg.group.name == "rack4"
    assert cfg.identity.admin_password and cfg.image_store.token
    assert (tmp_path / "data" / "secrets.toml").is_file()
    assert logging.getLogger().level == logging.WARNING
    logging.getLogger("ironbark.test").warning("hello from the runtime test")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert "hello from the runtime test" in log_file.read_text()


_WAITER = """
import signal, sys, threading, time
from ironbark.runtime import wait_for_shutdown

def announce():
    while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        time.sleep(0.005)
    print("ready", flush=True)

threading.Thread(target=announce, daemon=True).start()
wait_for_shutdown()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_wait_for_shutdown_returns_on_a_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WAITER], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3])
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=LIMIT)
        assert proc.returncode == 0, err
        assert out.strip() == "stopped"
        assert time.monotonic() - t0 < 3.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
