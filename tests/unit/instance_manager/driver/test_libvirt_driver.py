"""The libvirt driver against libvirt's real test driver (no mocks)."""

from __future__ import annotations

import json
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from instance_manager.driver.base import (
    DomainInfo,
    DriverError,
    HostInfo,
    InstanceNotFound,
    InstanceSpec,
)
from instance_manager.driver.libvirt import LibvirtDriver, SimulatedHost, from_options
from ironbark.config import HostOptions
from message_bus.lifecycle import PowerState

P = PowerState
VCPUS, MEMORY_MB, DISK_GB = 8, 16384, 200


@pytest.fixture
def base_image(tmp_path: Path) -> Path:
    """A 1 MiB raw image: enough for qemu-img, instant to make."""
    path = tmp_path / "images" / "base.raw"
    path.parent.mkdir()
    path.write_bytes(b"\0" * (1024 * 1024))
    return path


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    return tmp_path / "host" / "host.xml"


@pytest.fixture
def open_driver(host_file: Path) -> Iterator[Callable[..., LibvirtDriver]]:
    """Open a driver on the test host file; each call is a fresh connection (a restart)."""
    opened: list[LibvirtDriver] = []

    def _open(vcpus: int = VCPUS, memory_mb: int = MEMORY_MB, disk_gb: int = DISK_GB):
        sim = SimulatedHost(host_file, vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb)
        driver = LibvirtDriver(sim.uri, simulated=sim)
        opened.append(driver)
        return driver

    yield _open
    for driver in opened:
        driver.close()


@pytest.fixture
def driver(open_driver: Callable[..., LibvirtDriver]) -> LibvirtDriver:
    return open_driver()


@pytest.fixture
def make_spec(tmp_path: Path, base_image: Path) -> Callable[..., InstanceSpec]:
    def _make(name: str = "vm", **overrides) -> InstanceSpec:
        instance_id = overrides.pop("instance_id", str(uuid.uuid4()))
        fields = dict(
            instance_id=instance_id,
            name=name,
            vcpus=1,
            memory_mb=512,
            disk_gb=1,
            image_id="img-1",
            image_path=base_image,
            image_format="raw",
            instance_dir=tmp_path / "instances" / instance_id,
        )
        fields.update(overrides)
        return InstanceSpec(**fields)

    return _make


def qemu_img_info(path: Path) -> dict:
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", str(path)], check=True, capture_output=True
    ).stdout
    return json.loads(out)


def file_domains(host_file: Path) -> dict[str, ET.Element]:
    """The domains recorded in a simulated host's file, by name."""
    return {d.findtext("name"): d for d in ET.parse(host_file).getroot().iter("domain")}


# -- host ----------------------------------------------------------------------


def test_host_info_reports_the_simulated_sizes(driver):
    assert driver.host_info() == HostInfo("test", VCPUS, MEMORY_MB, DISK_GB)


def test_new_sizes_apply_on_reopen_and_keep_the_domains(open_driver, make_spec):
    spec = make_spec()
    open_driver().spawn(spec)
    bigger = open_driver(vcpus=64, memory_mb=262144, disk_gb=4000)
    assert bigger.host_info() == HostInfo("test", 64, 262144, 4000)
    assert bigger.power_state(spec.instance_id) is P.RUNNING


def test_from_options_opens_the_simulated_host_under_state_dir(tmp_path):
    options = HostOptions(state_dir=tmp_path / "hv1", simulated_vcpus=4,
                          simulated_memory_mb=2048, simulated_disk_gb=50)
    driver = from_options(options)
    try:
        assert driver.host_info() == HostInfo("test", 4, 2048, 50)
        assert (tmp_path / "hv1" / "host.xml").is_file()
    finally:
        driver.close()


def test_from_options_uses_the_configured_uri(tmp_path):
    options = HostOptions(hypervisor_uri=f"test://{tmp_path}/elsewhere.xml", simulated_vcpus=2)
    driver = from_options(options)
    try:
        assert driver.host_info().vcpus == 2
        assert (tmp_path / "elsewhere.xml").is_file()
    finally:
        driver.close()


# -- spawn ---------------------------------------------------------------------


def test_spawn_defines_and_starts_a_domain_over_an_overlay(driver, make_spec, base_image):
    spec = make_spec("web-1", disk_gb=2)
    assert driver.spawn(spec) is P.RUNNING

    assert driver.power_state(spec.instance_id) is P.RUNNING
    assert driver.inventory().instances == [DomainInfo(spec.instance_id, "web-1", P.RUNNING)]
    info = qemu_img_info(spec.instance_dir / "disk")
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == str(base_image)
    assert info["virtual-size"] == 2 * 1024**3


