"""The libvirt driver's building blocks: connection, domain XML, disks, host file."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from instance_manager.driver.base import DriverError, InstanceSpec
from instance_manager.driver.libvirt import LibvirtDriver
from instance_manager.driver.libvirt.disk import create_overlay, virtual_size
from instance_manager.driver.libvirt.domain_xml import (
    METADATA_NS,
    InstanceMetadata,
    build_domain_xml,
)
from instance_manager.driver.libvirt.host import LibvirtHost
from instance_manager.driver.libvirt.simulated import DomainSnapshot, SimulatedHost

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"


def _spec(tmp_path: Path, name: str = "vm") -> InstanceSpec:
    instance_id = str(uuid.uuid4())
    return InstanceSpec(
        instance_id=instance_id, name=name, vcpus=2, memory_mb=1024, disk_gb=5,
        image_id="img-9", image_path=tmp_path / "base.raw", image_format="raw",
        instance_dir=tmp_path / instance_id,
    )


# -- domain XML ----------------------------------------------------------------


def test_domain_xml_names_sizes_and_metadata(tmp_path):
    spec = _spec(tmp_path, name="x</name><evil/>")
    root = ET.fromstring(build_domain_xml(spec))
    assert root.get("type") == "test"
    assert root.findtext("name") == f"ironbark-{spec.instance_id}"
    assert root.findtext("uuid") == spec.instance_id
    assert root.findtext("vcpu") == "2"
    assert (root.find("memory").get("unit"), root.findtext("memory")) == ("MiB", "1024")
    assert root.find("devices/disk/target").get("bus") == "virtio"
    meta = InstanceMetadata.from_element(root.find(f"metadata/{{{METADATA_NS}}}instance"))
    assert meta == InstanceMetadata(spec.instance_id, spec.name, "img-9", spec.instance_dir)


def test_metadata_parses_without_its_namespace():
    """virDomainGetMetadata hands the element back stripped of its namespace."""
    element = ET.fromstring(
        "<instance><id>i-1</id><name>n</name><image_id>im</image_id>"
        "<instance_dir>/srv/i-1</instance_dir></instance>"
    )
    assert InstanceMetadata.from_element(element) == InstanceMetadata(
        "i-1", "n", "im", Path("/srv/i-1")
    )
    assert InstanceMetadata.from_element(ET.fromstring("<instance/>")) is None


# -- disks ---------------------------------------------------------------------


def test_overlay_over_a_qcow2_base(tmp_path):
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "10M"], check=True)
    dest = tmp_path / "disk"
    create_overlay(base, "qcow2", dest, 0)
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", str(dest)], check=True, capture_output=True
    ).stdout)
    assert info["backing-filename-format"] == "qcow2"
    assert info["virtual-size"] == 10 * 1024 * 1024
    assert virtual_size(dest, "qcow2") == 10 * 1024 * 1024


def test_overlay_failure_carries_qemu_img_stderr(tmp_path):
    with pytest.raises(DriverError, match="No such file"):
        create_overlay(tmp_path / "missing.raw", "raw", tmp_path / "disk", 1)


# -- connection ----------------------------------------------------------------


def test_connection_is_reopened_once_broken(tmp_path):
    sim = SimulatedHost(tmp_path / "host.xml", vcpus=3, memory_mb=1024, disk_gb=1)
    sim.ensure()
    host = LibvirtHost(sim.uri)
    first = host.connection()
    first.close()  # what a dead libvirtd socket looks like to us
    assert host.connection() is not first
    assert host.info()[2] == 3
    assert host.hypervisor_type() == "TEST"
    assert host.lookup_by_uuid(str(uuid.uuid4())) is None
    host.close()


# -- simulated host file -------------------------------------------------------


def test_ensure_writes_a_host_file_libvirt_reads(tmp_path):
    sim = SimulatedHost(tmp_path / "h" / "host.xml", vcpus=5, memory_mb=3072, disk_gb=7)
    sim.ensure()
    conn = libvirt.open(sim.uri)
    try:
        model, memory_mb, cpus, *_ = conn.getInfo()
        assert (model, memory_mb, cpus) == ("x86_64", 3072, 5)
        assert conn.storagePoolLookupByName("default").isActive()
    finally:
        conn.close()
    root = ET.parse(sim.path).getroot()
    assert root.findtext("pool/capacity") == str(7 * 1024**3)


def test_persist_round_trips_run_states(tmp_path):
    sim = SimulatedHost(tmp_path / "host.xml", vcpus=2, memory_mb=2048, disk_gb=1)
    sim.ensure()

    def domain(name: str) -> str:
        return (f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
                "<memory>1024</memory><os><type>hvm</type></os></domain>")

    sim.persist(lambda: [
        DomainSnapshot(domain("paused"), libvirt.VIR_DOMAIN_PAUSED, False),
        DomainSnapshot(domain("saved"), libvirt.VIR_DOMAIN_SHUTOFF, True),
        DomainSnapshot(domain("off"), libvirt.VIR_DOMAIN_SHUTOFF, False),
    ])
    conn = libvirt.open(sim.uri)
    try:
        got = {d.name(): (d.state()[0], d.hasManagedSaveImage()) for d in conn.listAllDomains()}
    finally:
        conn.close()
    assert got == {
        "paused": (libvirt.VIR_DOMAIN_PAUSED, 0),
        "saved": (libvirt.VIR_DOMAIN_SHUTOFF, 1),
        "off": (libvirt.VIR_DOMAIN_SHUTOFF, 0),
    }
    assert not list(tmp_path.glob(".host.xml.*"))  # no temporary file left behind


def test_simulated_host_needs_an_absolute_path():
    with pytest.raises(DriverError, match="absolute"):
        SimulatedHost(Path("relative.xml"), vcpus=1, memory_mb=128, disk_gb=1)
    assert SimulatedHost.path_from_uri("test:///srv/h/host.xml") == Path("/srv/h/host.xml")
    with pytest.raises(DriverError, match="not a simulated host URI"):
        SimulatedHost.path_from_uri("qemu:///system")


def test_real_host_disk_is_the_storage_filesystem(tmp_path):
    """Without a simulated host, disk_gb is the size of the filesystem of storage_dir."""
    sim = SimulatedHost(tmp_path / "host.xml", vcpus=1, memory_mb=512, disk_gb=1)
    sim.ensure()
    driver = LibvirtDriver(sim.uri, storage_dir=tmp_path / "not-yet" / "made")
    try:
        st = os.statvfs(tmp_path)
        assert driver.host_info().disk_gb == st.f_blocks * st.f_frsize // 1024**3
    finally:
        driver.close()
