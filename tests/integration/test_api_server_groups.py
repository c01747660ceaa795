"""Server groups over the native API: CRUD, tenancy, validation, members, and the
pinning of every member to one host group (even under concurrent first members).

A second host group is a "ghost": its summaries are real ``group_summary`` messages
on the cloud's bus, but no Group Manager serves it, so builds sent there wait in its
queue (the servers stay in BUILD), which is all the pinning tests need.

The placement outcomes (anti-affinity on distinct hosts, affinity on one) are the
Group Manager's work; the two tests at the end check them end to end.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ironbark.allinone import AllInOne
from message_bus.messages import GroupSummary, Resources
from tests.conftest import CloudFactory
from tests.helpers import Api, wait_for
from tests.identity import member_token

GHOST = "ghost-group"


def _group(api: Api, name: str = "web", policy: str = "anti-affinity") -> dict[str, Any]:
    r = api.post("/v1/server-groups", {"name": name, "policy": policy})
    assert r.status == 201, r
    return r.body["server_group"]


def _show(api: Api, ref: str) -> dict[str, Any]:
    r = api.get(f"/v1/server-groups/{ref}")
    assert r.status == 200, r
    return r.body["server_group"]


def _listing(api: Api, **params: str) -> list[dict[str, Any]]:
    r = api.get("/v1/server-groups", **params)
    assert r.status == 200, r
    return r.body["server_groups"]


def _ghost_group(cloud: AllInOne, api: Api) -> None:
    """Make the cloud know a second host group, which nobody serves."""
    big = Resources(vcpus=64, memory_mb=65536, disk_gb=1000)
    cloud.bus.cast("cloud", GroupSummary(
        group=GHOST, policy="spread", hosts_up=1, hosts_down=0, capacity=big,
        used=Resources(vcpus=0, memory_mb=0, disk_gb=0), largest_free=big))
    wait_for(lambda: GHOST in {g["name"] for g in api.get("/v1/groups").body["groups"]},
             what="the ghost group's summary")


# --- CRUD ---------------------------------------------------------------------------------


def test_create_list_show_delete(alpha: Api) -> None:
    created = _group(alpha, "web", "anti-affinity")
    assert set(created) == {"id", "name", "policy", "project_id", "group", "members",
                            "created_at"}
    assert (created["name"], created["policy"]) == ("web", "anti-affinity")
    assert created["group"] is None and created["members"] == []
    other = _group(alpha, "db", "soft-affinity")
    assert [g["id"] for g in _listing(alpha)] == [created["id"], other["id"]]
    assert _show(alpha, created["id"]) == created
    assert _show(alpha, "db") == other  # by name
    assert alpha.delete(f"/v1/server-groups/{created['id']}").status == 204
    assert alpha.get(f"/v1/server-groups/{created['id']}").status == 404
    assert alpha.delete(f"/v1/server-groups/{created['id']}").status == 404
    assert alpha.delete("/v1/server-groups/db").status == 204
    assert _listing(alpha) == []


@pytest.mark.parametrize("policy", ["affinity", "anti-affinity", "soft-affinity",
                                    "soft-anti-affinity"])
def test_every_policy_is_accepted(alpha: Api, policy: str) -> None:
    assert _group(alpha, policy, policy)["policy"] == policy


def test_a_name_several_groups_share_is_ambiguous(alpha: Api) -> None:
    first, second = _group(alpha, "dup"), _group(alpha, "dup")
    r = alpha.get("/v1/server-groups/dup")
    assert r.status == 400 and r.body["error"]["field"] == "server_group", r
    assert "use the id" in r.body["error"]["message"]
    r = alpha.post("/v1/servers", {"name": "vm", "flavor": "m1.tiny", "image": "demo",
                                   "server_group": "dup"})
    assert r.status == 400 and r.body["error"]["field"] == "server_group", r
    assert alpha.get("/v1/servers").body["servers"] == []
    assert alpha.delete("/v1/server-groups/dup").status == 400
    assert _show(alpha, first["id"])["name"] == _show(alpha, second["id"])["name"] == "dup"


# --- tenancy ------------------------------------------------------------------------------


def test_another_project_cannot_see_use_or_delete_a_group(alpha: Api, beta: Api,
                                                          admin: Api) -> None:
    mine = _group(alpha, "private")
    assert _listing(beta) == []
    for ref in (mine["id"], "private"):
        r = beta.get(f"/v1/server-groups/{ref}")
        assert r.status == 404, r
        assert beta.delete(f"/v1/server-groups/{ref}").status == 404
        r = beta.post("/v1/servers", {"name": "vm", "flavor": "m1.tiny", "image": "demo",
                                      "server_group": ref})
        assert r.status == 400 and r.body["error"]["field"] == "server_group", r
    assert beta.get("/v1/servers").body["servers"] == []
    assert _show(alpha, mine["id"])["members"] == []  # still there, untouched
    # The admin sees every project's groups on request, and reaches one by id.
    assert _listing(admin) == []
    assert [g["id"] for g in _listing(admin, all_projects="true")] == [mine["id"]]
    assert _show(admin, mine["id"])["project_id"] == mine["project_id"]
    r = beta.get("/v1/server-groups", all_projects="true")
    assert r.status == 403, r


# --- validation ---------------------------------------------------------------------------

GOOD = {"name": "web", "policy": "affinity"}

BAD_GROUPS = [
    ({**GOOD, "policy": "together"}, "policy"),
    ({**GOOD, "policy": "AFFINITY"}, "policy"),
    ({**GOOD, "policy": ["affinity"]}, "policy"),
    ({**GOOD, "policy": None}, "policy"),
    ({"name": "web"}, "policy"),
    ({"policy": "affinity"}, "name"),
    ({**GOOD, "name": ""}, "name"),
    ({**GOOD, "name": "  "}, "name"),
    ({**GOOD, "name": 42}, "name"),
    ({**GOOD, "name": "x" * 256}, "name"),
    ({**GOOD, "rules": {"max_server_per_host": 2}}, "rules"),
    ({**GOOD, "policies": ["affinity"]}, "policies"),
]


@pytest.mark.parametrize(("body", "field"), BAD_GROUPS)
def test_bad_group_create_names_the_field_and_creates_nothing(
        alpha: Api, body: dict[str, Any], field: str) -> None:
    r = alpha.post("/v1/server-groups", body)
    assert r.status == 400, r
    assert r.body["error"]["field"] == field
    assert field in r.body["error"]["message"]
    assert _listing(alpha) == []


@pytest.mark.parametrize(("ref", "field"), [("no-such-group", "server_group"),
                                            (42, "server_group"), ("", "server_group")])
def test_an_unknown_server_group_creates_nothing(alpha: Api, ref: Any, field: str) -> None:
    r = alpha.post("/v1/servers", {"name": "vm", "flavor": "m1.tiny", "image": "demo",
                                   "server_group": ref})
    assert r.status == 400 and r.body["error"]["field"] == field, r
    assert alpha.get("/v1/servers").body["servers"] == []


def test_bad_list_query(alpha: Api) -> None:
    for query in ({"all_projects": "maybe"}, {"colour": "blue"}):
        r = alpha.get("/v1/server-groups", **query)
        assert r.status == 400 and r.body["error"]["field"] == next(iter(query)), r


# --- members and the host group they live in ----------------------------------------------


def test_members_are_listed_and_pin_the_host_group(cloud: AllInOne, alpha: Api) -> None:
    _ghost_group(cloud, alpha)
    group = _group(alpha, "web", "soft-anti-affinity")
    first = alpha.boot("web1", server_group=group["id"])
    assert first["status"] == "ACTIVE" and first["server_group"] == group["id"]
    assert first["reservation_id"] is None
    shown = _show(alpha, "web")
    assert shown["group"] == first["group"] == cloud.config.group.name
    assert shown["members"] == [first["id"]]
    # A later member naming another host group is refused, and nothing is created.
    r = alpha.post("/v1/servers", {"name": "web2", "flavor": "m1.tiny", "image": "demo",
                                   "server_group": "web", "group": GHOST})
    assert r.status == 400 and r.body["error"]["field"] == "group", r
    assert cloud.config.group.name in r.body["error"]["message"]
    assert [s["id"] for s in alpha.get("/v1/servers").body["servers"]] == [first["id"]]
    # Naming the members' host group, or none, is fine.
    second = alpha.boot("web2", server_group="web", group=cloud.config.group.name)
    third = alpha.boot("web3", server_group="web")
    assert {second["status"], third["status"]} == {"ACTIVE"}
    assert _show(alpha, "web")["members"] == [first["id"], second["id"], third["id"]]
    # A deleted server leaves the group.
    assert alpha.delete(f"/v1/servers/{second['id']}").status == 202
    alpha.wait_gone(second["id"])
    assert _show(alpha, "web")["members"] == [first["id"], third["id"]]


def test_the_first_member_pins_the_group_it_was_sent_to(cloud: AllInOne, alpha: Api) -> None:
    """Without the pin, the second member would go to the real group (more free RAM)."""
    _ghost_group(cloud, alpha)
    _group(alpha, "far")
    first = alpha.create("far1", server_group="far", group=GHOST)
    assert first["group"] == GHOST and _show(alpha, "far")["group"] == GHOST
    second = alpha.create("far2", server_group="far")
    assert second["group"] == GHOST
    assert alpha.create("near")["group"] == cloud.config.group.name  # not a member: free


def test_a_group_whose_members_are_all_gone_can_move(cloud: AllInOne, alpha: Api) -> None:
    _ghost_group(cloud, alpha)
    _group(alpha, "mover")
    only = alpha.boot("m1", server_group="mover")
    assert alpha.delete(f"/v1/servers/{only['id']}").status == 202
    alpha.wait_gone(only["id"])
    assert _show(alpha, "mover")["group"] is None
    moved = alpha.create("m2", server_group="mover", group=GHOST)
    assert moved["group"] == GHOST and _show(alpha, "mover")["group"] == GHOST


def test_delete_with_members_keeps_them_running(alpha: Api) -> None:
    group = _group(alpha, "temp", "affinity")
    member = alpha.boot("t1", server_group="temp")
    assert member["status"] == "ACTIVE"
    assert alpha.delete(f"/v1/server-groups/{group['id']}").status == 204
    after = alpha.server(member["id"])
    assert after["status"] == "ACTIVE" and after["server_group"] is None
    assert alpha.get(f"/v1/server-groups/{group['id']}").status == 404


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_concurrent_first_members_agree_on_one_host_group(
        make_cloud: CloudFactory, request: pytest.FixtureRequest, database: str) -> None:
    """Half the creates name the real group, half the ghost, all at once: whichever
    member pins first wins, and every other create that disagrees is refused."""
    overrides: dict[str, Any] = {}
    if database == "postgresql":
        overrides["database"] = {"url": request.getfixturevalue("postgres_url")}
    cloud = make_cloud(hosts=1, **overrides)
    alpha = Api(cloud.api_url, member_token(cloud, "alpha"))
    _ghost_group(cloud, alpha)
    wanted = [cloud.config.group.name, GHOST] * 4
    for round_ in range(3):
        group = _group(alpha, f"race{round_}")

        def create(i: int, group_id: str = group["id"]) -> Any:
            return Api(cloud.api_url, member_token(cloud, "alpha")).post(
                "/v1/servers", {"name": f"r{i}", "flavor": "m1.tiny", "image": "demo",
                                "server_group": group_id, "group": wanted[i]})

        with ThreadPoolExecutor(len(wanted)) as pool:
            answers = list(pool.map(create, range(len(wanted))))
        accepted = [a.body["server"] for a in answers if a.status == 202]
        refused = [a for a in answers if a.status != 202]
        assert accepted, answers
        assert all(a.status == 400 and a.body["error"]["field"] == "group" for a in refused)
        pinned = {s["group"] for s in accepted}
        assert len(pinned) == 1, answers
        assert len(accepted) == wanted.count(pinned.pop()), answers
        shown = _show(alpha, group["id"])
        assert sorted(shown["members"]) == sorted(s["id"] for s in accepted)


# --- placement (the Group Manager's side) -------------------------------------------------


def test_anti_affinity_members_land_on_distinct_hosts(admin: Api) -> None:
    _group(admin, "apart", "anti-affinity")
    hosts = [admin.boot(f"a{i}", server_group="apart")["host"] for i in range(2)]
    assert len(set(hosts)) == 2, hosts
    third = admin.boot("a3", server_group="apart")  # two hosts, both taken
    assert third["status"] == "ERROR", third


def test_affinity_members_share_a_host(admin: Api) -> None:
    _group(admin, "together", "affinity")
    r = admin.post("/v1/servers", {"name": "t", "flavor": "m1.tiny", "image": "demo",
                                   "server_group": "together", "max_count": 3})
    assert r.status == 202, r
    settled = [admin.wait(s["id"]) for s in r.body["servers"]]
    assert {s["status"] for s in settled} == {"ACTIVE"}, settled
    assert len({s["host"] for s in settled}) == 1, settled
