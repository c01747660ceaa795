"""Each tier in its own process, over RabbitMQ and PostgreSQL, and one of them killed.

1 Cloud Manager (gunicorn, two workers), 1 Group Manager, 2 Instance Managers and
the image store, started from their console scripts exactly as an operator would.
Ten servers boot; then one Instance Manager is killed with SIGKILL while work for
it is in flight, more work queues up for it while it is dead, and it is restarted.
Afterwards every server must be in the state its last action asked for, and the
claims must match what the hosts really run: none lost, none doubled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from group_manager.db.models import Claim, Host
from ironbark import keystone
from tests.helpers import Api, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "multi-process-admin-password-0123"
STORE_TOKEN = "multi-process-store-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tier:
    """One tier's process, with its own log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path):
        self.name, self.argv, self.env = name, argv, env
        self.log = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Tier:
        out = open(self.log, "ab")  # noqa: SIM115 (owned by the child)
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out,
                                     start_new_session=True)
        out.close()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class MultiProcessCloud:
    def __init__(self, tmp: Path, bus_url: str, db_url: str):
        self.tmp, self.logs = tmp, tmp / "logs"
        self.logs.mkdir()
        self.api_port, self.store_port = _free_port(), _free_port()
        self.namespace = f"mp-{uuid.uuid4().hex[:10]}"
        self.common = {
            "IRONBARK_BUS_URL": bus_url, "IRONBARK_BUS_NAMESPACE": self.namespace,
            "IRONBARK_DATABASE_URL": db_url, "IRONBARK_GROUP_DATABASE_URL": db_url,
            "IRONBARK_API_PORT": str(self.api_port), "IRONBARK_API_WORKERS": "2",
            "IRONBARK_IDENTITY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "IRONBARK_CLOUD_QUOTA_DEFAULTS": '{"instances": -1, "cores": -1, "ram": -1}',
            "IRONBARK_IMAGE_STORE_PORT": str(self.store_port),
            "IRONBARK_IMAGE_STORE_URL": f"http://127.0.0.1:{self.store_port}",
            "IRONBARK_IMAGE_STORE_TOKEN": STORE_TOKEN,
            "IRONBARK_IMAGE_STORE_DATA_DIR": str(tmp / "store"),
            "IRONBARK_HOST_REPORT_INTERVAL": "0.5", "IRONBARK_GROUP_HOST_DOWN_AFTER": "2",
            "IRONBARK_GROUP_SUMMARY_INTERVAL": "0.5", "IRONBARK_CLOUD_RECONCILE_INTERVAL": "1",
        }
        self.tiers: dict[str, Tier] = {}

    def admin_token(self) -> str:
        """The admin's token, once the Cloud Manager answers (it may still be starting)."""
        found: list[str] = []

        def signed_in() -> bool:
            try:
                found.append(keystone.password_token(f"http://127.0.0.1:{self.api_port}",
                                                     "admin", ADMIN_PASSWORD, "admin")[0])
            except (OSError, PermissionError):
                return False
            return True

        wait_for(signed_in, 60, "the Cloud Manager to accept the admin's sign-in")
        return found[0]

    def env(self, name: str, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("IRONBARK_")}
        return {**base, **self.common, "IRONBARK_DATA_DIR": str(self.tmp / name),
                "IRONBARK_LOGGING_FILE": str(self.logs / f"{name}.app.log"), **extra}

    def tier(self, name: str, script: str, *args: str, **extra: str) -> Tier:
        tier = Tier(name, [str(BIN / script), *args], self.env(name, **extra), self.logs)
        self.tiers[name] = tier
        return tier

    def instance_manager(self, host: str) -> Tier:
        return self.tier(host, "ironbark-instance-manager", IRONBARK_HOST_NAME=host)

    def host_xml(self, host: str) -> Path:
        return self.tmp / host / "hosts" / host / "host.xml"

    def stop(self) -> None:
        for tier in self.tiers.values():
            if tier.alive():
                tier.kill(signal.SIGTERM)

    def dump_logs(self) -> str:
        return "\n".join(f"==== {p.name}\n{p.read_text()[-4000:]}"
                         for p in sorted(self.logs.iterdir()))


@pytest.fixture
def mp_cloud(tmp_path: Path, rabbitmq_url: str,
             postgres_url: str) -> Iterator[MultiProcessCloud]:
    cloud = MultiProcessCloud(tmp_path, rabbitmq_url, postgres_url)
    try:
        cloud.tier("image-store", "ironbark-image-store").start()
        wait_for(lambda: _listening(cloud.store_port), 30, "the image store")
        boot = subprocess.run([str(BIN / "ironbark-cloud-manager"), "bootstrap"],
                              env=cloud.env("bootstrap"), capture_output=True, timeout=60)
        assert boot.returncode == 0, boot.stderr.decode()
        cloud.tier("cloud", "ironbark-cloud-manager").start()
        cloud.tier("group", "ironbark-group-manager").start()
        cloud.instance_manager("mp-h1").start()
        cloud.instance_manager("mp-h2").start()
        yield cloud
    finally:
        cloud.stop()
        print(cloud.dump_logs())  # pytest shows it only when the test failed


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _domains_in_host_file(path: Path) -> dict[str, int]:
    """The simulated hypervisor's own record: domain uuid -> libvirt run state."""
    root = ET.parse(path).getroot()
    ns = "{http://libvirt.org/schemas/domain/test/1.0}"
    return {d.findtext("uuid"): int(d.findtext(f"{ns}runstate") or 1)  # type: ignore[misc]
            for d in root.findall("domain")}


