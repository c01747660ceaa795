from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ironbark.cli import credentials
from ironbark.cli.credentials import (
    Credentials,
    CredentialsError,
    credentials_path,
    resolve,
    write_credentials,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real user environment leaks in: HOME and XDG point into tmp_path."""
    for name in ("IRONBARK_URL", "IRONBARK_TOKEN", "IRONBARK_CREDENTIALS", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_default_path_is_under_home_config(tmp_path: Path) -> None:
    assert credentials_path() == tmp_path / "home" / ".config" / "ironbark" / "credentials.json"


def test_xdg_config_home_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert credentials_path() == tmp_path / "xdg" / "ironbark" / "credentials.json"


def test_relative_xdg_config_home_is_ignored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    assert credentials_path() == tmp_path / "home" / ".config" / "ironbark" / "credentials.json"


def test_explicit_path_wins_over_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("IRONBARK_CREDENTIALS", str(tmp_path / "c.json"))
    assert credentials_path() == tmp_path / "c.json"


def test_write_creates_private_file_and_directories(tmp_path: Path) -> None:
    written = write_credentials("http://127.0.0.1:8774", "s3cret", "admin")
    assert written == credentials_path()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert json.loads(written.read_text()) == {
        "url": "http://127.0.0.1:8774", "token": "s3cret", "project": "admin",
    }


def test_write_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "d" / "creds.json"
    write_credentials("http://a", "one", "p", path=target)
    target.chmod(0o644)  # an old file with loose permissions is replaced, not reused
    assert write_credentials("http://b", "two", "p", path=target) == target
    assert json.loads(target.read_text())["token"] == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["creds.json"]


def test_options_win_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONBARK_URL", "http://env")
    monkeypatch.setenv("IRONBARK_TOKEN", "env-token")
    write_credentials("http://file", "file-token", "admin")
    assert resolve("http://opt", "opt-token") == Credentials("http://opt", "opt-token")


def test_environment_wins_over_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONBARK_URL", "http://env")
    monkeypatch.setenv("IRONBARK_TOKEN", "env-token")
    write_credentials("http://file", "file-token", "admin")
    assert resolve(None, None) == Credentials("http://env", "env-token")


def test_file_is_the_last_resort() -> None:
    write_credentials("http://file", "file-token", "admin")
    assert resolve(None, None) == Credentials("http://file", "file-token", "admin")


def test_file_read_from_ironbark_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "elsewhere.json"
    write_credentials("http://file", "file-token", "demo", path=path)
    monkeypatch.setenv("IRONBARK_CREDENTIALS", str(path))
    assert resolve(None, None).project == "demo"


def test_token_option_with_url_from_file() -> None:
    write_credentials("http://file", "file-token", "admin")
    assert resolve(None, "mine") == Credentials("http://file", "mine")


def test_file_token_used_for_the_same_url() -> None:
    write_credentials("http://file:8774", "file-token", "admin")
    assert resolve("http://file:8774/", None).token == "file-token"


def test_file_token_never_sent_to_another_url() -> None:
    write_credentials("http://file", "file-token", "admin")
    with pytest.raises(CredentialsError, match="no token for http://other"):
        resolve("http://other", None)


def test_nothing_found_tells_what_to_do() -> None:
    with pytest.raises(CredentialsError) as info:
        resolve(None, None)
    message = str(info.value)
    assert "ironbark up" in message
    assert "IRONBARK_URL" in message and "IRONBARK_TOKEN" in message


def test_broken_file_is_named(tmp_path: Path) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match=str(path)):
        resolve(None, None)


def test_file_without_token_is_rejected() -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"url": "http://file"}))
    with pytest.raises(CredentialsError, match="lacks"):
        credentials.read_credentials()


def test_repr_hides_the_token() -> None:
    assert "s3cret" not in repr(Credentials("http://x", "s3cret"))
