"""Scale mode: many simulated hosts over several groups, all-in-one and multi-process.

The all-in-one runs 40 hosts in 3 groups with a two-size mix: every host reports with
the size the plan drew, each group has its own Group Manager and database, a
requested group is honoured and unrequested creates are spread over the groups by the
Cloud Manager. The multi-process lab (``ironbark up --multi-process``, RabbitMQ and
PostgreSQL) runs 12 hosts in 2 groups as separate processes, boots servers in each
group, and leaves no process behind when ``ironbark down`` sends it SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from group_manager.db.models import Host
from ironbark import keystone, simulation
from ironbark.db import normalise_url
from tests.conftest import CloudFactory, drop_database
from tests.helpers import Api, wait_for

MIX = "32x128:1,64x256:1"
SIZES = {(32, 131072), (64, 262144)}


def _hosts(api: Api) -> list[dict]:
    r = api.get("/v1/hosts")
    assert r.status == 200 and r.body["unreachable_groups"] == [], r
    return r.body["hosts"]


def test_forty_hosts_in_three_groups(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=40, scale={"groups": 3, "host_mix": MIX, "seed": 5})
    api = Api(cloud.api_url, cloud.admin_token)
    plan = {h.name: h for h in cloud.layout.hosts}

    # Every host reported, to its own group, with the size the plan drew for it.
    hosts = _hosts(api)
    assert sorted(h["name"] for h in hosts) == sorted(plan)
    for h in hosts:
        spec = plan[h["name"]]
        assert (h["group"], h["state"]) == (spec.group, "up")
        assert (h["vcpus"]["total"], h["memory_mb"]["total"]) == (spec.vcpus,
                                                                         spec.memory_mb)
    assert Counter(h["group"] for h in hosts) == {"az1": 14, "az2": 13, "az3": 13}
    assert Counter((h["vcpus"]["total"], h["memory_mb"]["total"])
                   for h in hosts) == {size: 20 for size in SIZES}
    groups = api.get("/v1/groups").body["groups"]
    assert {g["name"]: g["hosts_up"] for g in groups} == {"az1": 14, "az2": 13, "az3": 13}

    # One Group Manager and one SQLite file per group, holding that group's hosts only.
    assert [g.options.name for g in cloud.groups] == ["az1", "az2", "az3"]
    assert cloud.group is cloud.groups[0]
    for manager in cloud.groups:
        assert manager.options.database_url == \
            f"sqlite:///{cloud.config.data_dir / f'group-{manager.options.name}.db'}"
        with manager.sessions() as session:
            names = set(session.scalars(sa.select(Host.name)))
        assert names == {h.name for h in cloud.layout.in_group(manager.options.name)}

    # A requested group is honoured.
    for group in ("az2", "az3", "az1"):
        server = api.boot(f"in-{group}", group=group)
        assert (server["status"], server["group"]) == ("ACTIVE", group), server
        assert plan[server["host"]].group == group
    r = api.post("/v1/servers", {"name": "x", "flavor": "m1.tiny", "image": "demo",
                                 "group": "az9"})
    assert r.status == 400 and "no group named 'az9'" in json.dumps(r.body), r

    # Unrequested creates go where the summaries say there is most room: after a
    # group's largest hosts get a server each, the next group has the larger free host.
    landed: Counter[str] = Counter()
    for i in range(30):
        server = api.boot(f"free{i}")
        assert server["status"] == "ACTIVE", server
        landed[server["group"]] += 1
        if len(landed) >= 2:
            break
        summary_seen = api.get("/v1/groups").body["groups"]
        wait_for(lambda s=summary_seen: api.get("/v1/groups").body["groups"] != s, 5,
                 "a fresh group summary")
    assert len(landed) >= 2, landed

    # libvirt's own view: each domain lives on the host the API says, nowhere else.
    servers = api.get("/v1/servers").body["servers"]
    defined = {im.ctx.name: {d.instance_id for d in im.ctx.driver.inventory().instances}
               for im in cloud.instance_managers}
    for s in servers:
        assert [h for h, ids in defined.items() if s["id"] in ids] == [s["host"]]


# --- the multi-process lab ------------------------------------------------------------------


def _sessions_alive(leaders: list[int]) -> list[str]:
    """Processes still running in the sessions the lab's children led."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            sid = os.getsid(int(entry.name))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        if sid in leaders and state != "Z":
            left.append(f"{entry.name}: {(entry / 'cmdline').read_text().replace(chr(0), ' ')}")
    return left


