"""Sign in to a cloud's identity service, and the ``clouds.yaml`` entry that does it.

``ironbark up`` writes an entry named ``ironbark`` (the admin) to the file
openstacksdk and the ``openstack`` CLI read: ``$OS_CLIENT_CONFIG_FILE`` when set,
else ``~/.config/openstack/clouds.yaml``. Other entries in the file are kept. The
file holds a password, so it is created 0600 and replaced atomically.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import requests
import yaml

from ironbark.config import IdentityOptions

CLOUD_NAME = "ironbark"


def auth_url(api_url: str) -> str:
    return api_url.rstrip("/") + "/identity"


def password_token(api_url: str, user: str, password: str, project: str | None,
                   domain: str = "Default", timeout: float = 30.0) -> tuple[str, dict[str, Any]]:
    """A token (scoped to ``project`` when given) and the token's body."""
    scope: Any = ({"project": {"name": project, "domain": {"name": domain}}}
                  if project is not None else "unscoped")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": domain}, "password": password}}}, "scope": scope}}
    response = requests.post(f"{auth_url(api_url)}/v3/auth/tokens", json=body, timeout=timeout)
    if response.status_code != 201:
        raise PermissionError(f"sign-in as {user} failed: HTTP {response.status_code} "
                              f"{response.text[:300]}")
    return response.headers["X-Subject-Token"], response.json()["token"]


def first_admin_token(api_url: str, identity: IdentityOptions) -> str:
    """A token of the cloud's first admin, from ``[identity]``, on its admin project."""
    assert identity.admin_password is not None
    token, _ = password_token(api_url, identity.admin_user, identity.admin_password,
                              identity.admin_project)
    return token


def clouds_yaml_path() -> Path:
    explicit = os.environ.get("OS_CLIENT_CONFIG_FILE")
    if explicit:
        return Path(explicit).expanduser()
    return Path.home() / ".config" / "openstack" / "clouds.yaml"


def cloud_entry(api_url: str, user: str, password: str, project: str,
                region: str) -> dict[str, Any]:
    return {"auth": {"auth_url": auth_url(api_url), "username": user, "password": password,
                     "project_name": project, "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "region_name": region, "interface": "public", "identity_api_version": 3}


def write_cloud(entry: dict[str, Any], name: str = CLOUD_NAME,
                path: Path | None = None) -> Path:
    target = path or clouds_yaml_path()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data: dict[str, Any] = {}
    if target.exists():
        loaded = yaml.safe_load(target.read_text()) or {}
        if isinstance(loaded, dict):
            data = loaded
    clouds = data.get("clouds") if isinstance(data.get("clouds"), dict) else {}
    data["clouds"] = {**clouds, name: entry}
    fd, tmp = tempfile.mkstemp(prefix=".clouds-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
