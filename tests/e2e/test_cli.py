"""The ``ironbark`` command end to end: a real ``ironbark up`` and the CLI as subprocesses.

Nothing is imported from the product: every test runs the installed console script,
reads what it prints (tables for people, ``-f json`` for scripts) and checks its exit
code, the way a user or a shell script would. One three-host cloud serves the whole
module (see ``conftest.py``); each test creates servers with names of its own. The
restart test starts clouds of its own so the shared one is never disturbed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cloud, CloudFactory, free_port, run_ironbark, sandbox_env
from tests.e2e.test_openstack_cli import osc

pytestmark = pytest.mark.e2e

HOSTS = {"host1", "host2", "host3"}
CLASSIC_FLAVORS = {"m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"}


# --- reading what the CLI prints ---------------------------------------------------------


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a tabulate ``simple`` table, keyed by header.

    Column boundaries come from the dashed rule under the headers, so cells with
    spaces in them ("1/256 (x16)") are read whole.
    """
    lines = text.rstrip("\n").splitlines()
    rule = next((i for i, line in enumerate(lines) if re.fullmatch(r"-+( +-+)*", line)), None)
    assert rule is not None and rule > 0, f"not a table:\n{text}"
    spans = [m.span() for m in re.finditer(r"-+", lines[rule])]

    def cells(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans]

    headers = cells(lines[rule - 1])
    return [dict(zip(headers, cells(line), strict=True)) for line in lines[rule + 1:]]


def show_fields(text: str) -> dict[str, str]:
    """A ``show`` table (Field/Value) as a dict."""
    return {row["Field"]: row["Value"] for row in parse_table(text)}


def as_json(cloud: Cloud, *args: str) -> Any:
    result = cloud.ok(*args, "-f", "json")
    try:
        return json.loads(result.out)
    except ValueError as exc:
        raise AssertionError(f"`ironbark {' '.join(args)} -f json` printed no JSON: "
                             f"{result.describe()}") from exc


def show_server(cloud: Cloud, ref: str) -> dict[str, Any]:
    return as_json(cloud, "server", "show", ref)


def boot(cloud: Cloud, name: str, flavor: str = "m1.tiny") -> dict[str, Any]:
    server = as_json(cloud, "server", "create", "--flavor", flavor, "--image", "demo",
                     "--wait", name)
    assert server["status"] == "ACTIVE", server
    return server


# --- 1. the README's flow ------------------------------------------------------------------


def test_readme_flow_create_list_show(cloud: Cloud) -> None:
    created = cloud.ok("server", "create", "--flavor", "m1.small", "--image", "demo",
                       "--wait", "vm1")
    fields = show_fields(created.out)
    assert fields["name"] == "vm1"
    assert fields["status"] == "ACTIVE", created.describe()
    assert fields["task_state"] == "-"

    table = parse_table(cloud.ok("server", "list").out)
    rows = [row for row in table if row["Name"] == "vm1"]
    assert len(rows) == 1, table
    assert rows[0]["Status"] == "ACTIVE"
    assert rows[0]["Flavor"] == "m1.small" and rows[0]["Image"] == "demo"

    listed = [s for s in as_json(cloud, "server", "list") if s["name"] == "vm1"]
    assert len(listed) == 1, listed
    assert listed[0]["id"] == rows[0]["ID"] == fields["id"]
    assert listed[0]["status"] == "ACTIVE"

    shown = show_server(cloud, "vm1")
    assert shown["id"] == fields["id"]
    assert shown["status"] == "ACTIVE"
    assert shown["task_state"] is None
    assert shown["power_state"] == "running"
    assert shown["host"] in HOSTS
    assert shown["flavor"]["name"] == "m1.small"
    assert shown["image"]["name"] == "demo"
    assert shown["fault"] is None
    # The same server by id, as scripts address it.
    assert show_server(cloud, shown["id"]) == shown


# --- 2. every action, waited for -----------------------------------------------------------

ACTIONS = [
    (("pause",), "PAUSED", "paused"),
    (("unpause",), "ACTIVE", "running"),
    (("suspend",), "SUSPENDED", "suspended"),
    (("resume",), "ACTIVE", "running"),
    (("stop",), "SHUTOFF", "shutdown"),
    (("start",), "ACTIVE", "running"),
    (("reboot",), "ACTIVE", "running"),
    (("reboot", "--hard"), "ACTIVE", "running"),
]


def test_every_action_with_wait(cloud: Cloud) -> None:
    name = "e2e-actions"
    booted = boot(cloud, name)
    for action, status, power in ACTIONS:
        step = " ".join(action)
        settled = as_json(cloud, "server", *action, name, "--wait")
        assert settled["status"] == status, f"after `server {step} --wait`: {settled}"
        shown = show_server(cloud, name)
        assert (shown["status"], shown["power_state"], shown["task_state"]) == (
            status, power, None), f"after `server {step} --wait`: {shown}"
        assert shown["id"] == booted["id"] and shown["host"] == booted["host"], shown
        assert shown["fault"] is None, shown


# --- 3. an illegal action ------------------------------------------------------------------


