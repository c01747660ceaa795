"""``ironbark server group ...`` and ``server create --min/--max`` end to end: the
installed CLI against an ``ironbark up`` subprocess (three hosts, the admin's
credentials), read as a user or a script would read it.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import Cloud
from tests.e2e.test_cli import as_json, parse_table, show_fields

pytestmark = pytest.mark.e2e



def test_server_group_create_list_show_delete(cloud: Cloud) -> None:
    fields = show_fields(cloud.ok("server", "group", "create", "--policy", "affinity",
                                  "crud").out)
    assert (fields["name"], fields["policy"], fields["group"], fields["members"]) == \
        ("crud", "affinity", "-", "-"), fields
    group_id = fields["id"]

    rows = {row["Name"]: row for row in parse_table(cloud.ok("server", "group", "list").out)}
    assert rows["crud"]["ID"] == group_id and rows["crud"]["Policy"] == "affinity"
    assert rows["crud"]["Members"] == "0"
    assert "Project" not in rows["crud"]
    everyone = parse_table(cloud.ok("server", "group", "list", "--all-projects").out)
    assert "Project" in everyone[0]

    listed = {g["name"]: g for g in as_json(cloud, "server", "group", "list")}
    assert listed["crud"]["id"] == group_id and listed["crud"]["members"] == []
    assert as_json(cloud, "server", "group", "show", "crud")["id"] == group_id
    assert as_json(cloud, "server", "group", "show", group_id)["name"] == "crud"

    cloud.ok("server", "group", "delete", "crud")
    gone = cloud.run("server", "group", "show", group_id)
    assert gone.code == 1 and "HTTP 404" in gone.err, gone.describe()


def test_delete_tries_every_group_and_fails_if_one_did(cloud: Cloud) -> None:
    cloud.ok("server", "group", "create", "--policy", "soft-affinity", "keep-going")
    result = cloud.run("server", "group", "delete", "no-such-group", "keep-going")
    assert result.code == 1 and "HTTP 404" in result.err, result.describe()
    names = {g["name"] for g in as_json(cloud, "server", "group", "list")}
    assert "keep-going" not in names


def test_bad_policy_is_a_usage_error(cloud: Cloud) -> None:
    result = cloud.run("server", "group", "create", "--policy", "together", "bad")
    assert result.code == 2 and "--policy" in result.err, result.describe()


def test_create_min_max_in_a_server_group_and_wait(cloud: Cloud) -> None:
    group = as_json(cloud, "server", "group", "create", "--policy", "anti-affinity", "pair")
    servers = as_json(cloud, "server", "create", "--flavor", "m1.tiny", "--image", "demo",
                      "--min", "2", "--max", "2", "--server-group", "pair", "--wait", "duo")
    assert [s["name"] for s in servers] == ["duo-1", "duo-2"], servers
    assert {s["status"] for s in servers} == {"ACTIVE"}, servers
    assert {s["server_group"] for s in servers} == {group["id"]}
    (reservation,) = {s["reservation_id"] for s in servers}
    assert re.fullmatch(r"r-[0-9a-f]{8}", reservation)
    assert len({s["host"] for s in servers}) == 2, servers  # anti-affinity, admin sees hosts

    shown = as_json(cloud, "server", "group", "show", "pair")
    assert sorted(shown["members"]) == sorted(s["id"] for s in servers)
    assert shown["group"] == "default"
    fields = show_fields(cloud.ok("server", "show", "duo-1").out)
    assert (fields["server_group"], fields["reservation_id"]) == (group["id"], reservation)

    # The table form: one row per server, with the reservation.
    table = parse_table(cloud.ok("server", "create", "--flavor", "m1.tiny", "--image", "demo",
                                 "--max", "3", "--wait", "trio").out)
    assert [row["Name"] for row in table] == ["trio-1", "trio-2", "trio-3"], table
    assert {row["Status"] for row in table} == {"ACTIVE"}
    assert len({row["Reservation"] for row in table}) == 1


def test_bad_counts_are_refused_by_the_api_naming_the_field(cloud: Cloud) -> None:
    result = cloud.run("server", "create", "--flavor", "m1.tiny", "--image", "demo",
                       "--min", "3", "--max", "2", "never")
    assert result.code == 1 and "HTTP 400" in result.err and "min_count" in result.err, \
        result.describe()
    result = cloud.run("server", "create", "--flavor", "m1.tiny", "--image", "demo",
                       "--server-group", "no-such-group", "never")
    assert result.code == 1 and "server_group" in result.err, result.describe()
    assert as_json(cloud, "server", "list", "--name", "never") == []


def test_group_list_shows_empty_hosts(cloud: Cloud) -> None:
    rows = {row["Name"]: row for row in parse_table(cloud.ok("group", "list").out)}
    assert rows["default"]["Hosts empty"].isdigit(), rows
    groups = {g["name"]: g for g in as_json(cloud, "group", "list")}
    assert 0 <= groups["default"]["hosts_empty"] <= groups["default"]["hosts_up"]