def test_killing_an_instance_manager_loses_nothing(mp_cloud: MultiProcessCloud,
                                                   postgres_url: str) -> None:
    api = Api(f"http://127.0.0.1:{mp_cloud.api_port}", mp_cloud.admin_token())
    wait_for(lambda: _listening(mp_cloud.api_port), 60, "the API")
    hosts_up = lambda: [h["name"] for h in api.get("/v1/hosts").body["hosts"]  # noqa: E731
                        if h["state"] == "up"]
    wait_for(lambda: sorted(hosts_up()) == ["mp-h1", "mp-h2"], 60, "both hosts up")

    ids = [api.create(f"mp{i}", "m1.tiny")["id"] for i in range(10)]
    servers = {i: api.wait(i, timeout=60) for i in ids}
    assert all(s["status"] == "ACTIVE" for s in servers.values()), servers
    # Concurrent spread placements may split 6/4; the victim is the fuller host.
    load = Counter(s["host"] for s in servers.values())
    assert set(load) == {"mp-h1", "mp-h2"}, load
    victim, survivor = sorted(load, key=lambda h: (-load[h], h))
    on_victim = sorted(i for i, s in servers.items() if s["host"] == victim)

    # Work for the victim in flight, then its Instance Manager dies mid-stream.
    expected = {i: "ACTIVE" for i in ids}
    for server_id, action in zip(on_victim[:2], ["pause", "stop"], strict=True):
        assert api.act(server_id, action).status == 202
        expected[server_id] = {"pause": "PAUSED", "stop": "SHUTOFF"}[action]
    mp_cloud.tiers[victim].kill(signal.SIGKILL)

    # While it is dead: it is marked down, new servers go elsewhere, its work queues up.
    wait_for(lambda: hosts_up() == [survivor], 30, f"{victim} marked down")
    extra = [api.create(f"mp-extra{i}", "m1.tiny")["id"] for i in range(2)]
    for server_id in extra:
        assert api.wait(server_id, timeout=60)["host"] == survivor
        expected[server_id] = "ACTIVE"
    assert api.act(on_victim[2], "suspend").status == 202
    expected[on_victim[2]] = "SUSPENDED"
    assert api.delete(f"/v1/servers/{on_victim[3]}").status == 202
    del expected[on_victim[3]]

    mp_cloud.instance_manager(victim).start()
    wait_for(lambda: sorted(hosts_up()) == ["mp-h1", "mp-h2"], 60, f"{victim} back up")
    api.wait_gone(on_victim[3], timeout=60)
    for server_id, status in expected.items():
        server = api.wait(server_id, timeout=60)
        assert server["status"] == status, (server, mp_cloud.dump_logs())
        assert server["fault"] is None

    # Claims match what each host's hypervisor really holds: none lost, none doubled.
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        active = conn.execute(sa.select(Claim.instance_id, Claim.host)
                              .where(Claim.state == "active")).all()
        used = dict(conn.execute(sa.select(Host.name, Host.vcpus_used)).all())
    engine.dispose()
    assert sorted(i for i, _ in active) == sorted(expected)
    for host in ("mp-h1", "mp-h2"):
        claimed = {i for i, h in active if h == host}
        assert set(_domains_in_host_file(mp_cloud.host_xml(host))) == claimed
        assert used[host] == len(claimed)  # m1.tiny is one vCPU


def test_killing_the_group_manager_mid_burst_claims_each_server_once(
        mp_cloud: MultiProcessCloud, postgres_url: str) -> None:
    """Builds in flight when the Group Manager dies are redelivered to its successor,
    which must finish each exactly once: no server lost, no claim doubled."""
    api = Api(f"http://127.0.0.1:{mp_cloud.api_port}", mp_cloud.admin_token())
    wait_for(lambda: _listening(mp_cloud.api_port), 60, "the API")
    wait_for(lambda: len([h for h in api.get("/v1/hosts").body["hosts"]
                          if h["state"] == "up"]) == 2, 60, "both hosts up")
    # Half the burst races the kill (some builds are caught half done, depending on
    # timing); the other half is sent while the Group Manager is dead, so it
    # certainly waits in the durable queue for the successor.
    ids = [api.create(f"burst{i}", "m1.tiny")["id"] for i in range(8)]
    mp_cloud.tiers["group"].kill(signal.SIGKILL)
    ids += [api.create(f"burst{i}", "m1.tiny")["id"] for i in range(8, 16)]
    assert all(api.server(i)["status"] == "BUILD" for i in ids[8:])
    mp_cloud.tier("group", "ironbark-group-manager").start()

    servers = [api.wait(i, timeout=90) for i in ids]
    assert [s["status"] for s in servers] == ["ACTIVE"] * len(ids), servers
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        claims = conn.execute(sa.select(Claim.instance_id, Claim.host, Claim.state)).all()
        hosts = {name: (used, count) for name, used, count in conn.execute(
            sa.select(Host.name, Host.vcpus_used, Host.instances)).all()}
    engine.dispose()
    assert sorted(i for i, _, state in claims if state == "active") == sorted(ids)
    assert len(claims) == len(ids)  # one claim row per server, none failed or doubled
    for host in ("mp-h1", "mp-h2"):
        claimed = {i for i, h, _ in claims if h == host}
        assert set(_domains_in_host_file(mp_cloud.host_xml(host))) == claimed
        assert hosts[host] == (len(claimed), len(claimed))
    assert {s["host"] for s in servers} <= {"mp-h1", "mp-h2"}
