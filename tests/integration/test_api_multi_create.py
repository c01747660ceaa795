"""Multi-instance create (``min_count``/``max_count``) over the native API.

Validation answers 400 naming the field and creates nothing; a request's servers
share a reservation id, are named ``<name>-1`` .. ``<name>-N`` and leave in one
``build_instances`` message; if the bus refuses it, nothing is left behind.

The all-or-nothing outcomes (fewer than ``min_count`` fit: every server fails;
more than ``min_count``: the extra ones fail) are the Group Manager's work; the
tests marked "placement" below check them end to end.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from typing import Any

import pytest

from cloud_manager.auth import MEMBER, Principal
from cloud_manager.errors import Unavailable
from cloud_manager.services import server_create
from ironbark.allinone import AllInOne
from message_bus import Bus
from tests.conftest import CloudFactory
from tests.helpers import Api
from tests.identity import member_token, project_id

GOOD = {"name": "node", "flavor": "m1.tiny", "image": "demo"}


def _multi(api: Api, **fields: Any) -> dict[str, Any]:
    r = api.post("/v1/servers", {**GOOD, **fields})
    assert r.status == 202, r
    return r.body


# --- validation ---------------------------------------------------------------------------

BAD = [
    ({"min_count": 0}, "min_count"),
    ({"max_count": 0}, "max_count"),
    ({"min_count": -1, "max_count": 2}, "min_count"),
    ({"max_count": 101}, "max_count"),
    ({"min_count": 101, "max_count": 101}, "min_count"),
    ({"min_count": 3, "max_count": 2}, "min_count"),
    ({"min_count": 2}, "min_count"),  # max_count defaults to 1
    ({"max_count": "3"}, "max_count"),
    ({"min_count": "1"}, "min_count"),
    ({"max_count": 2.0}, "max_count"),
    ({"max_count": True}, "max_count"),
    ({"max_count": None}, "max_count"),
    ({"max_count": [3]}, "max_count"),
    ({"name": "x" * 254, "max_count": 2}, "name"),  # "x...x-2" would be 256 characters
    ({"name": "x" * 252, "max_count": 100}, "name"),
    ({"count": 3}, "count"),
]


@pytest.mark.parametrize(("fields", "field"), BAD)
def test_bad_counts_name_the_field_and_create_nothing(
        admin: Api, fields: dict[str, Any], field: str) -> None:
    r = admin.post("/v1/servers", {**GOOD, **fields})
    assert r.status == 400, r
    assert r.body["error"]["field"] == field
    assert field in r.body["error"]["message"]
    assert admin.get("/v1/servers", all_projects="true").body["servers"] == []


def test_a_name_just_short_enough_for_its_count_is_accepted(alpha: Api) -> None:
    body = _multi(alpha, name="x" * 253, max_count=2, flavor="m1.tiny")
    assert [len(s["name"]) for s in body["servers"]] == [255, 255]


# --- names, reservation, one request --------------------------------------------------------


def test_max_count_servers_become_active_with_names_and_one_reservation(alpha: Api) -> None:
    single = alpha.boot("alone")
    assert single["reservation_id"] is None and single["server_group"] is None
    body = _multi(alpha, name="web", flavor="m1.small", max_count=3)
    assert set(body) == {"reservation_id", "servers"}
    reservation = body["reservation_id"]
    assert re.fullmatch(r"r-[0-9a-f]{8}", reservation), reservation
    assert [s["name"] for s in body["servers"]] == ["web-1", "web-2", "web-3"]
    assert {s["reservation_id"] for s in body["servers"]} == {reservation}
    assert {s["status"] for s in body["servers"]} == {"BUILD"}
    settled = [alpha.wait(s["id"]) for s in body["servers"]]
    assert {s["status"] for s in settled} == {"ACTIVE"}, settled
    assert len({s["group"] for s in settled}) == 1
    # The listing filter finds exactly this request's servers.
    listed = alpha.get("/v1/servers", reservation_id=reservation).body["servers"]
    assert sorted(s["name"] for s in listed) == ["web-1", "web-2", "web-3"]
    assert alpha.get("/v1/servers", reservation_id="r-00000000").body["servers"] == []
    assert len(alpha.get("/v1/servers").body["servers"]) == 4


def test_counts_of_one_keep_the_single_server_answer(alpha: Api) -> None:
    body = _multi(alpha, name="one", min_count=1, max_count=1)
    assert set(body) == {"server"}
    assert body["server"]["name"] == "one" and body["server"]["reservation_id"] is None


def test_two_requests_get_two_reservations(alpha: Api) -> None:
    first = _multi(alpha, name="a", max_count=2)["reservation_id"]
    second = _multi(alpha, name="b", min_count=2, max_count=2)["reservation_id"]
    assert first != second


def test_another_project_does_not_see_a_reservation(alpha: Api, beta: Api) -> None:
    reservation = _multi(alpha, max_count=2)["reservation_id"]
    assert beta.get("/v1/servers", reservation_id=reservation).body["servers"] == []


# --- failures -----------------------------------------------------------------------------


def test_with_no_group_reporting_every_server_fails_alike(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1, cloud={"group_stale_after": 0.5},
                       group={"summary_interval": 60.0})
    api = Api(cloud.api_url, member_token(cloud, "alpha"))
    time.sleep(0.6)  # the only summary is now stale: no group counts as reporting
    body = _multi(api, max_count=3, min_count=2)
    assert {s["status"] for s in body["servers"]} == {"ERROR"}
    faults = {s["fault"]["message"] for s in body["servers"]}
    assert len(faults) == 1 and "no Group Manager with hosts up has reported" in faults.pop()
    assert {s["group"] for s in body["servers"]} == {None}


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_bus_failure_leaves_nothing_behind(cloud: AllInOne, alpha: Api) -> None:
    """The Cloud Manager's own services with a bus whose broker is not listening."""
    assert alpha.post("/v1/server-groups", {"name": "g", "policy": "affinity"}).status == 201
    dead = Bus(f"amqp://guest:guest@127.0.0.1:{_dead_port()}//", sender="test",
               namespace="dead", connect_timeout=1.0)
    ctx = dataclasses.replace(cloud.cloud.ctx, bus=dead)
    principal = Principal(project_id(cloud, "alpha"), "alpha", False, roles=frozenset({MEMBER}))
    for counts in ((1, 1), (2, 3)):
        request = server_create.CreateRequest(name="lost", flavor_ref="m1.tiny",
                                              image_ref="demo", server_group="g",
                                              min_count=counts[0], max_count=counts[1])
        with pytest.raises(Unavailable, match="nothing was created"):
            server_create.create(ctx, principal, request)
    assert alpha.get("/v1/servers").body["servers"] == []
    shown = alpha.get("/v1/server-groups/g").body["server_group"]
    assert shown["members"] == [] and shown["group"] is None
    # The first member that does get through pins the group as usual.
    body = _multi(alpha, server_group="g", max_count=2)
    assert alpha.get("/v1/server-groups/g").body["server_group"]["group"] == \
        body["servers"][0]["group"]


