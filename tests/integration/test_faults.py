"""Faults: lost tasks, vanished guests, restarts and redeliveries.

"Ghost" hosts and groups are real participants that stop answering: a host report
or group summary is sent on the bus exactly as a live Instance or Group Manager
would send it, and then nobody serves that host's or group's queue, which is what a
crashed manager looks like from the rest of the cloud.
"""

from __future__ import annotations

import time
import uuid

import libvirt
import sqlalchemy as sa

from group_manager import build
from group_manager.db.models import Claim, Host
from ironbark.allinone import AllInOne
from ironbark.periodic import Periodic
from message_bus.lifecycle import Event
from message_bus.messages import (
    BuildInstance,
    FlavorSpec,
    GroupSummary,
    HostReport,
    ImageRef,
    InstanceUpdate,
    Resources,
)
from tests.conftest import CloudFactory
from tests.helpers import Api, wait_for

FAST_DEADLINES = {"scheduling": 1.0, "spawning": 1.0, "powering-off": 1.0, "deleting": 1.0}


def _ghost_host(cloud: AllInOne, name: str = "ghost") -> Periodic:
    """A host that reports like a live Instance Manager but serves nothing."""
    def report() -> None:
        cloud.bus.cast(f"group.{cloud.config.group.name}", HostReport(
            host=name, group=cloud.config.group.name, boot_id="ghost-boot",
            hypervisor_type="test", capacity=Resources(vcpus=8, memory_mb=16384, disk_gb=100),
            reserved=Resources(vcpus=0, memory_mb=0, disk_gb=0), domains=[],
            observed_at=time.time()))
    return Periodic("ghost-report", 0.2, report).start()


def test_a_spawn_lost_with_its_host_ends_in_error_with_the_reason(
        make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=0, bus={"rpc_timeout": 1.0},
                       cloud={"task_deadlines": FAST_DEADLINES})
    ghost = _ghost_host(cloud)
    try:
        api = Api(cloud.api_url, cloud.admin_token)
        wait_for(lambda: api.get("/v1/groups").body["groups"][0]["hosts_up"] == 1,
                 what="the ghost host to be up")
        server = api.wait(api.create()["id"], timeout=15)
    finally:
        ghost.stop()
    assert server["status"] == "ERROR"
    fault = server["fault"]["message"]
    assert "task 'spawning' did not finish within 1 s" in fault
    assert "host ghost" in fault and "did not answer" in fault


def test_a_build_lost_with_its_group_ends_in_error(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1, bus={"rpc_timeout": 1.0},
                       cloud={"task_deadlines": FAST_DEADLINES})
    cloud.bus.cast("cloud", GroupSummary(
        group="ghost-group", policy="spread", hosts_up=1, hosts_down=0,
        capacity=Resources(vcpus=8, memory_mb=8192, disk_gb=10),
        used=Resources(vcpus=0, memory_mb=0, disk_gb=0),
        largest_free=Resources(vcpus=8, memory_mb=8192, disk_gb=10)))
    api = Api(cloud.api_url, cloud.admin_token)
    wait_for(lambda: len(api.get("/v1/groups").body["groups"]) == 2, what="ghost group")
    server = api.wait(api.create(group="ghost-group")["id"], timeout=15)
    assert server["status"] == "ERROR"
    assert "task 'scheduling' did not finish within 1 s" in server["fault"]["message"]
    assert "group 'ghost-group' did not answer" in server["fault"]["message"]
    # Nothing was claimed anywhere, and the error can be deleted.
    assert api.delete(f"/v1/servers/{server['id']}").status == 202
    api.wait_gone(server["id"])


def test_with_no_group_at_all_a_create_fails_clearly(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1, cloud={"group_stale_after": 0.5},
                       group={"summary_interval": 60.0})
    api = Api(cloud.api_url, cloud.admin_token)
    time.sleep(0.6)  # the only summary is now stale: no group counts as reporting
    server = api.create()
    assert server["status"] == "ERROR"
    assert "no Group Manager with hosts up has reported" in server["fault"]["message"]


def _libvirt(cloud: AllInOne, host: str) -> libvirt.virConnect:
    """The simulated host's own libvirt connection (its state lives in it)."""
    im = next(im for im in cloud.instance_managers if im.ctx.name == host)
    return im.ctx.driver._host.connection()


def test_a_guest_destroyed_outside_ironbark_shows_shutoff(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1)
    api = Api(cloud.api_url, cloud.admin_token)
    server = api.boot()
    _libvirt(cloud, server["host"]).lookupByUUIDString(server["id"]).destroy()
    started = time.monotonic()
    after = api.wait(server["id"], lambda s: s["status"] == "SHUTOFF", timeout=5)
    assert time.monotonic() - started <= cloud.config.host.report_interval + 1.0
    assert after["power_state"] == "shutdown" and after["task_state"] is None
    assert api.act(server["id"], "start").status == 202  # and it can be started again
    assert api.wait(server["id"])["status"] == "ACTIVE"


