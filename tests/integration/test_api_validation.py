"""Bad input to the native API: 400 naming the field, and nothing created."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from ironbark.allinone import AllInOne
from tests.helpers import Api

GOOD_SERVER = {"name": "vm", "flavor": "m1.tiny", "image": "demo"}
GOOD_FLAVOR = {"name": "f1", "vcpus": 1, "memory_mb": 512, "disk_gb": 1}


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


BAD_SERVERS = [
    (_without(GOOD_SERVER, "name"), "name"),
    ({**GOOD_SERVER, "name": ""}, "name"),
    ({**GOOD_SERVER, "name": "   "}, "name"),
    ({**GOOD_SERVER, "name": "x" * 256}, "name"),
    ({**GOOD_SERVER, "name": 42}, "name"),
    (_without(GOOD_SERVER, "flavor"), "flavor"),
    ({**GOOD_SERVER, "flavor": "m1.huge"}, "flavor"),
    ({**GOOD_SERVER, "flavor": 2}, "flavor"),
    (_without(GOOD_SERVER, "image"), "image"),
    ({**GOOD_SERVER, "image": "no-such-image"}, "image"),
    ({**GOOD_SERVER, "image": None}, "image"),
    ({**GOOD_SERVER, "group": "no-such-group"}, "group"),
    ({**GOOD_SERVER, "group": "bad group!"}, "group"),
    ({**GOOD_SERVER, "colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("body", "field"), BAD_SERVERS)
def test_bad_server_create_names_the_field_and_creates_nothing(
        admin: Api, body: dict[str, Any], field: str) -> None:
    r = admin.post("/v1/servers", body)
    assert r.status == 400, r
    assert r.body["error"]["field"] == field
    assert f"'{field}'" in r.body["error"]["message"] or field in r.body["error"]["message"]
    assert admin.get("/v1/servers", all_projects="true").body["servers"] == []


BAD_FLAVORS = [
    ({**GOOD_FLAVOR, "vcpus": 0}, "vcpus"),
    ({**GOOD_FLAVOR, "vcpus": -1}, "vcpus"),
    ({**GOOD_FLAVOR, "vcpus": 100000}, "vcpus"),
    ({**GOOD_FLAVOR, "vcpus": "2"}, "vcpus"),
    ({**GOOD_FLAVOR, "vcpus": 1.5}, "vcpus"),
    ({**GOOD_FLAVOR, "memory_mb": 1}, "memory_mb"),
    ({**GOOD_FLAVOR, "memory_mb": 10**12}, "memory_mb"),
    ({**GOOD_FLAVOR, "disk_gb": -5}, "disk_gb"),
    ({**GOOD_FLAVOR, "disk_gb": True}, "disk_gb"),
    (_without(GOOD_FLAVOR, "name"), "name"),
    ({**GOOD_FLAVOR, "id": "has spaces"}, "id"),
    ({**GOOD_FLAVOR, "is_public": "yes"}, "is_public"),
    ({**GOOD_FLAVOR, "swap": 512}, "swap"),
]


@pytest.mark.parametrize(("body", "field"), BAD_FLAVORS)
def test_bad_flavor_create_names_the_field_and_creates_nothing(
        admin: Api, body: dict[str, Any], field: str) -> None:
    before = admin.get("/v1/flavors").body["flavors"]
    r = admin.post("/v1/flavors", body)
    assert r.status == 400, r
    assert r.body["error"]["field"] == field
    assert admin.get("/v1/flavors").body["flavors"] == before


def test_duplicate_flavor_is_a_conflict(admin: Api) -> None:
    assert admin.post("/v1/flavors", GOOD_FLAVOR).status == 201
    r = admin.post("/v1/flavors", GOOD_FLAVOR)
    assert r.status == 409 and r.body["error"]["field"] == "name"
    r = admin.post("/v1/flavors", {**GOOD_FLAVOR, "name": "other", "id": "1"})
    assert r.status == 409 and r.body["error"]["field"] == "id"


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b""])
def test_body_must_be_a_json_object(cloud: AllInOne, raw: bytes) -> None:
    r = requests.post(cloud.api_url + "/v1/servers", data=raw, timeout=10,
                      headers={"Authorization": f"Bearer {cloud.admin_token}",
                               "Content-Type": "application/json"})
    assert r.status_code == 400
    assert "JSON object" in r.json()["error"]["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"action": "explode"}, "action"),
    ({}, "action"),
    ({"action": "reboot", "type": "medium"}, "type"),
    ({"action": "pause", "type": "hard"}, "type"),
    ({"action": "start", "force": True}, "force"),
])
def test_bad_action_body(admin: Api, body: dict[str, Any], field: str) -> None:
    server = admin.boot()
    r = admin.post(f"/v1/servers/{server['id']}/action", body)
    assert r.status == 400 and r.body["error"]["field"] == field
    assert admin.server(server["id"])["task_state"] is None


@pytest.mark.parametrize("query", [{"status": "ASLEEP"}, {"all_projects": "maybe"},
                                   {"colour": "blue"}])
def test_bad_list_query(admin: Api, query: dict[str, str]) -> None:
    r = admin.get("/v1/servers", **query)
    assert r.status == 400 and r.body["error"]["field"] == next(iter(query))


def test_unknown_routes_and_methods_answer_json(admin: Api) -> None:
    r = admin.get("/v1/nothing-here")
    assert r.status == 404 and r.body["error"]["code"] == 404
    r = admin.post("/v1/flavors/1", {})
    assert r.status == 405 and r.body["error"]["code"] == 405
    assert admin.get("/v1/servers/not-a-server").status == 404
    assert admin.delete("/v1/servers/not-a-server").status == 404
    assert admin.act("not-a-server", "start").status == 404
    assert admin.get("/v1/flavors/no-such-flavor").status == 404
    assert admin.get("/v1/images/no-such-image").status == 404


def test_request_id_is_echoed_or_minted(admin: Api) -> None:
    given = "req-12345678-1234-1234-1234-123456789abc"
    r = admin.session.get(admin.url + "/v1/flavors", timeout=10,
                          headers={"X-Openstack-Request-Id": given})
    assert r.headers["X-Openstack-Request-Id"] == given
    r = admin.session.get(admin.url + "/v1/flavors", timeout=10,
                          headers={"X-Openstack-Request-Id": "not-a-request-id"})
    assert r.headers["X-Openstack-Request-Id"].startswith("req-")
    assert r.headers["X-Openstack-Request-Id"] != given


def test_server_create_records_the_request_id(admin: Api) -> None:
    given = "req-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    r = admin.session.post(admin.url + "/v1/servers", json=GOOD_SERVER, timeout=10,
                           headers={"X-Openstack-Request-Id": given})
    assert r.status_code == 202
    assert r.json()["server"]["request_id"] == given
