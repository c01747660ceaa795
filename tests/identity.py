"""Projects, users and tokens for tests, made through the identity API as an admin would.

``member_token(cloud, "alpha")`` makes project ``alpha`` and a user ``alpha-member``
with the ``member`` role on it (once per cloud), signs the user in and returns the
real, project-scoped token.
"""

from __future__ import annotations

from typing import Any

import requests

from ironbark import keystone

PASSWORD = "test-password-0123"


def _admin(cloud: Any) -> requests.Session:
    session = requests.Session()
    session.headers["X-Auth-Token"] = cloud.admin_token
    return session


def ensure_project(cloud: Any, name: str) -> str:
    admin, base = _admin(cloud), f"{cloud.api_url}/identity/v3"
    found = admin.get(f"{base}/projects", params={"name": name}, timeout=30).json()["projects"]
    if found:
        return str(found[0]["id"])
    r = admin.post(f"{base}/projects", json={"project": {"name": name}}, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["project"]["id"])


def ensure_user(cloud: Any, project: str, role: str = "member",
                user: str | None = None) -> tuple[str, str]:
    """(user name, user id) of a user with ``role`` on ``project`` (both made if needed)."""
    admin, base = _admin(cloud), f"{cloud.api_url}/identity/v3"
    project_id = ensure_project(cloud, project)
    name = user or f"{project}-{role}"
    found = admin.get(f"{base}/users", params={"name": name}, timeout=30).json()["users"]
    if found:
        user_id = found[0]["id"]
    else:
        r = admin.post(f"{base}/users", json={"user": {
            "name": name, "password": PASSWORD, "default_project_id": project_id}},
            timeout=30)
        assert r.status_code == 201, r.text
        user_id = r.json()["user"]["id"]
    roles = {r["name"]: r["id"] for r in
             admin.get(f"{base}/roles", timeout=30).json()["roles"]}
    r = admin.put(f"{base}/projects/{project_id}/users/{user_id}/roles/{roles[role]}",
                  timeout=30)
    assert r.status_code == 204, r.text
    return name, user_id


def member_token(cloud: Any, project: str, role: str = "member") -> str:
    cache: dict[tuple[str, str], str] = cloud.__dict__.setdefault("_test_tokens", {})
    if (project, role) not in cache:
        name, _ = ensure_user(cloud, project, role)
        cache[(project, role)], _ = keystone.password_token(cloud.api_url, name, PASSWORD,
                                                            project)
    return cache[(project, role)]


def project_id(cloud: Any, project: str) -> str:
    return ensure_project(cloud, project)