def test_a_guest_that_powers_itself_off_shows_shutoff(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1)
    api = Api(cloud.api_url, cloud.admin_token)
    server = api.boot()
    _libvirt(cloud, server["host"]).lookupByUUIDString(server["id"]).shutdown()
    after = api.wait(server["id"], lambda s: s["status"] == "SHUTOFF", timeout=5)
    assert after["power_state"] == "shutdown"


def test_a_domain_that_vanishes_puts_its_server_in_error(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1)
    api = Api(cloud.api_url, cloud.admin_token)
    server = api.boot()
    domain = _libvirt(cloud, server["host"]).lookupByUUIDString(server["id"])
    domain.destroy()
    domain.undefine()
    after = api.wait(server["id"], lambda s: s["status"] == "ERROR", timeout=5)
    assert "disappeared from host host1" in after["fault"]["message"]


def test_a_foreign_domain_is_reported_and_left_alone(make_cloud: CloudFactory) -> None:
    cloud = make_cloud(hosts=1)
    api = Api(cloud.api_url, cloud.admin_token)
    conn = _libvirt(cloud, "host1")
    conn.defineXML("<domain type='test'><name>someone-elses-vm</name><memory>65536</memory>"
                   "<os><type>hvm</type></os></domain>").create()
    host = wait_for(lambda: (h := api.get("/v1/hosts/host1").body["host"])["unknown_domains"]
                    and h, what="the foreign domain to be reported")
    assert host["unknown_domains"] == ["someone-elses-vm"]
    time.sleep(2 * cloud.config.host.report_interval)
    assert conn.lookupByName("someone-elses-vm").isActive()


def test_the_all_in_one_cloud_keeps_its_state_across_a_restart(
        make_cloud: CloudFactory, tmp_path) -> None:
    data = tmp_path / "persistent"
    cloud = make_cloud(hosts=2, data_dir=data)
    api = Api(cloud.api_url, cloud.admin_token)
    running = api.boot("running")
    paused = api.boot("paused")
    assert api.act(paused["id"], "pause").status == 202
    api.wait(paused["id"])
    suspended = api.boot("suspended")
    assert api.act(suspended["id"], "suspend").status == 202
    api.wait(suspended["id"])
    before = {h["name"]: h for h in api.get("/v1/hosts").body["hosts"]}
    cloud.stop()

    again = make_cloud(hosts=2, data_dir=data)
    api = Api(again.api_url, again.admin_token)
    expect = {running["id"]: "ACTIVE", paused["id"]: "PAUSED", suspended["id"]: "SUSPENDED"}
    for server_id, status in expect.items():
        server = api.server(server_id)
        assert server["status"] == status and server["fault"] is None, server
    after = {h["name"]: h for h in api.get("/v1/hosts").body["hosts"]}
    for name in before:
        assert after[name]["vcpus"]["used"] == before[name]["vcpus"]["used"]
        assert after[name]["instances"] == before[name]["instances"]
    assert api.act(suspended["id"], "resume").status == 202  # restored from its save
    assert api.wait(suspended["id"])["status"] == "ACTIVE"


def test_a_redelivered_build_claims_once(cloud: AllInOne) -> None:
    """The window the idempotency key cannot cover: the work was done, the key was not
    recorded. Running the build workflow twice must still claim once."""
    api = Api(cloud.api_url, cloud.admin_token)
    image = api.get("/v1/images/demo").body["image"]
    msg = BuildInstance(
        instance_id=str(uuid.uuid4()), project_id="p", name="twice",
        flavor=FlavorSpec(name="t", vcpus=2, memory_mb=1024, disk_gb=3),
        image=ImageRef(id=image["id"], name="demo", disk_format="raw", size=image["size"],
                       sha256=image["sha256"]), task_id=str(uuid.uuid4()))
    build.build(cloud.group.ctx, msg)
    build.build(cloud.group.ctx, msg)
    with cloud.group.sessions() as session:
        claims = session.scalars(sa.select(Claim).where(Claim.instance_id == msg.instance_id))
        (claim,) = claims.all()
        assert claim.state == "active"
        used = session.scalar(sa.select(sa.func.sum(Host.vcpus_used)))
        assert used == 2


def test_a_late_update_of_an_old_task_is_dropped(cloud: AllInOne) -> None:
    api = Api(cloud.api_url, cloud.admin_token)
    server = api.boot()
    assert api.act(server["id"], "stop").status == 202
    assert api.wait(server["id"])["status"] == "SHUTOFF"
    cloud.bus.cast("cloud", InstanceUpdate(
        instance_id=server["id"], task_id=str(uuid.uuid4()), event=Event.ACTION_DONE,
        group="default", host=server["host"]))
    cloud.bus.cast("cloud", InstanceUpdate(
        instance_id=server["id"], task_id=str(uuid.uuid4()), event=Event.BUILD_FAILED,
        group="default", reason="stale"))
    time.sleep(0.3)
    after = api.server(server["id"])
    assert (after["status"], after["fault"]) == ("SHUTOFF", None)
