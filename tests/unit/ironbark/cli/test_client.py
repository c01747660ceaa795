from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from ironbark.cli.client import ApiClient, ApiError, is_uuid

from .samples import SERVER, SERVER_ID, server


def response(status: int, body: bytes, content_type: str = "application/json") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    resp.headers["Content-Type"] = content_type
    resp.headers["X-Openstack-Request-Id"] = "req-1"
    resp.reason = "Conflict"
    return resp


def test_error_from_json_body() -> None:
    body = {"error": {"code": 400, "title": "Bad Request",
                      "message": "field 'flavor': no flavor named 'm1.huge'", "field": "flavor"}}
    err = ApiError.from_response(response(400, json.dumps(body).encode()))
    assert (err.status, err.message, err.field) == (400, body["error"]["message"], "flavor")
    assert err.request_id == "req-1"


def test_error_falls_back_to_raw_text() -> None:
    err = ApiError.from_response(response(502, b"<h1>Bad gateway</h1>\n", "text/html"))
    assert (err.status, err.message, err.field) == (502, "<h1>Bad gateway</h1>", None)


def test_error_with_empty_body_uses_reason() -> None:
    assert ApiError.from_response(response(409, b"")).message == "Conflict"


def test_uuid_detection() -> None:
    assert is_uuid(SERVER_ID) and is_uuid(SERVER_ID.upper()) and is_uuid(SERVER_ID.replace("-", ""))
    assert not is_uuid("web1") and not is_uuid(SERVER_ID + "0")


def test_endpoint_normalisation_and_auth_header() -> None:
    client = ApiClient("http://127.0.0.1:8774/v1/", "tok")
    assert client.url == "http://127.0.0.1:8774"
    assert client.session.headers["Authorization"] == "Bearer tok"


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        ApiClient("http://x", "t").server_action(SERVER_ID, "explode")


def test_unreachable_endpoint() -> None:
    client = ApiClient("http://127.0.0.1:9", "tok", timeout=5)
    with pytest.raises(ApiError) as info:
        client.list_flavors()
    assert info.value.status == 0
    assert info.value.message.startswith("cannot reach the Ironbark API at http://127.0.0.1:9: ")
    assert "(is `ironbark up` running?)" in info.value.message


class Servers:
    """In-memory stand-in for the two client methods find_server uses."""

    def __init__(self, servers: list[dict[str, Any]]) -> None:
        self.servers = servers
        self.calls: list[tuple[str, Any]] = []

    def get_server(self, server_id: str) -> dict[str, Any]:
        self.calls.append(("get", server_id))
        for s in self.servers:
            if s["id"] == server_id:
                return s
        raise ApiError(404, f"no server {server_id}")

    def list_servers(self, status: str | None = None, name: str | None = None,
                     all_projects: bool = False) -> list[dict[str, Any]]:
        self.calls.append(("list", name))
        # Like a loose server-side filter: substring match, which find_server must tighten.
        return [s for s in self.servers if name is None or name in s["name"]]


def find(stand_in: Servers, ref: str) -> dict[str, Any]:
    # find_server only uses get_server/list_servers, so run it against the stand-in.
    return ApiClient.find_server(stand_in, ref)  # type: ignore[arg-type]


def test_find_by_id_fetches_directly() -> None:
    stand_in = Servers([SERVER])
    assert find(stand_in, SERVER_ID) is SERVER
    assert stand_in.calls == [("get", SERVER_ID)]


def test_find_by_missing_id_is_a_404() -> None:
    with pytest.raises(ApiError) as info:
        find(Servers([]), SERVER_ID)
    assert info.value.status == 404


def test_find_by_unique_name() -> None:
    stand_in = Servers([SERVER, server(id="other", name="web10")])
    assert find(stand_in, "web1") is SERVER
    assert stand_in.calls == [("list", "web1")]


def test_find_by_unknown_name() -> None:
    with pytest.raises(ApiError, match="no server named 'db'") as info:
        find(Servers([SERVER]), "db")
    assert info.value.status == 404


def test_find_by_ambiguous_name() -> None:
    stand_in = Servers([SERVER, server(id="second")])
    with pytest.raises(ApiError, match="2 servers are named 'web1'; use the id"):
        find(stand_in, "web1")