def test_spawn_is_idempotent(driver, make_spec):
    spec = make_spec()
    driver.spawn(spec)
    assert driver.spawn(spec) is P.RUNNING
    assert len(driver.inventory().instances) == 1


def test_spawn_again_starts_a_stopped_domain(driver, make_spec):
    spec = make_spec()
    driver.spawn(spec)
    driver.power_off(spec.instance_id, timeout=1)
    assert driver.spawn(spec) is P.RUNNING


def test_disk_smaller_than_the_image_takes_the_image_size(driver, make_spec):
    spec = make_spec(disk_gb=0)
    driver.spawn(spec)
    assert qemu_img_info(spec.instance_dir / "disk")["virtual-size"] == 1024 * 1024


def test_domain_xml_carries_metadata_and_console(driver, make_spec, host_file):
    spec = make_spec("a <b> & c")
    driver.spawn(spec)
    dom = file_domains(host_file)[f"ironbark-{spec.instance_id}"]
    ns = {"ib": "https://ironbark.dev/xmlns/instance/1"}
    meta = dom.find("metadata/ib:instance", ns)
    assert meta is not None
    assert meta.findtext("ib:id", namespaces=ns) == spec.instance_id
    assert meta.findtext("ib:name", namespaces=ns) == "a <b> & c"
    assert meta.findtext("ib:image_id", namespaces=ns) == "img-1"
    assert meta.findtext("ib:instance_dir", namespaces=ns) == str(spec.instance_dir)
    assert dom.findtext("uuid") == spec.instance_id
    assert dom.find("devices/serial/source").get("path") == str(spec.instance_dir / "console.log")
    assert dom.find("devices/disk/source").get("file") == str(spec.instance_dir / "disk")


def test_failed_spawn_leaves_nothing_behind(driver, make_spec, host_file, tmp_path):
    spec = make_spec(image_path=tmp_path / "no-such-image.raw")
    with pytest.raises(DriverError, match=spec.instance_id) as err:
        driver.spawn(spec)
    assert "qemu-img" in str(err.value)
    assert not spec.instance_dir.exists()
    assert driver.inventory().instances == []
    assert driver.power_state(spec.instance_id) is P.MISSING
    assert file_domains(host_file) == {}


def test_failed_define_removes_the_overlay_and_directory(host_file, open_driver, make_spec):
    spec = make_spec()
    # A foreign domain already holds the name, under another uuid: libvirt refuses
    # the definition after the overlay was made.
    host_file.parent.mkdir(parents=True)
    host_file.write_text(
        f"<node><domain type='test'><name>ironbark-{spec.instance_id}</name>"
        f"<uuid>{uuid.uuid4()}</uuid><memory>1024</memory><os><type>hvm</type></os>"
        "</domain></node>"
    )
    driver = open_driver()
    with pytest.raises(DriverError, match=f"cannot spawn instance {spec.instance_id}: .*exists"):
        driver.spawn(spec)
    assert not spec.instance_dir.exists()
    assert driver.inventory().instances == []
    assert driver.inventory().foreign == [f"ironbark-{spec.instance_id}"]


