"""Real guests end to end: the test guest (scripts/test-guest.sh) booted by QEMU through
libvirtd (qemu:///system), in a cloud of one real QEMU host and one simulated host,
driven through the API; each step checked on the guest's own console and in libvirt.

Slow by nature (each boot is a few seconds of TCG), so one test walks the whole
lifecycle of one guest rather than one test per action.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud_manager.services.server_create import hostname_of
from instance_manager.driver.libvirt.domain_xml import CONSOLE_LOG, DISK_FILE
from ironbark.allinone import AllInOne
from tests import guest
from tests.conftest import CloudFactory
from tests.helpers import Api, wait_for

QEMU_URI = "qemu:///system"
CMDLINE = "console=ttyS0 quiet"
BOOT_TIMEOUT = 90.0
PUBLIC_KEY = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " op@lab"


@pytest.fixture(scope="module")
def guest_files() -> guest.GuestFiles:
    return guest.build()


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator[libvirt.virConnect]:
    """libvirtd's connection; afterwards, every domain a test left under tmp_path goes."""
    try:
        conn = libvirt.open(QEMU_URI)
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd is not running ({exc}); scripts/test.sh starts it")
    yield conn
    for domain in conn.listAllDomains():
        if str(tmp_path) in domain.XMLDesc(0):
            if domain.isActive():
                domain.destroy()
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    conn.close()


def _cloud(make_cloud: CloudFactory, data_dir: Path) -> AllInOne:
    """Host 1 is this machine (real QEMU), host 2 simulated and too small for 'big'."""
    return make_cloud(hosts=2, data_dir=data_dir,
                      host={"hypervisor": "qemu", "simulated_memory_mb": 2048})


