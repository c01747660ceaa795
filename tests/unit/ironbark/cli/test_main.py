from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ironbark.cli.main import main
from tests.unit.ironbark.cli.test_credentials import no_user_files

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in ("IRONBARK_URL", "IRONBARK_TOKEN", "XDG_CONFIG_HOME", "OS_CLOUD",
                 "OS_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "none.yaml"))
    no_user_files(monkeypatch)
    return CliRunner()


def test_help_lists_the_command_groups(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("server", "flavor", "image", "host", "group", "up", "down"):
        assert command in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("ironbark ")


def test_missing_flavor_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["server", "create", "--image", "demo", "web1"])
    assert result.exit_code == 2
    assert "Missing option '--flavor'" in result.output


def test_bad_format_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["flavor", "list", "-f", "xml"])
    assert result.exit_code == 2
    assert "'xml' is not one of 'table', 'json'" in result.output


def test_bad_status_and_timeout_are_usage_errors(runner: CliRunner) -> None:
    assert runner.invoke(main, ["server", "list", "--status", "RUNNING"]).exit_code == 2
    assert runner.invoke(main, ["server", "stop", "--timeout", "0", "x"]).exit_code == 2


def test_delete_needs_a_server(runner: CliRunner) -> None:
    assert runner.invoke(main, ["server", "delete"]).exit_code == 2


@pytest.mark.parametrize("args", [
    ["server", "list"],
    ["server", "show", "web1"],
    ["server", "delete", "web1", "web2"],
    ["server", "reboot", "--hard", "web1"],
    ["flavor", "list", "-f", "json"],
    ["host", "list"],
])
def test_unreachable_url_exits_1_with_cannot_reach(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(main, ["--url", UNREACHABLE, "--token", "t", *args])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: cannot reach the Ironbark API at {UNREACHABLE}: ")
    assert "(is `ironbark up` running?)" in result.stderr


def test_unreachable_url_from_environment(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IRONBARK_URL", UNREACHABLE)
    monkeypatch.setenv("IRONBARK_TOKEN", "t")
    result = runner.invoke(main, ["image", "list"])
    assert result.exit_code == 1 and "cannot reach" in result.stderr


def test_no_credentials_exits_1_with_advice(runner: CliRunner) -> None:
    result = runner.invoke(main, ["server", "list"])
    assert result.exit_code == 1
    assert "ironbark up" in result.stderr and "OS_AUTH_URL" in result.stderr


def test_help_needs_no_credentials(runner: CliRunner) -> None:
    assert runner.invoke(main, ["server", "create", "--help"]).exit_code == 0
    assert runner.invoke(main, ["up", "--help"]).exit_code == 0


class FakeAllInOne:
    """Records what `up`/`down` delegate; the real module runs a whole cloud."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def run(self, **kwargs: object) -> int:
        self.calls.append(("run", kwargs))
        return 3

    def stop_running(self, **kwargs: object) -> int:
        self.calls.append(("stop_running", kwargs))
        return 0


@pytest.fixture
def allinone(monkeypatch: pytest.MonkeyPatch) -> FakeAllInOne:
    import sys

    import ironbark

    fake = FakeAllInOne()
    monkeypatch.setitem(sys.modules, "ironbark.allinone", fake)
    monkeypatch.setattr(ironbark, "allinone", fake, raising=False)
    return fake


def test_up_delegates_with_defaults(runner: CliRunner, allinone: FakeAllInOne) -> None:
    result = runner.invoke(main, ["up"])
    assert result.exit_code == 3
    assert allinone.calls == [
        ("run", {"hosts": None, "port": 8774, "data_dir": None, "config_path": None,
                 "hypervisor": None})
    ]


def test_up_passes_its_options(
    runner: CliRunner, allinone: FakeAllInOne, tmp_path: Path
) -> None:
    config = tmp_path / "ironbark.toml"
    config.write_text("")
    args = ["up", "--hosts", "4", "--port", "9000", "--data-dir", str(tmp_path / "d"),
            "--config", str(config)]
    assert runner.invoke(main, args).exit_code == 3
    assert allinone.calls == [
        ("run", {"hosts": 4, "port": 9000, "data_dir": tmp_path / "d", "config_path": config,
                 "hypervisor": None})
    ]


def test_up_rejects_zero_hosts(runner: CliRunner, allinone: FakeAllInOne) -> None:
    assert runner.invoke(main, ["up", "--hosts", "0"]).exit_code == 2
    assert allinone.calls == []


def test_down_delegates(runner: CliRunner, allinone: FakeAllInOne, tmp_path: Path) -> None:
    assert runner.invoke(main, ["down", "--data-dir", str(tmp_path)]).exit_code == 0
    assert allinone.calls == [("stop_running", {"data_dir": tmp_path})]


def test_cli_import_does_not_load_server_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ironbark.cli.main; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'sqlalchemy', 'kombu', 'libvirt', 'cloud_manager', 'group_manager', "
        "'instance_manager', 'message_bus') or m == 'ironbark.allinone']; "
        "print(bad); sys.exit(bool(bad))"
    )
    root = Path(__file__).resolve().parents[4]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
