"""The domain XML of an Ironbark instance, and the metadata that marks it as ours.

Built with ElementTree rather than string templates so that user-chosen text (the
instance name) is always escaped. The ``<metadata>`` element is how the driver
tells Ironbark's domains from foreign ones defined by someone else on the same
host: a domain without it is never touched.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from instance_manager.driver.base import InstanceSpec

METADATA_NS = "https://ironbark.dev/xmlns/instance/1"
METADATA_PREFIX = "ironbark"
DOMAIN_NAME_PREFIX = "ironbark-"
DISK_FILE = "disk"
CONSOLE_LOG = "console.log"

# So that the XML we hand libvirt reads <ironbark:instance>, not <ns0:instance>.
ET.register_namespace(METADATA_PREFIX, METADATA_NS)


@dataclass(frozen=True)
class InstanceMetadata:
    """What Ironbark records in a domain about the instance it runs."""

    instance_id: str
    name: str
    image_id: str
    instance_dir: Path

    def to_element(self) -> ET.Element:
        """``<ironbark:instance>`` in Ironbark's namespace (libvirt requires one)."""
        root = ET.Element(f"{{{METADATA_NS}}}instance")
        for tag, value in (
            ("id", self.instance_id),
            ("name", self.name),
            ("image_id", self.image_id),
            ("instance_dir", str(self.instance_dir)),
        ):
            ET.SubElement(root, f"{{{METADATA_NS}}}{tag}").text = value
        return root

    @classmethod
    def from_element(cls, root: ET.Element) -> InstanceMetadata | None:
        """Parse the element back, with or without its namespace.

        virDomainGetMetadata returns the element stripped of its namespace, while
        the full domain XML keeps it; accept both. None when the id is missing.
        """

        def text(tag: str) -> str:
            node = root.find(f"{{{METADATA_NS}}}{tag}")
            if node is None:
                node = root.find(tag)
            return (node.text or "") if node is not None else ""

        instance_id = text("id")
        if not instance_id:
            return None
        directory = text("instance_dir")
        return cls(
            instance_id=instance_id,
            name=text("name"),
            image_id=text("image_id"),
            instance_dir=Path(directory) if directory else Path(),
        )


def disk_source(xml: str) -> tuple[Path, str] | None:
    """The file and format of a domain's first disk, read from its XML (the truth for
    where the disk is), or None if it has no file-backed disk."""
    for disk in ET.fromstring(xml).iterfind("devices/disk"):
        source, driver = disk.find("source"), disk.find("driver")
        if disk.get("device", "disk") != "disk" or source is None or not source.get("file"):
            continue
        fmt = driver.get("type", "raw") if driver is not None else "raw"
        return Path(source.get("file", "")), fmt
    return None


def console_path(xml: str) -> Path | None:
    """The file the domain's first serial port writes to, from its XML."""
    for serial in ET.fromstring(xml).iterfind("devices/serial"):
        source = serial.find("source")
        if serial.get("type") == "file" and source is not None and source.get("path"):
            return Path(source.get("path", ""))
    return None


def domain_name(instance_id: str) -> str:
    return f"{DOMAIN_NAME_PREFIX}{instance_id}"


def disk_path(spec: InstanceSpec) -> Path:
    return spec.instance_dir / DISK_FILE


CONFIG_DRIVE_TARGET = "hdd"  # IDE secondary slave, as Nova attaches its config drive