def _image(api: Api, name: str, data: bytes, **fields: Any) -> dict[str, Any]:
    r = api.post("/v1/images", {"name": name, **fields})
    assert r.status == 201, r
    put = api.session.put(f"{api.url}/v1/images/{r.body['image']['id']}/file", data=data,
                          headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert put.status_code == 200, put.text
    return put.json()["image"]


def _upload_guest(api: Api, files: guest.GuestFiles) -> None:
    kernel = _image(api, "guest-kernel", files.kernel.read_bytes(), disk_format="aki")
    ramdisk = _image(api, "guest-ramdisk", files.initrd.read_bytes(), disk_format="ari")
    _image(api, "guest", b"\0" * (1024 * 1024), disk_format="ami", kernel_id=kernel["id"],
           ramdisk_id=ramdisk["id"], properties={"os_command_line": CMDLINE})
    _image(api, "guest-disk", files.disk_qcow2.read_bytes(), disk_format="qcow2")


def _console(api: Api, server_id: str) -> str:
    r = api.get(f"/v1/servers/{server_id}/console-log")
    assert r.status == 200, r
    return r.body["output"]


def _markers(api: Api, server_id: str, count: int) -> list[guest.Marker]:
    """Until the guest has printed ``count`` READY markers (one per boot)."""
    def enough() -> list[guest.Marker] | None:
        found = guest.parse_markers(_console(api, server_id))
        return found if len(found) >= count else None

    return wait_for(enough, timeout=BOOT_TIMEOUT, what=f"boot marker {count} of {server_id}")


def _act(api: Api, server_id: str, action: str, status: str, **extra: Any) -> None:
    r = api.act(server_id, action, **extra)
    assert r.status == 202, r
    server = api.wait(server_id, timeout=BOOT_TIMEOUT)
    assert server["status"] == status and server["fault"] is None, (action, server)


def _domain(conn: libvirt.virConnect, server_id: str) -> libvirt.virDomain:
    return conn.lookupByUUIDString(server_id)


def _state(conn: libvirt.virConnect, server_id: str) -> int:
    return _domain(conn, server_id).state()[0]


def test_a_real_guest_through_its_whole_lifecycle(
        make_cloud: CloudFactory, qemu: libvirt.virConnect, guest_files: guest.GuestFiles,
        tmp_path: Path) -> None:
    data_dir = tmp_path / "lab"
    cloud = _cloud(make_cloud, data_dir)
    admin = Api(cloud.api_url, cloud.admin_token)
    hosts = {h["name"]: h for h in admin.get("/v1/hosts").body["hosts"]}
    assert sorted(h["hypervisor_type"] for h in hosts.values()) == ["qemu", "test"], hosts
    real_host = next(n for n, h in hosts.items() if h["hypervisor_type"] == "qemu")
    instances_dir = Path(next(im.ctx.options.state_dir for im in cloud.instance_managers
                              if im.ctx.name == real_host)) / "instances"

    _upload_guest(admin, guest_files)
    assert admin.post("/v1/keypairs", {"name": "lab", "public_key": PUBLIC_KEY}).status == 201
    assert admin.post("/v1/flavors", {"name": "big", "vcpus": 1, "memory_mb": 3072,
                                      "disk_gb": 0}).status == 201
    assert admin.post("/v1/server-groups", {"name": "pair",
                                            "policy": "anti-affinity"}).status == 201

    # The scheduler treats the real host like any other: a pair kept apart lands on both.
    user_data = base64.b64encode(b"#!/bin/sh\necho from-user-data\n").decode()
    created = admin.post("/v1/servers", {
        "name": "Lab Guest", "flavor": "m1.tiny", "image": "guest", "key_name": "lab",
        "user_data": user_data, "server_group": "pair", "min_count": 2, "max_count": 2})
    assert created.status == 202, created
    pair = [admin.wait(s["id"], timeout=BOOT_TIMEOUT) for s in created.body["servers"]]
    assert {s["status"] for s in pair} == {"ACTIVE"}, pair
    assert {s["host"] for s in pair} == set(hosts)
    server = next(s for s in pair if s["host"] == real_host)
    sid = server["id"]

    # Its console: the marker names this instance, its hostname and its key.
    (first,) = _markers(admin, sid, 1)
    assert first == guest.Marker(sid, hostname_of(server["name"]), PUBLIC_KEY), first
    wait_for(lambda: "from-user-data" in _console(admin, sid), timeout=10,
             what="the user data script to run")
    assert "IRONBARK-GUEST-USERDATA #!/bin/sh" in _console(admin, sid)
    tail = admin.get(f"/v1/servers/{sid}/console-log", lines="1").body["output"]
    assert tail.count("\n") <= 1 and tail in _console(admin, sid)
    assert _state(qemu, sid) == libvirt.VIR_DOMAIN_RUNNING

    # stop (ACPI: the guest powers itself off) and start (a fresh boot)
    _act(admin, sid, "stop", "SHUTOFF")
    assert guest.POWEROFF in _console(admin, sid)
    assert _state(qemu, sid) == libvirt.VIR_DOMAIN_SHUTOFF
    _act(admin, sid, "start", "ACTIVE")
    _markers(admin, sid, 2)

    # soft reboot (asked of the guest), hard reboot (power-cycled)
    poweroffs = _console(admin, sid).count(guest.POWEROFF)
    _act(admin, sid, "reboot", "ACTIVE", type="soft")
    _markers(admin, sid, 3)
    assert _console(admin, sid).count(guest.POWEROFF) == poweroffs + 1  # the guest was asked
    _act(admin, sid, "reboot", "ACTIVE", type="hard")
    _markers(admin, sid, 4)
    assert _console(admin, sid).count(guest.POWEROFF) == poweroffs + 1  # it was not

    # pause / unpause: frozen in memory, then on from where it was
    _act(admin, sid, "pause", "PAUSED")
    assert _state(qemu, sid) == libvirt.VIR_DOMAIN_PAUSED
    _act(admin, sid, "unpause", "ACTIVE")
    assert _state(qemu, sid) == libvirt.VIR_DOMAIN_RUNNING

    # suspend: memory saved to disk; it survives the whole cloud (and its Instance
    # Manager) restarting, and resumes without booting again.
    _act(admin, sid, "suspend", "SUSPENDED")
    assert _state(qemu, sid) == libvirt.VIR_DOMAIN_SHUTOFF
    assert _domain(qemu, sid).hasManagedSaveImage(0)
    cloud.stop()
    cloud = _cloud(make_cloud, data_dir)
    admin = Api(cloud.api_url, cloud.admin_token)
    assert admin.server(sid)["status"] == "SUSPENDED"
    _act(admin, sid, "resume", "ACTIVE")
    assert _state(qemu, sid) == libvirt.VIR_DOMAIN_RUNNING
    time.sleep(1.0)
    assert len(guest.parse_markers(_console(admin, sid))) == 4  # restored, not rebooted
    _act(admin, sid, "reboot", "ACTIVE", type="soft")  # and it is alive: it answers ACPI
    _markers(admin, sid, 5)

    # Power-state sync: the guest powers off behind Ironbark's back, then is destroyed.
    report = cloud.config.host.report_interval
    _domain(qemu, sid).shutdown()
    wait_for(lambda: admin.server(sid)["status"] == "SHUTOFF", timeout=30 + 3 * report,
             what="the guest's own power-off to show")
    _act(admin, sid, "start", "ACTIVE")
    _markers(admin, sid, 6)
    _domain(qemu, sid).destroy()
    wait_for(lambda: admin.server(sid)["status"] == "SHUTOFF", timeout=3 * report + 5,
             what="a destroyed domain to show as SHUTOFF")

    # A domain Ironbark did not define is reported and left alone.
    foreign = qemu.defineXML(
        f"<domain type='qemu'><name>foreign-{uuid.uuid4().hex[:8]}</name><memory>65536</memory>"
        f"<os><type>hvm</type></os><description>{tmp_path}</description></domain>")
    wait_for(lambda: foreign.name() in admin.get(f"/v1/hosts/{real_host}")
             .body["host"]["unknown_domains"], timeout=5 * report + 5,
             what="the foreign domain to be reported")
    assert qemu.lookupByName(foreign.name()) is not None
    foreign.undefine()

    # A whole-disk image boots through the BIOS; 'big' fits only the real host.
    disk_guest = admin.boot("disk-guest", flavor="big", image="guest-disk", key_name="lab")
    assert disk_guest["status"] == "ACTIVE" and disk_guest["host"] == real_host, disk_guest
    assert _markers(admin, disk_guest["id"], 1)[0].uuid == disk_guest["id"]

    # Snapshot: only chunks the store lacks travel; the snapshot boots.
    r = admin.post(f"/v1/servers/{disk_guest['id']}/action",
                   {"create_image": {"name": "disk-guest-snap"}})
    assert r.status == 202, r
    snap_id = r.body["image"]["id"]
    snap = wait_for(lambda: (i := admin.get(f"/v1/images/{snap_id}").body["image"])
                    ["status"] == "active" and i, timeout=BOOT_TIMEOUT, what="the snapshot")
    assert snap["size"] > 0
    assert admin.wait(disk_guest["id"])["status"] == "ACTIVE"
    from_snap = admin.boot("from-snap", flavor="big", image=snap_id)
    assert from_snap["status"] == "ACTIVE", from_snap
    assert _markers(admin, from_snap["id"], 1)[0].uuid == from_snap["id"]

    # Delete leaves nothing behind: no domain, no overlay, drive or log, no claim.
    live = [sid, disk_guest["id"], from_snap["id"]]
    before = {d.UUIDString() for d in qemu.listAllDomains()}
    assert set(live) <= before
    assert {p.name for p in instances_dir.iterdir()} >= set(live)
    assert {f.name for f in (instances_dir / sid).iterdir()} == {
        DISK_FILE, "disk.config", CONSOLE_LOG}
    for server_id in [*live, *(s["id"] for s in pair if s["id"] != sid)]:
        assert admin.delete(f"/v1/servers/{server_id}").status == 202
    for server_id in [*live, *(s["id"] for s in pair)]:
        admin.wait_gone(server_id, timeout=60)
    after = {d.UUIDString() for d in qemu.listAllDomains()}
    assert not set(live) & after and after <= before
    assert list(instances_dir.iterdir()) == []
    wait_for(lambda: all(h["instances"] == 0 and h["vcpus"]["used"] == 0
                         for h in admin.get("/v1/hosts").body["hosts"]),
             timeout=10, what="every claim to be released")