def test_illegal_action_is_refused_and_changes_nothing(cloud: Cloud) -> None:
    name = "e2e-illegal"
    boot(cloud, name)
    before = show_server(cloud, name)

    refused = cloud.run("server", "unpause", name)
    assert refused.code == 1, refused.describe()
    assert "Error (HTTP 409)" in refused.err, refused.describe()
    assert "ACTIVE" in refused.err, refused.describe()
    assert refused.out == "", refused.describe()

    assert show_server(cloud, name) == before


# --- 4. delete -----------------------------------------------------------------------------


def test_delete_with_wait_and_missing_name(cloud: Cloud) -> None:
    name = "e2e-delete"
    booted = boot(cloud, name)

    cloud.ok("server", "delete", name, "--wait")
    assert [s for s in as_json(cloud, "server", "list") if s["name"] == name] == []
    gone = cloud.run("server", "show", booted["id"])
    assert gone.code == 1 and "Error (HTTP 404)" in gone.err, gone.describe()

    missing = cloud.run("server", "delete", "e2e-no-such-server")
    assert missing.code == 1, missing.describe()
    assert "Error (HTTP 404)" in missing.err and "e2e-no-such-server" in missing.err, \
        missing.describe()


# --- 5. flavors ----------------------------------------------------------------------------


def test_flavor_create_list_show_boot_delete(cloud: Cloud) -> None:
    flavor = "e2e.flavor"
    created = show_fields(cloud.ok("flavor", "create", "--vcpus", "2", "--ram", "1024",
                                   "--disk", "10", flavor).out)
    assert (created["name"], created["vcpus"], created["memory_mb"], created["disk_gb"]) == (
        flavor, "2", "1024", "10")

    rows = {row["Name"]: row for row in parse_table(cloud.ok("flavor", "list").out)}
    assert CLASSIC_FLAVORS | {flavor} <= set(rows), rows
    assert (rows[flavor]["vCPUs"], rows[flavor]["RAM MiB"], rows[flavor]["Disk GB"]) == (
        "2", "1024", "10")
    assert rows[flavor]["ID"] == created["id"]

    shown = as_json(cloud, "flavor", "show", flavor)
    assert shown["id"] == created["id"]
    assert (shown["vcpus"], shown["memory_mb"], shown["disk_gb"]) == (2, 1024, 10)
    assert shown["is_public"] is True
    assert as_json(cloud, "flavor", "show", created["id"]) == shown
    shown_table = show_fields(cloud.ok("flavor", "show", flavor).out)
    assert shown_table["name"] == flavor and shown_table["vcpus"] == "2"

    server = boot(cloud, "e2e-flavored", flavor=flavor)
    assert server["flavor"]["name"] == flavor
    assert (server["flavor"]["vcpus"], server["flavor"]["memory_mb"],
            server["flavor"]["disk_gb"]) == (2, 1024, 10)
    cloud.ok("server", "delete", "e2e-flavored", "--wait")

    cloud.ok("flavor", "delete", flavor)
    assert flavor not in {f["name"] for f in as_json(cloud, "flavor", "list")}
    gone = cloud.run("flavor", "show", flavor)
    assert gone.code == 1 and "Error (HTTP 404)" in gone.err, gone.describe()


def test_flavor_create_rejects_bad_input(cloud: Cloud) -> None:
    bad = cloud.run("flavor", "create", "--vcpus", "0", "--ram", "1024", "--disk", "10",
                    "e2e.bad")
    assert bad.code == 1, bad.describe()
    assert "Error (HTTP 400)" in bad.err and "vcpus" in bad.err, bad.describe()
    assert bad.out == "", bad.describe()
    # Nothing was created.
    assert "e2e.bad" not in {f["name"] for f in as_json(cloud, "flavor", "list")}


# --- 6. images, hosts, groups --------------------------------------------------------------


def test_image_list_shows_demo(cloud: Cloud) -> None:
    rows = [row for row in parse_table(cloud.ok("image", "list").out) if row["Name"] == "demo"]
    assert len(rows) == 1, rows
    assert rows[0]["Status"] == "active"
    assert rows[0]["Visibility"] == "public"

    images = {i["name"]: i for i in as_json(cloud, "image", "list")}
    assert images["demo"]["status"] == "active"
    assert images["demo"]["id"] == rows[0]["ID"]


CAPACITY_COLUMNS = {
    "vcpus": "vCPU used/capacity (ratio)",
    "memory_mb": "RAM MiB used/capacity (ratio)",
    "disk_gb": "Disk GB used/capacity (ratio)",
}