# --- placement (the Group Manager's side) -------------------------------------------------


def _one_per_host_flavor(admin: Api) -> str:
    """A flavor of which exactly one fits on each (identical) host."""
    hosts = admin.get("/v1/hosts").body["hosts"]
    memory = hosts[0]["memory_mb"]["capacity"] // 2 + 1
    r = admin.post("/v1/flavors", {"name": "half-host", "vcpus": 1, "memory_mb": memory,
                                   "disk_gb": 1})
    assert r.status == 201, r
    return "half-host"


def _used_memory(admin: Api) -> int:
    return sum(h["memory_mb"]["used"] for h in admin.get("/v1/hosts").body["hosts"])


def test_placement_fewer_than_min_count_fit_so_none_is_built(admin: Api) -> None:
    flavor = _one_per_host_flavor(admin)
    body = _multi(admin, flavor=flavor, min_count=3, max_count=3)
    settled = [admin.wait(s["id"]) for s in body["servers"]]
    assert {s["status"] for s in settled} == {"ERROR"}, settled
    assert len({s["fault"]["message"] for s in settled}) == 1  # one reason for all
    assert {s["host"] for s in settled} == {None}
    assert _used_memory(admin) == 0  # every claim given back


def test_placement_beyond_min_count_the_extra_ones_fail(admin: Api) -> None:
    flavor = _one_per_host_flavor(admin)
    body = _multi(admin, flavor=flavor, min_count=1, max_count=3)
    settled = [admin.wait(s["id"]) for s in body["servers"]]
    statuses = sorted(s["status"] for s in settled)
    assert statuses == ["ACTIVE", "ACTIVE", "ERROR"], settled
    assert len({s["host"] for s in settled if s["status"] == "ACTIVE"}) == 2
