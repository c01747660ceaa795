"""How the CLI finds its endpoint and token: an explicit token, or a sign-in from
clouds.yaml / OS_* variables against a real cloud's identity service."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import requests
import yaml

from ironbark import keystone
from ironbark.allinone import AllInOne
from ironbark.cli.credentials import CredentialsError, resolve


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real user environment leaks in: HOME and clouds.yaml point into tmp_path."""
    for name in ("IRONBARK_URL", "IRONBARK_TOKEN", "OS_CLOUD", "OS_AUTH_URL", "OS_USERNAME",
                 "OS_PASSWORD", "OS_PROJECT_NAME", "OS_USER_DOMAIN_NAME",
                 "OS_PROJECT_DOMAIN_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "clouds.yaml"))
    no_user_files(monkeypatch)
    return tmp_path


def no_user_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """openstacksdk fixes its search path (~/.config/openstack, /etc/openstack...) when
    first imported, under the real HOME: this machine's own clouds.yaml must not count."""
    from openstack.config import loader

    monkeypatch.setattr(loader, "CONFIG_FILES", [])
    monkeypatch.setattr(loader, "SECURE_FILES", [])


def _write(cloud: AllInOne, password: str | None = None, name: str = "ironbark") -> Path:
    identity = cloud.config.identity
    assert identity.admin_password is not None
    return keystone.write_cloud(keystone.cloud_entry(
        cloud.api_url, identity.admin_user, password or identity.admin_password,
        identity.admin_project, identity.region), name=name)


def test_an_explicit_token_needs_a_url() -> None:
    assert resolve("http://x:1", "tok").token == "tok"
    with pytest.raises(CredentialsError, match="--url"):
        resolve(None, "tok")


def test_without_any_credentials_the_error_says_what_to_do() -> None:
    with pytest.raises(CredentialsError, match="ironbark up"):
        resolve(None, None)


def test_the_ironbark_entry_signs_in_and_finds_the_native_api(cloud: AllInOne,
                                                              tmp_path: Path) -> None:
    path = _write(cloud)
    assert path == tmp_path / "clouds.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = resolve(None, None)
    assert creds.url == cloud.api_url + "/v1" and creds.project == "admin"
    r = requests.get(creds.url + "/servers", headers={"Authorization": f"Bearer {creds.token}"},
                     timeout=30)
    assert r.status_code == 200, r.text
    assert "***" in repr(creds) and creds.token not in repr(creds)


def test_os_cloud_picks_another_entry_and_other_entries_are_kept(
        cloud: AllInOne, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(cloud, name="other")
    _write(cloud, password="wrong-password", name="ironbark")
    clouds = yaml.safe_load(keystone.clouds_yaml_path().read_text())["clouds"]
    assert sorted(clouds) == ["ironbark", "other"]
    with pytest.raises(CredentialsError, match="refused"):
        resolve(None, None)
    assert resolve(None, None, "other").project == "admin"
    monkeypatch.setenv("OS_CLOUD", "other")
    assert resolve(None, None).url.endswith("/v1")


def test_os_variables_sign_in_without_a_file(cloud: AllInOne,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    identity = cloud.config.identity
    assert identity.admin_password is not None
    for name, value in (("OS_AUTH_URL", keystone.auth_url(cloud.api_url)),
                        ("OS_USERNAME", "admin"), ("OS_PASSWORD", identity.admin_password),
                        ("OS_PROJECT_NAME", "admin"), ("OS_USER_DOMAIN_NAME", "Default"),
                        ("OS_PROJECT_DOMAIN_NAME", "Default")):
        monkeypatch.setenv(name, value)
    assert resolve(None, None).url == cloud.api_url + "/v1"