def build_domain_xml(spec: InstanceSpec, domain_type: str = "test") -> str:
    """The XML to define ``spec``'s domain.

    ``domain_type`` is libvirt's ``<domain type=...>``: "test" for the simulated
    hypervisor, "kvm" or "qemu" for a real one. The serial console writes to
    ``<instance_dir>/console.log``, appended across boots (libvirt's test driver
    accepts it and never writes the file; QEMU does). A real guest also gets its
    kernel and ramdisk (direct kernel boot), its config drive as a read-only IDE
    cdrom, a virtio NIC with its link down (a placeholder until networks exist: no
    traffic can leave it), and nothing it does not need (no USB, display or balloon).
    """
    real = domain_type != "test"
    domain = ET.Element("domain", {"type": domain_type})
    ET.SubElement(domain, "name").text = domain_name(spec.instance_id)
    ET.SubElement(domain, "uuid").text = spec.instance_id
    metadata = ET.SubElement(domain, "metadata")
    metadata.append(
        InstanceMetadata(
            instance_id=spec.instance_id,
            name=spec.name,
            image_id=spec.image_id,
            instance_dir=spec.instance_dir,
        ).to_element()
    )
    ET.SubElement(domain, "memory", {"unit": "MiB"}).text = str(spec.memory_mb)
    ET.SubElement(domain, "currentMemory", {"unit": "MiB"}).text = str(spec.memory_mb)
    ET.SubElement(domain, "vcpu").text = str(spec.vcpus)
    os_el = ET.SubElement(domain, "os")
    ET.SubElement(os_el, "type", {"arch": "x86_64", **({"machine": "pc"} if real else {})}
                  ).text = "hvm"
    if real and spec.kernel_path is not None:
        ET.SubElement(os_el, "kernel").text = str(spec.kernel_path)
        if spec.ramdisk_path is not None:
            ET.SubElement(os_el, "initrd").text = str(spec.ramdisk_path)
        ET.SubElement(os_el, "cmdline").text = spec.kernel_cmdline or "console=ttyS0"
    ET.SubElement(os_el, "boot", {"dev": "hd"})
    if real:
        features = ET.SubElement(domain, "features")
        ET.SubElement(features, "acpi")  # the power button: graceful shutdown and reboot
        ET.SubElement(features, "apic")
        # QEMU runs as root with no relabelling: instance files may sit in directories
        # only root can traverse (a test's temporary directory, a 0700 data dir).
        seclabel = ET.SubElement(domain, "seclabel",
                                 {"type": "static", "model": "dac", "relabel": "no"})
        ET.SubElement(seclabel, "label").text = "+0:+0"
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"),
                          ("on_crash", "destroy")):
        ET.SubElement(domain, event).text = action

    devices = ET.SubElement(domain, "devices")
    disk = ET.SubElement(devices, "disk", {"type": "file", "device": "disk"})
    ET.SubElement(disk, "driver", {"name": "qemu", "type": "qcow2"})
    ET.SubElement(disk, "source", {"file": str(disk_path(spec))})
    ET.SubElement(disk, "target", {"dev": "vda", "bus": "virtio"})
    if real and spec.config_drive is not None:
        cdrom = ET.SubElement(devices, "disk", {"type": "file", "device": "cdrom"})
        ET.SubElement(cdrom, "driver", {"name": "qemu", "type": "raw"})
        ET.SubElement(cdrom, "source", {"file": str(spec.config_drive)})
        ET.SubElement(cdrom, "target", {"dev": CONFIG_DRIVE_TARGET, "bus": "ide"})
        ET.SubElement(cdrom, "readonly")
    if real:
        nic = ET.SubElement(devices, "interface", {"type": "ethernet"})
        ET.SubElement(nic, "model", {"type": "virtio"})
        ET.SubElement(nic, "link", {"state": "down"})
        ET.SubElement(devices, "controller", {"type": "usb", "model": "none"})
        ET.SubElement(devices, "memballoon", {"model": "none"})

    console_log = str(spec.instance_dir / CONSOLE_LOG)
    serial = ET.SubElement(devices, "serial", {"type": "file"})
    ET.SubElement(serial, "source", {"path": console_log, **({"append": "on"} if real else {})})
    ET.SubElement(serial, "target", {"port": "0"})
    console = ET.SubElement(devices, "console", {"type": "file"})
    ET.SubElement(console, "source", {"path": console_log, **({"append": "on"} if real else {})})
    ET.SubElement(console, "target", {"type": "serial", "port": "0"})
    return ET.tostring(domain, encoding="unicode")
