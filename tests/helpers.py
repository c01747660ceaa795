"""A small HTTP client for tests of the native API: raw status codes, JSON bodies, waits.

Tests check status codes and error bodies exactly, so they talk HTTP directly rather
than through the CLI's client (which turns errors into exceptions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests


class Response:
    def __init__(self, raw: requests.Response):
        self.status = raw.status_code
        self.headers = raw.headers
        try:
            self.body: Any = raw.json() if raw.content else None
        except ValueError:  # a download's bytes
            self.body = raw.content

    def __repr__(self) -> str:
        return f"<{self.status} {self.body}>"


class Api:
    def __init__(self, url: str, token: str | None):
        self.url = url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> Response:
        return Response(self.session.get(self.url + path, params=params, timeout=30))

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return Response(self.session.post(self.url + path, json=body, timeout=30, **kwargs))

    def delete(self, path: str) -> Response:
        return Response(self.session.delete(self.url + path, timeout=30))

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return Response(self.session.put(self.url + path, json=body, timeout=30, **kwargs))

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return Response(self.session.patch(self.url + path, json=body, timeout=30, **kwargs))

    def raw(self, method: str, path: str, **kwargs: Any) -> Response:
        """Any request as given (bad JSON, odd headers), for the tests of bad input."""
        return Response(self.session.request(method, self.url + path, timeout=30, **kwargs))

    # --- servers ----------------------------------------------------------------------

    def create(self, name: str = "vm", flavor: str = "m1.tiny", image: str = "demo",
               **extra: Any) -> dict[str, Any]:
        r = self.post("/v1/servers", {"name": name, "flavor": flavor, "image": image, **extra})
        assert r.status == 202, r
        return r.body["server"]

    def server(self, server_id: str) -> dict[str, Any]:
        r = self.get(f"/v1/servers/{server_id}")
        assert r.status == 200, r
        return r.body["server"]

    def act(self, server_id: str, action: str, **extra: Any) -> Response:
        return self.post(f"/v1/servers/{server_id}/action", {"action": action, **extra})

    def wait(self, server_id: str, until: Callable[[dict[str, Any]], bool] | None = None,
             timeout: float = 20.0) -> dict[str, Any]:
        """Poll until ``until(server)`` (default: no task in flight and not BUILD)."""
        until = until or stable
        deadline = time.monotonic() + timeout
        while True:
            server = self.server(server_id)
            if until(server):
                return server
            if time.monotonic() > deadline:
                raise AssertionError(f"server {server_id} stuck: {server}")
            time.sleep(0.02)

    def wait_gone(self, server_id: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.get(f"/v1/servers/{server_id}").status != 404:
            if time.monotonic() > deadline:
                raise AssertionError(f"server {server_id} not deleted: "
                                     f"{self.get(f'/v1/servers/{server_id}')}")
            time.sleep(0.02)

    def boot(self, name: str = "vm", flavor: str = "m1.tiny", **extra: Any) -> dict[str, Any]:
        """Create a server and wait for it to settle (ACTIVE or ERROR)."""
        return self.wait(self.create(name, flavor, **extra)["id"])


def stable(server: dict[str, Any]) -> bool:
    return server["task_state"] is None and server["status"] != "BUILD"


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