def test_host_list_table_and_json(cloud: Cloud) -> None:
    table = {row["Name"]: row for row in parse_table(cloud.ok("host", "list").out)}
    assert set(table) == HOSTS, table
    for name, row in table.items():
        assert row["State"] == "up", row
        assert row["Group"] == "default", row
        for column in CAPACITY_COLUMNS.values():
            assert re.fullmatch(r"\d+/\d+ \(x[0-9.]+\)", row[column]), (name, column, row)

    hosts = {h["name"]: h for h in as_json(cloud, "host", "list")}
    assert set(hosts) == HOSTS, hosts
    for name, host in hosts.items():
        assert host["state"] == "up" and host["group"] == "default", host
        for resource, column in CAPACITY_COLUMNS.items():
            res = host[resource]
            assert res["capacity"] == int((res["total"] - res["reserved"])
                                          * res["allocation_ratio"]), (name, resource, res)
            assert res["free"] == res["capacity"] - res["used"], (name, resource, res)
            # The table's capacity is the JSON's (usage may move between the two calls).
            assert table[name][column].split(" ")[0].split("/")[1] == str(res["capacity"])


def test_group_list_shows_default_with_three_hosts(cloud: Cloud) -> None:
    rows = {row["Name"]: row for row in parse_table(cloud.ok("group", "list").out)}
    assert "default" in rows, rows
    row = rows["default"]
    assert (row["State"], row["Hosts up"], row["Hosts down"]) == ("up", "3", "0"), row

    groups = {g["name"]: g for g in as_json(cloud, "group", "list")}
    assert groups["default"]["hosts_up"] == 3 and groups["default"]["state"] == "up"


# --- 7. a server that fits nowhere ---------------------------------------------------------


def test_unplaceable_server_prints_the_fault(cloud: Cloud) -> None:
    # The flavor is far past the default quotas, which would refuse it first (403): lift
    # them as an operator would, so the scheduler is what says no.
    osc(cloud, "quota", "set", "--cores", "-1", "--ram", "-1", "admin")
    cloud.ok("flavor", "create", "--vcpus", "1024", "--ram", "16000000", "--disk", "60000",
             "huge")
    failed = cloud.run("server", "create", "--flavor", "huge", "--image", "demo", "--wait",
                       "big")
    assert failed.code == 1, failed.describe()
    assert "No valid host" in failed.err and "not enough" in failed.err, failed.describe()

    shown = show_server(cloud, "big")
    assert shown["status"] == "ERROR" and shown["host"] is None, shown
    assert "No valid host" in shown["fault"]["message"], shown
    assert shown["fault"]["message"] in failed.err

    cloud.ok("server", "delete", "big", "--wait")
    cloud.ok("flavor", "delete", "huge")


# --- 8. restart ----------------------------------------------------------------------------


def test_down_then_up_keeps_servers_and_a_second_up_is_refused(
        make_cloud: CloudFactory) -> None:
    """The flow of a script: ``ironbark up &``, work, ``ironbark down``, ``ironbark up``."""
    own = make_cloud().start()
    booted = boot(own, "e2e-persist")

    # A second cloud on the same data directory (on another port) must refuse to start.
    second = run_ironbark(own.env, *own.up_args(port=free_port()), timeout=30)
    assert second.code != 0, second.describe()
    assert "already running" in second.err + second.out, second.describe()
    assert own.running(), own.output()
    assert show_server(own, "e2e-persist")["status"] == "ACTIVE"

    down = own.down()
    assert down.code == 0 and "stopped" in down.out, down.describe()
    assert own.wait_exit() == 0, own.output()

    own.start()  # the same data directory and port
    shown = show_server(own, "e2e-persist")
    assert shown["id"] == booted["id"]
    assert shown["status"] == "ACTIVE" and shown["power_state"] == "running", shown
    assert shown["host"] == booted["host"], shown


def test_ctrl_c_then_up_keeps_servers(make_cloud: CloudFactory) -> None:
    """Restart persistence again, stopped with Ctrl-C (the foreground way)."""
    own = make_cloud().start()
    booted = boot(own, "e2e-persist-ctrl-c")

    assert own.interrupt() == 0, own.output()
    assert "stopping..." in own.stdout.read_text()
    not_running = own.run("down", "--data-dir", str(own.data_dir))
    assert not_running.code == 1, not_running.describe()
    assert "no cloud is running" in not_running.err, not_running.describe()

    own.start()  # the same data directory and port
    shown = show_server(own, "e2e-persist-ctrl-c")
    assert shown["id"] == booted["id"]
    assert shown["status"] == "ACTIVE" and shown["power_state"] == "running", shown
    assert shown["host"] == booted["host"], shown


# --- 9. no credentials ---------------------------------------------------------------------


@pytest.mark.parametrize("credentials", ["missing-file", "empty-file", "unknown-cloud"])
def test_without_credentials_the_cli_says_to_run_up(tmp_path: Path, credentials: str) -> None:
    path = tmp_path / "nothing-here" / "clouds.yaml"
    if credentials == "empty-file":
        path.parent.mkdir()
        path.write_text("")
    extra = {"OS_CLOUD": "no-such-cloud"} if credentials == "unknown-cloud" else {}
    env = sandbox_env(tmp_path, OS_CLIENT_CONFIG_FILE=str(path), **extra)
    assert not any(k in env for k in ("IRONBARK_URL", "IRONBARK_TOKEN"))

    result = run_ironbark(env, "server", "list")
    assert result.code == 1, result.describe()
    assert result.err.startswith("Error"), result.describe()
    assert "ironbark up" in result.err, result.describe()
    assert result.out == "", result.describe()