def _drop(urls: list[str]) -> None:
    for url in urls:
        parsed = sa.engine.make_url(normalise_url(url))
        admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        drop_database(admin, str(parsed.database))
        admin.dispose()


@pytest.fixture
def lab_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONBARK_")}
    return {**env, "IRONBARK_BUS_NAMESPACE": f"lab-{uuid.uuid4().hex[:10]}",
            "IRONBARK_HOST_REPORT_INTERVAL": "0.5", "IRONBARK_GROUP_HOST_DOWN_AFTER": "3",
            "IRONBARK_GROUP_SUMMARY_INTERVAL": "0.5", "IRONBARK_CLOUD_RECONCILE_INTERVAL": "1",
            "OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml")}


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_the_multi_process_lab_boots_in_each_group_and_stops_cleanly(
        tmp_path: Path, rabbitmq_url: str, postgres_url: str,
        lab_env: dict[str, str]) -> None:
    from ironbark.lab import free_port

    data = tmp_path / "lab"
    port = free_port()
    group_dbs = [f"{postgres_url}_{g}" for g in ("az1", "az2")]
    argv = [str(Path(sys.executable).parent / "ironbark"), "up", "--multi-process",
            "--hosts", "12", "--groups", "2", "--host-mix", MIX, "--port", str(port),
            "--data-dir", str(data), "--bus-url", rabbitmq_url, "--database-url", postgres_url]
    out = open(tmp_path / "lab.out", "wb")  # noqa: SIM115 (the child writes it)
    proc = subprocess.Popen(argv, env=lab_env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    state: dict = {}
    try:
        wait_for(lambda: (data / "lab.json").exists() or proc.poll() is not None, 120,
                 "the lab to come up")
        assert proc.poll() is None, (tmp_path / "lab.out").read_text()
        state = json.loads((data / "lab.json").read_text())
        assert sorted(state["children"]) == ["cloud", "group-az1", "group-az2", "hosts-az1",
                                             "hosts-az2", "image-store"]
        password = (data / "secrets.toml").read_text().split(
            'admin_password = "')[1].split('"')[0]
        token, _ = keystone.password_token(state["api_url"], "admin", password, "admin")
        api = Api(state["api_url"], token)

        # Every host reported with its planned size, each group from its own process.
        hosts = _hosts(api)
        assert Counter(h["group"] for h in hosts) == {"az1": 6, "az2": 6}
        assert Counter((h["vcpus"]["total"], h["memory_mb"]["total"])
                       for h in hosts) == {size: 6 for size in SIZES}

        ids = {g: [api.create(f"{g}-{i}", group=g)["id"] for i in range(3)]
               for g in ("az1", "az2")}
        for group, members in ids.items():
            for server_id in members:
                server = api.wait(server_id, timeout=60)
                assert (server["status"], server["group"]) == ("ACTIVE", group), server

        # Each group's claims are in its own PostgreSQL database.
        for group, url in zip(("az1", "az2"), group_dbs, strict=True):
            engine = sa.create_engine(normalise_url(url))
            with engine.connect() as conn:
                names = set(conn.scalars(sa.select(Host.name)))
            engine.dispose()
            assert len(names) == 6 and all(h["group"] == group for h in hosts
                                           if h["name"] in names)

        # `ironbark down` sends the lab SIGTERM and waits for the data directory's lock.
        down = subprocess.run([argv[0], "down", "--data-dir", str(data)], env=lab_env,
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down
        assert proc.wait(timeout=30) == 0, (tmp_path / "lab.out").read_text()
        assert _sessions_alive(list(state["children"].values())) == []
        assert "stopping..." in (tmp_path / "lab.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in state.get("children", {}).values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        _drop(group_dbs)


def test_the_plan_is_the_same_in_every_process(make_cloud: CloudFactory) -> None:
    """The all-in-one and a separately computed plan agree host by host (the lab's
    Instance Manager processes rely on it)."""
    cloud = make_cloud(hosts=9, scale={"groups": 2, "host_mix": "8x16:2,16x32:1"})
    assert simulation.plan(cloud.config, 9) == cloud.layout
    sizes = {im.ctx.name: im.ctx.driver.host_info().vcpus for im in cloud.instance_managers}
    assert sizes == {h.name: h.vcpus for h in cloud.layout.hosts}
    assert Counter(sizes.values()) == {8: 6, 16: 3}

