"""Real guests' domains, checked by libvirtd itself (qemu:///system): what Ironbark
defines is what libvirt keeps, and the KVM/TCG choice is made by running QEMU."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from instance_manager.driver.base import InstanceSpec
from instance_manager.driver.libvirt import virt_type
from instance_manager.driver.libvirt.domain_xml import build_domain_xml

QEMU_URI = "qemu:///system"


@pytest.fixture(scope="module")
def qemu() -> Iterator[libvirt.virConnect]:
    try:
        conn = libvirt.open(QEMU_URI)
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd is not running ({exc}); scripts/test.sh starts it")
    yield conn
    conn.close()


def _spec(tmp_path: Path, **boot: Path | str | None) -> InstanceSpec:
    return InstanceSpec(instance_id=str(uuid.uuid4()), name="web <1>", vcpus=2, memory_mb=256,
                        disk_gb=1, image_id=str(uuid.uuid4()), image_path=tmp_path / "base",
                        image_format="raw", instance_dir=tmp_path / "instance", **boot)


def _defined(conn: libvirt.virConnect, xml: str) -> ET.Element:
    """libvirt's own view of the domain ``xml`` defines (then undefined again)."""
    domain = conn.defineXML(xml)
    try:
        return ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        domain.undefine()


def test_a_kernel_boot_with_config_drive_as_libvirt_keeps_it(
        qemu: libvirt.virConnect, tmp_path: Path) -> None:
    spec = _spec(tmp_path, kernel_path=tmp_path / "vmlinuz", ramdisk_path=tmp_path / "initrd",
                 kernel_cmdline="console=ttyS0 quiet", config_drive=tmp_path / "disk.config")
    kept = _defined(qemu, build_domain_xml(spec, "qemu"))
    assert kept.get("type") == "qemu" and kept.findtext("uuid") == spec.instance_id
    assert kept.findtext("os/kernel") == str(tmp_path / "vmlinuz")
    assert kept.findtext("os/initrd") == str(tmp_path / "initrd")
    assert kept.findtext("os/cmdline") == "console=ttyS0 quiet"
    assert kept.find("features/acpi") is not None  # the power button works
    disks = {d.find("target").get("dev"): d for d in kept.iterfind("devices/disk")}
    assert disks["vda"].find("target").get("bus") == "virtio"
    assert disks["vda"].find("driver").get("type") == "qcow2"
    drive = disks["hdd"]
    assert drive.get("device") == "cdrom" and drive.find("readonly") is not None
    assert drive.find("source").get("file") == str(tmp_path / "disk.config")
    (nic,) = kept.iterfind("devices/interface")
    assert nic.find("model").get("type") == "virtio"
    assert nic.find("link").get("state") == "down"  # a placeholder: no traffic leaves
    serial = kept.find("devices/serial/source")
    assert serial.get("path") == str(tmp_path / "instance" / "console.log")
    assert serial.get("append") == "on"  # one log across reboots
    assert kept.find("devices/graphics") is None
    assert kept.find("devices/memballoon").get("model") == "none"


def test_a_whole_disk_image_boots_from_the_bios(qemu: libvirt.virConnect, tmp_path: Path) -> None:
    kept = _defined(qemu, build_domain_xml(_spec(tmp_path), "qemu"))
    assert kept.find("os/kernel") is None and kept.find("os/boot").get("dev") == "hd"
    assert [d.get("device") for d in kept.iterfind("devices/disk")] == ["disk"]


def test_the_simulated_domain_is_unchanged_by_real_hosts_needs(tmp_path: Path) -> None:
    spec = _spec(tmp_path, kernel_path=tmp_path / "vmlinuz", config_drive=tmp_path / "cd")
    xml = ET.fromstring(build_domain_xml(spec, "test"))
    assert xml.find("os/kernel") is None and xml.find("devices/interface") is None
    assert [d.get("device") for d in xml.iterfind("devices/disk")] == ["disk"]


def test_virt_type_as_configured_or_probed(qemu: libvirt.virConnect) -> None:
    assert virt_type.choose(qemu, "qemu") == virt_type.Choice("qemu", "configured "
                                                              "(host.virt_type)")
    assert virt_type.choose(qemu, "kvm").virt_type == "kvm"
    probed = virt_type.choose(qemu, "auto")
    assert probed.virt_type in ("kvm", "qemu") and probed.reason
    assert virt_type.choose(qemu, "auto") is probed  # once per process and URI


def test_the_probe_runs_the_firmware_under_emulation() -> None:
    took, why = virt_type.firmware_runs("/usr/bin/qemu-system-x86_64", "tcg")
    assert took is not None and took < virt_type.PROBE_SECONDS, why
    missing, why = virt_type.firmware_runs("/nonexistent/qemu", "tcg")
    assert missing is None and "cannot run" in why