def test_failed_spawn_keeps_a_directory_it_did_not_make(driver, make_spec, tmp_path):
    spec = make_spec(image_path=tmp_path / "no-such-image.raw")
    spec.instance_dir.mkdir(parents=True)
    (spec.instance_dir / "keep.txt").write_text("not ours")
    with pytest.raises(DriverError):
        driver.spawn(spec)
    assert sorted(p.name for p in spec.instance_dir.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("bad", [{"vcpus": 0}, {"memory_mb": 0}, {"disk_gb": -1}])
def test_spawn_refuses_impossible_sizes(driver, make_spec, bad):
    spec = make_spec(**bad)
    with pytest.raises(DriverError, match="at least 1 vCPU"):
        driver.spawn(spec)
    assert not spec.instance_dir.exists()


def test_spawn_refuses_an_id_that_is_not_a_uuid(driver, make_spec):
    with pytest.raises(DriverError, match="not a uuid"):
        driver.spawn(make_spec(instance_id="not-a-uuid"))


def test_concurrent_spawns_all_persist(driver, open_driver, make_spec):
    specs = [make_spec(f"vm-{i}") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(driver.spawn, specs))
    assert states == [P.RUNNING] * 8
    restarted = open_driver()
    assert sorted(d.instance_id for d in restarted.inventory().instances) == sorted(
        s.instance_id for s in specs
    )
    assert {d.power_state for d in restarted.inventory().instances} == {P.RUNNING}


# -- power operations ----------------------------------------------------------


@pytest.fixture
def running(driver, make_spec) -> str:
    spec = make_spec()
    driver.spawn(spec)
    return spec.instance_id


def test_pause_and_unpause(driver, running):
    driver.pause(running)
    assert driver.power_state(running) is P.PAUSED
    driver.pause(running)  # no-op
    driver.unpause(running)
    assert driver.power_state(running) is P.RUNNING
    driver.unpause(running)  # no-op
    assert driver.power_state(running) is P.RUNNING


def test_suspend_and_resume(driver, running):
    driver.suspend(running)
    assert driver.power_state(running) is P.SUSPENDED
    driver.suspend(running)  # no-op
    driver.resume(running)
    assert driver.power_state(running) is P.RUNNING
    driver.resume(running)  # no-op


def test_suspend_a_paused_guest_resumes_running(driver, running):
    driver.pause(running)
    driver.suspend(running)
    assert driver.power_state(running) is P.SUSPENDED
    driver.resume(running)
    assert driver.power_state(running) is P.RUNNING


def test_power_off_and_on(driver, running):
    driver.power_off(running, timeout=1)
    assert driver.power_state(running) is P.SHUTDOWN
    driver.power_off(running, timeout=1)  # no-op
    driver.power_on(running)
    assert driver.power_state(running) is P.RUNNING
    driver.power_on(running)  # no-op
    assert driver.power_state(running) is P.RUNNING


def test_soft_reboot_keeps_it_running(driver, running):
    driver.reboot(running, hard=False)
    assert driver.power_state(running) is P.RUNNING


def test_soft_reboot_of_a_stopped_guest_is_refused(driver, running):
    driver.power_off(running, timeout=1)
    with pytest.raises(DriverError, match="shutdown"):
        driver.reboot(running, hard=False)


@pytest.mark.parametrize("before", ["running", "paused", "suspended", "shutdown"])
def test_hard_reboot_ends_running_from_anywhere(driver, running, before):
    if before == "paused":
        driver.pause(running)
    elif before == "suspended":
        driver.suspend(running)
    elif before == "shutdown":
        driver.power_off(running, timeout=1)
    driver.reboot(running, hard=True)
    assert driver.power_state(running) is P.RUNNING
    driver.power_off(running, timeout=1)  # the managed save image was dropped
    assert driver.power_state(running) is P.SHUTDOWN


def test_operations_on_a_stopped_guest_are_refused(driver, running):
    driver.power_off(running, timeout=1)
    for op in (driver.pause, driver.unpause, driver.suspend):
        with pytest.raises(DriverError, match=running):
            op(running)
    assert driver.power_state(running) is P.SHUTDOWN


# -- destroy -------------------------------------------------------------------


@pytest.mark.parametrize("before", ["running", "paused", "suspended", "shutdown"])
def test_destroy_removes_domain_and_directory(driver, make_spec, host_file, before):
    spec = make_spec()
    driver.spawn(spec)
    if before == "paused":
        driver.pause(spec.instance_id)
    elif before == "suspended":
        driver.suspend(spec.instance_id)
    elif before == "shutdown":
        driver.power_off(spec.instance_id, timeout=1)
    driver.destroy(spec.instance_id)
    assert driver.power_state(spec.instance_id) is P.MISSING
    assert not spec.instance_dir.exists()
    assert file_domains(host_file) == {}
    driver.destroy(spec.instance_id)  # idempotent


# -- unknown instances ---------------------------------------------------------


@pytest.mark.parametrize("instance_id", ["0b9c7d2e-5f41-4a8e-9d3c-6e2f1a7b8c90", "not-a-uuid"])
def test_unknown_instances(driver, instance_id):
    assert driver.power_state(instance_id) is P.MISSING
    driver.destroy(instance_id)
    ops = [
        driver.power_on, driver.pause, driver.unpause, driver.suspend, driver.resume,
        lambda i: driver.power_off(i, 1), lambda i: driver.reboot(i, False),
        lambda i: driver.reboot(i, True),
    ]
    for op in ops:
        with pytest.raises(InstanceNotFound) as err:
            op(instance_id)
        assert err.value.instance_id == instance_id


# -- persistence across restarts -----------------------------------------------


def test_states_survive_a_restart(open_driver, make_spec):
    driver = open_driver()
    specs = {state: make_spec(state) for state in ("running", "paused", "suspended", "off")}
    for spec in specs.values():
        driver.spawn(spec)
    driver.pause(specs["paused"].instance_id)
    driver.suspend(specs["suspended"].instance_id)
    driver.power_off(specs["off"].instance_id, timeout=1)
    before = driver.inventory()
    driver.close()

    restarted = open_driver()
    assert restarted.inventory() == before
    assert {d.name: d.power_state for d in before.instances} == {
        "running": P.RUNNING, "paused": P.PAUSED, "suspended": P.SUSPENDED, "off": P.SHUTDOWN,
    }
    restarted.resume(specs["suspended"].instance_id)
    restarted.unpause(specs["paused"].instance_id)

    again = open_driver()
    assert {d.name: d.power_state for d in again.inventory().instances} == {
        "running": P.RUNNING, "paused": P.RUNNING, "suspended": P.RUNNING, "off": P.SHUTDOWN,
    }


def test_a_destroyed_instance_stays_gone_after_a_restart(open_driver, make_spec):
    driver = open_driver()
    keep, gone = make_spec("keep"), make_spec("gone")
    driver.spawn(keep)
    driver.spawn(gone)
    driver.destroy(gone.instance_id)
    restarted = open_driver()
    assert [d.name for d in restarted.inventory().instances] == ["keep"]


# -- foreign domains -----------------------------------------------------------

FOREIGN_UUID = "6f1d4c9e-3a0b-4c53-9a55-0d6c8f1b2e11"


@pytest.fixture
def foreign_host(host_file: Path) -> Path:
    """A host file holding a domain someone else defined (no Ironbark metadata)."""
    host_file.parent.mkdir(parents=True)
    host_file.write_text(
        "<node><domain type='test'><name>legacy-db</name>"
        f"<uuid>{FOREIGN_UUID}</uuid><memory>1048576</memory>"
        "<os><type>hvm</type></os></domain></node>"
    )
    return host_file


def test_foreign_domains_are_listed_and_left_alone(foreign_host, open_driver, make_spec):
    driver = open_driver()
    spec = make_spec()
    driver.spawn(spec)
    inventory = driver.inventory()
    assert inventory.foreign == ["legacy-db"]
    assert [d.instance_id for d in inventory.instances] == [spec.instance_id]

    assert driver.power_state(FOREIGN_UUID) is P.MISSING
    with pytest.raises(InstanceNotFound):
        driver.power_off(FOREIGN_UUID, timeout=1)
    driver.destroy(FOREIGN_UUID)  # not ours: nothing happens

    restarted = open_driver()
    assert restarted.inventory().foreign == ["legacy-db"]
    runstate = file_domains(foreign_host)["legacy-db"].findtext(
        "{http://libvirt.org/schemas/domain/test/1.0}runstate"
    )
    assert runstate == "1"  # still running


def test_simulated_host_rejects_test_default():
    with pytest.raises(DriverError, match="keeps no state"):
        SimulatedHost.path_from_uri("test:///default")


def test_driver_reports_an_unreadable_host_file(host_file):
    host_file.parent.mkdir(parents=True)
    host_file.write_text("<node><unclosed></node>")
    sim = SimulatedHost(host_file, vcpus=1, memory_mb=512, disk_gb=1)
    with pytest.raises(DriverError, match="cannot read simulated host file"):
        LibvirtDriver(sim.uri, simulated=sim)


# -- console log -----------------------------------------------------------------

def test_the_console_log_is_read_from_its_end(
        driver: LibvirtDriver, make_spec: Callable[..., InstanceSpec]) -> None:
    spec = make_spec()
    driver.spawn(spec)
    assert driver.console_log(spec.instance_id, 100) == (b"", False)  # nothing written yet
    # Play the guest: append to the file the domain's serial port writes to.
    log = spec.instance_dir / "console.log"
    log.write_bytes(b"".join(b"line %05d\n" % i for i in range(20000)))  # 220 KB
    tail, truncated = driver.console_log(spec.instance_id, 22)
    assert (tail, truncated) == (b"line 19998\nline 19999\n", True)
    whole, truncated = driver.console_log(spec.instance_id, 1024 * 1024)
    assert whole == log.read_bytes() and not truncated
    driver.power_off(spec.instance_id, timeout=1)  # a stopped guest's log is still there
    assert driver.console_log(spec.instance_id, 11) == (b"line 19999\n", True)
    with pytest.raises(InstanceNotFound):
        driver.console_log(str(uuid.uuid4()), 10)
    driver.destroy(spec.instance_id)
    with pytest.raises(InstanceNotFound):
        driver.console_log(spec.instance_id, 10)
